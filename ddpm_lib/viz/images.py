"""Images in [-1, 1] (the model's data range) for display: one image into an axes, a row of them
into a figure, a grid as one array."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._validate import check_tensor


def to_display(x: torch.Tensor) -> torch.Tensor:
    """``[..., H, W]`` in [-1, 1] -> float ``[..., H, W]`` in [0, 1] for ``imshow`` (values
    outside [-1, 1], e.g. a noisy ``x_t``, are clipped for display only)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    return ((x.detach().float().cpu() + 1) / 2).clamp(0, 1)


def draw_image(ax, x: torch.Tensor) -> None:
    """Show one image ``x`` (``[H, W]``, ``[1, H, W]`` or ``[1, 1, H, W]``, in [-1, 1]) in ``ax``,
    grey levels fixed to [-1, 1] so that images side by side are comparable; no ticks (the axes
    keeps its frame and labels: call ``ax.set_axis_off()`` to drop them too)."""
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.numel() != x.shape[-2] * x.shape[-1]:
        shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be one image [H, W], [1, H, W] or [1, 1, H, W], got {shape}")
    ax.imshow(to_display(x).reshape(x.shape[-2:]).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(x: torch.Tensor, nrow: int = 8, pad: int = 1) -> torch.Tensor:
    """Tile ``[N, 1, H, W]`` (or ``[N, H, W]``) images in [-1, 1] into one ``[rows*(H+pad), ...]``
    array in [0, 1], ``nrow`` images per row."""
    if x.dim() == 4:
        x = x[:, 0]
    if x.dim() != 3:
        raise ValueError(f"x must have shape [N, 1, H, W] or [N, H, W], got {list(x.shape)}")
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    n, h, w = x.shape
    rows = -(-n // nrow)
    grid = torch.ones(rows * (h + pad) - pad, nrow * (w + pad) - pad)
    for i, img in enumerate(to_display(x)):
        r, c = divmod(i, nrow)
        grid[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = img
    return grid


def draw_images(
    fig, images: Sequence[torch.Tensor] | torch.Tensor, titles: Sequence[str] | None = None
) -> None:
    """One row of images (each ``[1, H, W]`` or ``[H, W]`` in [-1, 1]) with optional titles."""
    images = list(images)
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(images)} images but {len(titles)} titles")
    for i, img in enumerate(images):
        ax = fig.add_subplot(1, len(images), i + 1)
        draw_image(ax, img)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)


def check_digit(x0: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x0, noise)`` if ``x0`` is one image ``[1, C, H, W]`` and ``noise`` has its shape, else
    ValueError (TypeError if either is not a floating-point tensor)."""
    x0, noise = check_tensor("x0", x0), check_tensor("noise", noise)
    if x0.dim() != 4 or x0.shape[0] != 1:
        raise ValueError(f"x0 must be one image of shape [1, C, H, W], got {list(x0.shape)}")
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have x0's shape {list(x0.shape)}, got {list(noise.shape)}")
    return x0, noise
