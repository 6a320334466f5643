"""Image grids for MNIST-sized tensors in [-1, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch

__all__ = ["to_display", "image_grid", "show_images"]


def to_display(x: torch.Tensor) -> torch.Tensor:
    """``[..., 28, 28]`` in [-1, 1] -> float ``[..., 28, 28]`` in [0, 1] for ``imshow`` (values
    outside [-1, 1], e.g. a noisy ``x_t``, are clipped for display only)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    return ((x.detach().float().cpu() + 1) / 2).clamp(0, 1)


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


def show_images(
    images: Sequence[torch.Tensor] | torch.Tensor,
    titles: Sequence[str] | None = None,
    fig: plt.Figure | None = None,
    cmap: str = "gray",
) -> plt.Figure:
    """One row of images (each ``[1, H, W]`` or ``[H, W]`` in [-1, 1]) with optional titles."""
    images = list(images)
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(images)} images but {len(titles)} titles")
    fig = fig or plt.figure(figsize=(1.6 * len(images), 1.9))
    for i, img in enumerate(images):
        ax = fig.add_subplot(1, len(images), i + 1)
        ax.imshow(to_display(img).reshape(img.shape[-2:]), cmap=cmap, vmin=0, vmax=1)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    return fig
