"""Neural networks: the noise-prediction U-Net :math:`\\epsilon_\\theta(x_t, t)`."""

from ddpm_lib.models.unet import UNet, count_parameters

__all__ = ["UNet", "count_parameters"]
