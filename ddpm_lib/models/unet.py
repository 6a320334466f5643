r"""The noise-prediction network :math:`\epsilon_\theta(x_t, t)` for 28x28 grey images.

A U-Net in the style of Ho et al. (2020, Appendix B): levels at 28 -> 14 -> 7 (``channel_mults``),
``num_res_blocks`` ResNet blocks per level with GroupNorm + SiLU, a sinusoidal time embedding
passed through an MLP and added inside *every* ResNet block, multi-head self-attention at the
resolutions in ``attention_resolutions`` (7x7 by default, and in the middle block), skip
connections from every encoder block to the decoder, and a zero-initialised output convolution so
that the untrained model predicts :math:`\epsilon_\theta = 0`.

Optional class conditioning (for classifier-free guidance, Ho & Salimans 2022): a learned embedding
table with ``num_classes + 1`` rows, the last row (index ``num_classes``) being the *null label*
:math:`\varnothing`; its row is added to the time embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ddpm_lib._validate import batch_index
from ddpm_lib.config import IMAGE_CHANNELS, IMAGE_SIZE, Config
from ddpm_lib.models.layers import (
    AttentionBlock,
    Downsample,
    ResBlock,
    Upsample,
    timestep_embedding,
)


class _Stage(nn.Module):
    """One ResNet block, optionally followed by self-attention."""

    def __init__(self, res: ResBlock, attn: AttentionBlock | None) -> None:
        super().__init__()
        self.res = res
        self.attn = attn

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.res(x, emb)
        return self.attn(h) if self.attn is not None else h


class UNet(nn.Module):
    r""":math:`\epsilon_\theta(x_t, t)` or :math:`\epsilon_\theta(x_t, t, y)` on ``[B, 1, 28, 28]``.

    Args:
        config: a :class:`ddpm_lib.config.Config`; the fields in ``MODEL_FIELDS`` and ``dropout``
            and ``T`` are used.

    Attributes:
        config: the config it was built from.
        null_label: the index of the learned null label (``config.num_classes``), or None for an
            unconditional model.
    """

    def __init__(self, config: Config) -> None:
        super().__init__()
        if not isinstance(config, Config):
            raise TypeError(f"config must be a ddpm_lib.config.Config, got {type(config).__name__}")
        self.config = config
        ch = config.base_channels
        emb_dim = 4 * ch
        groups = config.norm_groups
        heads = config.num_heads

        def stage(c_in: int, c_out: int, resolution: int) -> _Stage:
            res = ResBlock(c_in, c_out, emb_dim, groups, config.dropout)
            use_attn = resolution in config.attention_resolutions
            return _Stage(res, AttentionBlock(c_out, heads, groups) if use_attn else None)

        self.time_mlp = nn.Sequential(
            nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.null_label: int | None = config.num_classes
        self.label_emb = (
            nn.Embedding(config.num_classes + 1, emb_dim)
            if config.num_classes is not None
            else None
        )
        self.conv_in = nn.Conv2d(IMAGE_CHANNELS, ch, 3, padding=1)

        # Encoder: remember the channel count of every output that becomes a skip connection.
        self.down = nn.ModuleList()
        skip_channels = [ch]
        c = ch
        last = len(config.channel_mults) - 1
        for level, (mult, resolution) in enumerate(
            zip(config.channel_mults, config.resolutions, strict=True)
        ):
            for _ in range(config.num_res_blocks):
                self.down.append(stage(c, ch * mult, resolution))
                c = ch * mult
                skip_channels.append(c)
            if level != last:
                self.down.append(Downsample(c))
                skip_channels.append(c)

        lowest = config.resolutions[-1]
        self.mid1 = ResBlock(c, c, emb_dim, groups, config.dropout)
        self.mid_attn = (
            AttentionBlock(c, heads, groups) if lowest in config.attention_resolutions else None
        )
        self.mid2 = ResBlock(c, c, emb_dim, groups, config.dropout)

        # Decoder: one more block per level than the encoder, each eating one skip connection.
        self.up = nn.ModuleList()
        for level in reversed(range(len(config.channel_mults))):
            mult, resolution = config.channel_mults[level], config.resolutions[level]
            for _ in range(config.num_res_blocks + 1):
                self.up.append(stage(c + skip_channels.pop(), ch * mult, resolution))
                c = ch * mult
            if level != 0:
                self.up.append(Upsample(c))
        assert not skip_channels

        self.norm_out = nn.GroupNorm(groups, c)
        self.conv_out = nn.Conv2d(c, IMAGE_CHANNELS, 3, padding=1)
        # Zero init: the untrained model predicts eps = 0, the minimiser of the loss before training
        # has seen any data, which keeps the first steps' gradients small and well-behaved.
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor | int, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        r"""Predict the noise :math:`\epsilon` that produced ``x_t`` (Ho et al. 2020, Eq. 12).

        Args:
            x_t: noisy images ``[B, 1, 28, 28]``, floating point.
            t: time steps in ``0..T``: a Python int (same for the whole batch) or an integer tensor
                ``[B]`` (or ``[]``); or a continuous time in ``[0, T]`` (a float or a floating
                tensor), which the sinusoidal embedding takes as it is (the SDE and ODE samplers
                of :mod:`ddpm_lib.sde` ask for such times; training only ever shows integers).
            labels: class labels ``[B]`` in ``0..num_classes`` (``num_classes`` = the null label)
                for a conditional model; ``None`` means the null label for every example. Must be
                None for an unconditional model.

        Returns:
            :math:`\epsilon_\theta(x_t, t[, y])`, shape ``[B, 1, 28, 28]``, dtype of the computation
            (``x_t``'s dtype, or the autocast dtype).
        """
        B = self._check_x(x_t)
        t = batch_index("t", t, B, x_t.device, hi=self.config.T, continuous=True)
        # The embedding is computed in float32; run the MLP in x_t's dtype (e.g. a float64 model).
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels).to(x_t.dtype))
        if self.label_emb is not None:
            assert self.null_label is not None
            if labels is None:
                labels = torch.full((B,), self.null_label, dtype=torch.long, device=x_t.device)
            labels = batch_index("labels", labels, B, x_t.device, hi=self.null_label)
            emb = emb + self.label_emb(labels)
        elif labels is not None:
            raise ValueError(
                "labels were given but this model is unconditional (config.num_classes=None); "
                "pass labels=None or build the model with num_classes set"
            )

        h = self.conv_in(x_t)
        skips = [h]
        for block in self.down:
            h = block(h, emb) if isinstance(block, _Stage) else block(h)
            skips.append(h)
        h = self.mid1(h, emb)
        if self.mid_attn is not None:
            h = self.mid_attn(h)
        h = self.mid2(h, emb)
        for block in self.up:
            if isinstance(block, _Stage):
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))

    @staticmethod
    def _check_x(x_t: object) -> int:
        expected = f"[B, {IMAGE_CHANNELS}, {IMAGE_SIZE}, {IMAGE_SIZE}]"
        if not isinstance(x_t, torch.Tensor):
            raise TypeError(f"x_t must be a torch.Tensor of shape {expected}, got {type(x_t)}")
        if not x_t.dtype.is_floating_point:
            raise TypeError(f"x_t must be a floating-point tensor, got dtype {x_t.dtype}")
        if x_t.dim() != 4 or tuple(x_t.shape[1:]) != (IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"x_t must have shape {expected}, got {list(x_t.shape)}")
        if x_t.shape[0] == 0:
            raise ValueError(f"x_t must hold at least one image (shape {expected}), got B = 0")
        return x_t.shape[0]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters of ``model`` (only those with ``requires_grad`` by default)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
