r"""The book's two MNIST classifiers (trained by :mod:`ddpm_lib.train.classifier`).

:class:`MNISTClassifier`: a LeNet-style network on clean digits (LeCun et al. 1998),
conv-pool-conv-pool-fc-fc; its penultimate layer :math:`\phi(x)` is the feature space of the MNIST
FID (:mod:`ddpm_lib.metrics`). Input float ``[N, 1, 28, 28]`` in [-1, 1].

:class:`NoisyClassifier`: a noise-conditional classifier :math:`p_\phi(y \mid x_t, t)` for
classifier guidance (Dhariwal & Nichol 2021, Sec. 4; Song et al. 2021, Sec. 5).

A classifier trained on clean digits says nothing useful about :math:`x_t` at large :math:`t`: its
gradient there points anywhere. Guidance needs the gradient of the class posterior *of the noised
data*, :math:`\nabla_{x_t}\log p_\phi(y \mid x_t, t)`, so this network sees :math:`(x_t, t)` and is
trained on :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon` with
:math:`t \sim \mathcal U\{1..T\}` (``python -m ddpm_lib.train.classifier``). It is LeNet-shaped,
with the time step entering every layer as a scale and shift of its pre-activations
(FiLM, Perez et al. 2018), SiLU activations and average pooling so that its input gradient is
smooth (a ReLU/max-pool network has a piecewise-constant gradient):

.. math::
    x_t \xrightarrow{\text{conv}5\times5,\ \text{FiLM}(t),\ \text{SiLU},\ \text{avg-pool}}
    14\times14 \xrightarrow{\text{conv}5\times5,\ \text{FiLM}(t),\ \text{SiLU},\ \text{avg-pool}}
    7\times7 \xrightarrow{\text{fc},\ \text{FiLM}(t),\ \text{SiLU}} \mathbb R^{h}
    \xrightarrow{\text{fc}} \text{logits} \in \mathbb R^{10}

Inputs: ``x_t`` float ``[B, 1, 28, 28]`` (the model's scale, as the U-Net sees it), ``t`` an int
or tensor ``[B]`` in ``0..T`` (or a continuous time, as the SDE samplers pass)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import batch_index
from ..config import IMAGE_CHANNELS, IMAGE_SIZE
from .layers import timestep_embedding

#: The ``architecture`` string of this network in the weights manifest.
NOISY_CLASSIFIER_ARCHITECTURE = "ddpm_lib.models.NoisyClassifier"


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture hyper-parameters, saved next to the weights and checked on load.

    Args:
        channels: output channels of the two conv layers.
        feature_dim: width :math:`d` of the penultimate layer :math:`\\phi(x)` used by the FID.
        dropout: dropout probability before the last layer (training only).
        num_classes: number of classes (10 digits).
    """

    channels: tuple[int, int] = (32, 64)
    feature_dim: int = 128
    dropout: float = 0.25
    num_classes: int = 10

    def __post_init__(self) -> None:
        if len(self.channels) != 2 or any(int(c) < 1 for c in self.channels):
            raise ValueError(f"channels must be two positive ints, got {self.channels!r}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if int(self.feature_dim) < 1:
            raise ValueError(f"feature_dim must be >= 1, got {self.feature_dim}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if int(self.num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, d: dict) -> ClassifierConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(
                f"unknown ClassifierConfig fields {sorted(unknown)}; known: {sorted(names)}"
            )
        return cls(**{**d, "channels": tuple(d.get("channels", cls.channels))})


class MNISTClassifier(nn.Module):
    """LeNet-style CNN (LeCun et al. 1998). ``forward(x)``: ``[N, 1, 28, 28]`` in ``[-1, 1]`` -> logits ``[N, 10]``;
    ``features(x)`` -> penultimate activations :math:`\\phi(x)`, ``[N, feature_dim]`` (after ReLU)."""

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else ClassifierConfig()
        c1, c2 = self.config.channels
        self.conv1 = nn.Conv2d(1, c1, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=5, padding=2)
        self.fc1 = nn.Linear(c2 * 7 * 7, self.config.feature_dim)
        self.dropout = nn.Dropout(self.config.dropout)
        self.fc2 = nn.Linear(self.config.feature_dim, self.config.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        r"""Penultimate-layer features :math:`\phi(x)`: ``[N, 1, 28, 28]`` -> ``[N, feature_dim]``."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.features(x)))


class NoisyClassifierConfig(NamedTuple):
    r"""Hyper-parameters of :class:`NoisyClassifier` and the schedule it was trained for (every
    field a JSON number or string, so the dict stored with the weights compares exactly).

    ``c1``, ``c2``: channels of the two convolutions; ``hidden``: width of the hidden layer;
    ``emb_dim``: width of the sinusoidal time embedding; ``num_classes``: 10 digits;
    ``T``, ``schedule``, ``beta_1``, ``beta_T``: the diffusion whose :math:`x_t` it classifies."""

    c1: int = 32
    c2: int = 64
    hidden: int = 128
    emb_dim: int = 64
    num_classes: int = 10
    T: int = 1000
    schedule: str = "linear"
    beta_1: float = 1e-4
    beta_T: float = 0.02

    def to_dict(self) -> dict:
        return dict(self._asdict())

    @classmethod
    def from_dict(cls, d: dict) -> NoisyClassifierConfig:
        unknown = sorted(set(d) - set(cls._fields))
        if unknown:
            raise ValueError(
                f"unknown NoisyClassifierConfig fields {unknown}; known: {cls._fields}"
            )
        return cls(**d)

    def diffusion(self):
        """The :class:`ddpm_lib.Diffusion` of the schedule this classifier was trained for."""
        from ..config import Config

        return Config(
            T=self.T, schedule=self.schedule, beta_1=self.beta_1, beta_T=self.beta_T
        ).diffusion()


class _FiLM(nn.Module):
    """``h * (1 + scale(e)) + shift(e)`` with ``scale, shift`` linear in the time features ``e``."""

    def __init__(self, emb: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(emb, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(e).chunk(2, dim=1)
        shape = (h.shape[0], -1, *([1] * (h.dim() - 2)))
        return h * (1 + scale.reshape(shape)) + shift.reshape(shape)


class NoisyClassifier(nn.Module):
    r"""``forward(x_t, t)`` -> logits ``[B, num_classes]`` of :math:`p_\phi(y \mid x_t, t)`;
    :meth:`log_prob` gives :math:`\log p_\phi(y \mid x_t, t)` of chosen labels."""

    def __init__(self, config: NoisyClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else NoisyClassifierConfig()
        c = self.config
        e = c.emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e), nn.SiLU())
        self.conv1 = nn.Conv2d(IMAGE_CHANNELS, c.c1, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(c.c1, c.c2, kernel_size=5, padding=2)
        side = IMAGE_SIZE // 4
        self.fc1 = nn.Linear(c.c2 * side * side, c.hidden)
        self.fc2 = nn.Linear(c.hidden, c.num_classes)
        self.film1, self.film2, self.film3 = _FiLM(e, c.c1), _FiLM(e, c.c2), _FiLM(e, c.hidden)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config._asdict().items())

    def forward(self, x_t: torch.Tensor, t: torch.Tensor | int | float) -> torch.Tensor:
        shape = (IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
        if not isinstance(x_t, torch.Tensor) or not x_t.dtype.is_floating_point:
            raise TypeError(
                f"x_t must be a floating-point torch.Tensor [B, 1, 28, 28], got {x_t!r:.60}"
            )
        if x_t.dim() != 4 or tuple(x_t.shape[1:]) != shape or x_t.shape[0] == 0:
            raise ValueError(
                f"x_t must have shape [B, 1, 28, 28] with B >= 1, got {list(x_t.shape)}"
            )
        B, dtype = x_t.shape[0], self.conv1.weight.dtype
        t = batch_index("t", t, B, x_t.device, hi=self.config.T, continuous=True)
        e = self.time_mlp(timestep_embedding(t, self.config.emb_dim).to(dtype))
        h = F.avg_pool2d(F.silu(self.film1(self.conv1(x_t.to(dtype)), e)), 2)
        h = F.avg_pool2d(F.silu(self.film2(self.conv2(h), e)), 2)
        h = F.silu(self.film3(self.fc1(h.flatten(1)), e))
        return self.fc2(h)

    def log_prob(
        self, x_t: torch.Tensor, t: torch.Tensor | int | float, labels: torch.Tensor
    ) -> torch.Tensor:
        r""":math:`\log p_\phi(y \mid x_t, t)` for ``labels`` ``[B]``: float ``[B]``."""
        logp = torch.log_softmax(self(x_t, t), dim=1)
        labels = batch_index(
            "labels", labels, x_t.shape[0], x_t.device, hi=self.config.num_classes - 1
        )
        return logp.gather(1, labels[:, None]).squeeze(1)
