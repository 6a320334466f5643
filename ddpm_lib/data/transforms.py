r"""Pixels <-> model space: the 256-level grid of [-1, 1] that DDPM works on.

Ho et al. (2020, Sec. 3.3) scale images of integers :math:`u \in \{0, \dots, 255\}` linearly to
:math:`[-1, 1]`, and the discrete decoder :math:`L_0` puts its bin edges half-way between the
256 levels of that grid.  This module holds the one map both directions use:

.. math::

    x = \frac{2u}{255} - 1, \qquad u = \operatorname{round}\!\left(\frac{255\,(x + 1)}{2}\right).
"""

from __future__ import annotations

import torch


def images_to_model(images: torch.Tensor) -> torch.Tensor:
    r"""Map uint8 images to the model's data space, :math:`x = 2u/255 - 1`.

    Ho et al. 2020, Sec. 3.3 (data scaled linearly to [-1, 1]).  Computed as
    :math:`(2u - 255) / 255` so the numerator is an exact integer and every level is the
    float32 number nearest to the grid point; ``u = 0`` gives exactly -1 and ``u = 255``
    exactly +1.

    Args:
        images: uint8 tensor [N, H, W] (MNIST: [N, 28, 28]), any device.

    Returns:
        float32 tensor [N, 1, H, W] in [-1, 1], on the same device.

    Raises:
        TypeError: ``images`` is not a uint8 tensor.
        ValueError: ``images`` does not have 3 dimensions.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(f"images must have dtype torch.uint8 (values 0..255), got {images.dtype}")
    if images.ndim != 3:
        raise ValueError(f"images must have shape [N, H, W], got {list(images.shape)}")
    return ((images.to(torch.float32) * 2 - 255) / 255).unsqueeze(1)


def model_to_images(x: torch.Tensor) -> torch.Tensor:
    r"""Map model-space samples back to uint8 images, :math:`u = \mathrm{round}(255 (x+1)/2)`.

    The exact inverse of :func:`images_to_model` on the 256-level grid (every level round-trips).
    For display of model outputs, values outside [-1, 1] are clamped **here only** (to 0 or 255);
    rounding is half-to-even.  No other function in the data layer clamps.

    Args:
        x: floating tensor [N, 1, H, W] (model space), any device.

    Returns:
        uint8 tensor [N, H, W] on the same device.

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``x`` is not [N, 1, H, W], or holds NaN/inf (a sampler bug, not a pixel).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"x must have shape [N, 1, H, W], got {list(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x holds NaN or inf values; allowed: finite numbers (ideally in [-1, 1])")
    # float32 holds every grid level to ~1e-5 of a level, far from the 0.5 rounding margin, and
    # works on every device (MPS has no float64).
    u = torch.round((x.to(torch.float32) + 1) * 127.5).clamp_(0, 255)
    return u.to(torch.uint8).squeeze(1)
