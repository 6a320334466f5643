r"""Building blocks of the noise-prediction U-Net :math:`\epsilon_\theta(x_t, t)`.

The architecture follows Ho et al. (2020, Appendix B), itself a PixelCNN++-style U-Net: ResNet
blocks with group normalisation (Wu & He 2018) and SiLU, a sinusoidal embedding of the time step
(Vaswani et al. 2017, Sec. 3.5) injected into every ResNet block, and multi-head self-attention
at low resolution. Shapes: ``B`` batch, ``C`` channels, ``H, W`` height and width."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    r"""Sinusoidal embedding of integer time steps (Vaswani et al. 2017, Sec. 3.5; used for
    :math:`t` by Ho et al. 2020, Appendix B).

    With :math:`h = \lfloor d/2 \rfloor` frequencies
    :math:`\omega_i = P^{-i/h}` for :math:`i = 0, \dots, h-1` (:math:`P` = ``max_period``):

    .. math:: \mathrm{emb}(t) = \big[\sin(\omega_0 t), \dots, \sin(\omega_{h-1} t),\
              \cos(\omega_0 t), \dots, \cos(\omega_{h-1} t)\big]

    so the fastest component turns once every :math:`2\pi` steps and the slowest once every
    :math:`2\pi P` steps; an odd ``dim`` is padded with one zero.

    Args:
        t: time steps, shape ``[B]`` (any numeric dtype; computed in float32).
        dim: embedding width ``d >= 2``.

    Returns:
        float32 tensor ``[B, dim]``.
    """
    half = dim // 2
    i = torch.arange(half, device=t.device, dtype=torch.float32)
    omegas = torch.exp(-math.log(max_period) * i / half)
    angles = t.to(torch.float32)[:, None] * omegas[None, :]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class ResBlock(nn.Module):
    r"""ResNet block with the time (and class) embedding added between its two convolutions.

    .. math::
        h &= \mathrm{Conv}_1\big(\mathrm{SiLU}(\mathrm{GN}(x))\big) + W_e\,\mathrm{SiLU}(e)\\
        \mathrm{out} &= \mathrm{skip}(x) + \mathrm{Conv}_2\big(\mathrm{Dropout}(\mathrm{SiLU}
        (\mathrm{GN}(h)))\big)

    where ``skip`` is the identity, or a 1x1 convolution when the channel count changes.
    Input ``x [B, C_in, H, W]``, embedding ``e [B, E]``; output ``[B, C_out, H, W]``."""

    def __init__(
        self, in_channels: int, out_channels: int, emb_dim: int, groups: int, dropout: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb_proj(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    r"""Multi-head self-attention over the :math:`H W` positions of a feature map, with a residual
    connection (Vaswani et al. 2017, Eq. 1; placed at 16x16 in Ho et al. 2020, here at 7x7).

    .. math:: \mathrm{out} = x + W_o\,\mathrm{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d_h}}\Big) V,
              \qquad [Q, K, V] = W_{qkv}\,\mathrm{GN}(x)

    per head, with :math:`d_h = C / \text{num\_heads}`. Input and output ``[B, C, H, W]``."""

    def __init__(self, channels: int, num_heads: int, groups: int) -> None:
        super().__init__()
        if channels % num_heads != 0:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        d_h = C // self.num_heads
        qkv = self.qkv(self.norm(x)).reshape(B, 3, self.num_heads, d_h, H * W)
        # [B, heads, HW, d_h] for each of q, k, v
        q, k, v = (qkv[:, j].transpose(-1, -2) for j in range(3))
        h = F.scaled_dot_product_attention(q, k, v)
        h = h.transpose(-1, -2).reshape(B, C, H, W)
        return x + self.proj(h)


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 3x3 convolution: 28 -> 14 -> 7 (``[B, C, H, W]`` ->
    ``[B, C, ceil(H/2), ceil(W/2)]``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double the resolution (nearest neighbour) then a 3x3 convolution: 7 -> 14 -> 28."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
