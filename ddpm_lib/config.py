"""One frozen dataclass with every setting of a run, and the named presets.

A :class:`Config` describes the U-Net (``ddpm_lib.models.UNet``), the diffusion schedule
(:meth:`Config.diffusion`) and the optimiser. It is saved into every checkpoint
(:meth:`Config.to_dict`, JSON-safe) and compared on load (:func:`config_mismatch`). Start from a
preset::

    cfg = get_config("tiny")                       # CPU, about a minute of training
    cfg = get_config("mnist", batch_size=256)      # the GPU default, with one override
    cfg = get_config("mnist-cfg")                  # class-conditional, for classifier-free guidance

Images are always MNIST-sized: ``[B, 1, 28, 28]`` with pixels in [-1, 1]."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ddpm_lib._validate import check_int, check_number

if TYPE_CHECKING:  # the import is lazy at run time: see Config.diffusion
    from ddpm_lib.diffusion import Diffusion

IMAGE_SIZE = 28
IMAGE_CHANNELS = 1
# Each entry of channel_mults is one U-Net level; level i works at RESOLUTIONS[i] (28 -> 14 -> 7).
# A fourth level would need 7 / 2, so at most three levels exist.
RESOLUTIONS: tuple[int, ...] = (28, 14, 7)
SCHEDULES: tuple[str, ...] = ("linear", "cosine")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")

# Fields that fix the shapes *and the meaning* of the U-Net weights: two configs that differ in one
# of these cannot share a state_dict.
MODEL_FIELDS: tuple[str, ...] = (
    "base_channels",
    "channel_mults",
    "num_res_blocks",
    "attention_resolutions",
    "num_heads",
    "num_classes",
    "norm_groups",
)
# Fields that fix which eps_theta(x_t, t) the weights were trained for (what t means).
DIFFUSION_FIELDS: tuple[str, ...] = ("T", "schedule", "beta_1", "beta_T")


def _int_tuple(name: str, value: object, lo: int) -> tuple[int, ...]:
    if not isinstance(value, tuple | list):
        raise ValueError(f"{name} must be a tuple of ints, got {value!r} ({type(value).__name__})")
    return tuple(check_int(f"{name}[{i}]", v, lo) for i, v in enumerate(value))


@dataclass(frozen=True)
class Config:
    """Every setting of a run; validated on construction (``ValueError`` naming field and range).

    The defaults are the ``mnist`` preset. Use :func:`get_config` for presets and overrides."""

    # --- model: the U-Net eps_theta(x_t, t[, y]) ---
    base_channels: int = 48
    """Channels of the first level; level ``i`` has ``base_channels * channel_mults[i]``."""
    channel_mults: tuple[int, ...] = (1, 2, 2)
    """One multiplier per level, 1 to 3 levels at resolutions 28, 14, 7."""
    num_res_blocks: int = 2
    """ResNet blocks per level on the way down (one more on the way up)."""
    attention_resolutions: tuple[int, ...] = (7,)
    """Resolutions (from 28, 14, 7 and reached by channel_mults) with self-attention; () = none."""
    num_heads: int = 4
    """Attention heads; must divide the channel count at every attention resolution."""
    dropout: float = 0.1
    """Dropout inside each ResNet block, in [0, 1)."""
    num_classes: int | None = None
    """Number of class labels for a conditional model; None = unconditional."""
    norm_groups: int = 16
    """GroupNorm groups; must divide the channel count of every level."""

    # --- diffusion: the forward process q(x_t | x_{t-1}) ---
    T: int = 1000
    """Number of diffusion steps; t runs 1..T (index 0 = clean data)."""
    schedule: Literal["linear", "cosine"] = "linear"
    """'linear' (Ho et al. 2020) or 'cosine' (Nichol & Dhariwal 2021)."""
    beta_1: float = 1e-4
    """First variance of the linear schedule, in (0, 1)."""
    beta_T: float = 0.02
    """Last variance of the linear schedule, in [beta_1, 1)."""

    # --- training ---
    batch_size: int = 128
    lr: float = 2e-4
    """Peak AdamW learning rate (Ho et al. 2020 used 2e-4)."""
    weight_decay: float = 0.0
    warmup_steps: int = 1000
    """Linear learning-rate warm-up from 0 to lr over this many optimiser steps."""
    grad_clip: float | None = 1.0
    """Clip the global gradient norm to this value; None = no clipping."""
    ema_decay: float = 0.9999
    """Decay of the exponential moving average of the weights, in [0, 1)."""
    label_dropout: float = 0.0
    """Probability of replacing a label by the null label (classifier-free guidance, Ho & Salimans
    2022); only for a conditional model."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """'auto' = bf16 autocast where the GPU supports it, fp16 + GradScaler on an older GPU, fp32 on
    the CPU."""
    compile: bool = False
    """Wrap the model in torch.compile (GPU only)."""
    train_steps: int = 20_000
    """Optimiser steps of a full run."""
    seed: int = 0
    """Seed of the run's torch.Generator (weights, batches, noise)."""

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:  # normalise types (list -> tuple, int -> float)
            object.__setattr__(self, name, value)

        # model
        base = check_int("base_channels", self.base_channels, 1)
        mults = _int_tuple("channel_mults", self.channel_mults, 1)
        if not 1 <= len(mults) <= len(RESOLUTIONS):
            raise ValueError(
                f"channel_mults must have 1 to {len(RESOLUTIONS)} entries (levels at resolutions "
                f"{RESOLUTIONS}), got {len(mults)}: {mults}"
            )
        put("channel_mults", mults)
        check_int("num_res_blocks", self.num_res_blocks, 1)
        levels = RESOLUTIONS[: len(mults)]
        attn = _int_tuple("attention_resolutions", self.attention_resolutions, 1)
        for r in attn:
            if r not in levels:
                raise ValueError(
                    f"attention_resolutions entries must be among the resolutions reached by "
                    f"channel_mults={mults}, i.e. {levels}; got {r}"
                )
        if len(set(attn)) != len(attn):
            raise ValueError(f"attention_resolutions must not repeat an entry, got {attn}")
        put("attention_resolutions", attn)
        heads = check_int("num_heads", self.num_heads, 1)
        for r in attn:
            ch = base * mults[levels.index(r)]
            if ch % heads != 0:
                raise ValueError(
                    f"num_heads must divide the {ch} channels at attention resolution {r}, "
                    f"got num_heads={heads}"
                )
        put("dropout", check_number("dropout", self.dropout, 0.0, 1.0, hi_open=True))
        if self.num_classes is not None:
            check_int("num_classes", self.num_classes, 1)
        groups = check_int("norm_groups", self.norm_groups, 1)
        for ch in (base, *(base * m for m in mults)):
            if ch % groups != 0:
                raise ValueError(
                    f"norm_groups must divide the channel count of every level "
                    f"{sorted({base, *(base * m for m in mults)})}, got norm_groups={groups}"
                )
        # diffusion
        check_int("T", self.T, 1)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        put("beta_1", check_number("beta_1", self.beta_1, 0.0, 1.0, lo_open=True, hi_open=True))
        put("beta_T", check_number("beta_T", self.beta_T, 0.0, 1.0, lo_open=True, hi_open=True))
        if self.beta_T < self.beta_1:
            raise ValueError(
                f"beta_T must be in [beta_1, 1) = [{self.beta_1}, 1), got {self.beta_T}"
            )
        # training
        check_int("batch_size", self.batch_size, 1)
        put("lr", check_number("lr", self.lr, 0.0, lo_open=True))
        wd = check_number("weight_decay", self.weight_decay, 0.0)
        put("weight_decay", wd)
        check_int("warmup_steps", self.warmup_steps, 0)
        if self.grad_clip is not None:
            clip = check_number("grad_clip", self.grad_clip, 0.0, lo_open=True)
            put("grad_clip", clip)
        put("ema_decay", check_number("ema_decay", self.ema_decay, 0.0, 1.0, hi_open=True))
        p = check_number("label_dropout", self.label_dropout, 0.0, 1.0, hi_open=True)
        put("label_dropout", p)
        if self.num_classes is None and p != 0.0:
            raise ValueError(
                f"label_dropout must be 0.0 for an unconditional model (num_classes=None), got {p}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be True or False, got {self.compile!r}")
        check_int("train_steps", self.train_steps, 1)
        check_int("seed", self.seed, 0, 2**63 - 1)

    @property
    def resolutions(self) -> tuple[int, ...]:
        """The resolution of each U-Net level, e.g. ``(28, 14, 7)`` for three levels."""
        return RESOLUTIONS[: len(self.channel_mults)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field (tuples become lists); inverse of :meth:`from_dict`."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Config:
        """Rebuild a Config from :meth:`to_dict` output; every field must be present, none extra."""
        if not isinstance(d, Mapping):
            raise ValueError(f"from_dict expects a mapping, got {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        missing = [n for n in names if n not in d]
        if unknown or missing:
            raise ValueError(
                f"config dict does not match Config: unknown keys {unknown}, "
                f"missing keys {missing}; the fields are {names}"
            )
        return cls(**{n: d[n] for n in names})

    def diffusion(self) -> Diffusion:
        """The :class:`ddpm_lib.diffusion.Diffusion` of this config's schedule (float64 [T + 1])."""
        from ddpm_lib import schedule
        from ddpm_lib.diffusion import Diffusion

        if self.schedule == "linear":
            betas = schedule.linear_betas(self.T, self.beta_1, self.beta_T)
        else:
            betas = schedule.cosine_betas(self.T)
        return Diffusion(betas)


def config_mismatch(a: Config, b: Config, fields: Iterable[str] | None = None) -> list[str]:
    """Names of the fields where ``a`` and ``b`` differ, in declaration order.

    Args:
        a, b: the two configs (e.g. the checkpoint's and the caller's).
        fields: only compare these (e.g. ``MODEL_FIELDS + DIFFUSION_FIELDS`` when loading weights);
            default all fields.
    """
    for name, c in (("a", a), ("b", b)):
        if not isinstance(c, Config):
            raise ValueError(f"{name} must be a Config, got {type(c).__name__}")
    names = [f.name for f in dataclasses.fields(Config)]
    if fields is not None:
        wanted = list(fields)
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise ValueError(f"unknown Config fields {unknown}; the fields are {names}")
        names = [n for n in names if n in wanted]
    return [n for n in names if getattr(a, n) != getattr(b, n)]


# Why each preset is what it is (the measurements behind these choices are in BENCHMARKS.md):
# tiny: about a minute of CPU training must already show strokes and blobs; at that budget a
#   narrower net (base 8) and a wider one (base 24) gave worse or no better few-step samples.
# mnist: its fp16 weights fit, with mnist-cfg's, tiny's and the FID classifier's, in the package's
#   20 MB weight budget (base 64 would not); a GPU default, its width to be tuned on a GPU.
# small: the CPU-trained shipped weights: of the widths and depths tried it sees the most images in
#   a CPU session, and a 50-step DDIM batch still takes seconds on a laptop-class CPU.
_MNIST = Config()
_SMALL = Config(
    base_channels=24,
    channel_mults=(1, 2, 2),
    num_res_blocks=1,
    attention_resolutions=(7,),
    num_heads=4,
    dropout=0.0,
    norm_groups=8,
    batch_size=128,
    lr=1e-3,
    warmup_steps=200,
    ema_decay=0.999,
    train_steps=20_000,
)
PRESETS: Mapping[str, Config] = types.MappingProxyType(
    {
        "tiny": Config(
            base_channels=16,
            channel_mults=(1, 2),
            num_res_blocks=1,
            attention_resolutions=(),
            num_heads=1,
            dropout=0.0,
            norm_groups=8,
            batch_size=64,
            lr=2e-3,
            warmup_steps=50,
            ema_decay=0.99,
            train_steps=250,
        ),
        "mnist": _MNIST,
        "mnist-cfg": dataclasses.replace(_MNIST, num_classes=10, label_dropout=0.1),
        "small": _SMALL,
        "small-cfg": dataclasses.replace(_SMALL, num_classes=10, label_dropout=0.1),
    }
)


def get_config(name: str, **overrides: Any) -> Config:
    """The preset ``name`` (one of ``PRESETS``) with some fields replaced, validated again."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; the presets are {sorted(PRESETS)}")
    names = [f.name for f in dataclasses.fields(Config)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"unknown Config fields {unknown}; the fields are {names}")
    return dataclasses.replace(PRESETS[name], **overrides)
