"""Neural networks: the noise-prediction U-Net :math:`\\epsilon_\\theta(x_t, t)`, and a wrapper
that runs it fast for sampling (autocast, ``channels_last``, ``torch.compile``)."""

from ddpm_lib.models.inference import INFERENCE_PRECISIONS, InferenceModel
from ddpm_lib.models.unet import UNet, count_parameters

__all__ = ["INFERENCE_PRECISIONS", "InferenceModel", "UNet", "count_parameters"]
