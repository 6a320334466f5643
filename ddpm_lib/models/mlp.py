r"""A small noise-prediction network :math:`\epsilon_\theta(\mathbf x_t, t)` for vectors (toy data).

The U-Net of :mod:`ddpm_lib.models.unet` is built for 28x28 images; the 2-D mixtures of chapters
5-7 need the same kind of object for points ``[B, D]``. :class:`MLPEps` is a multilayer
perceptron with SiLU activations whose hidden state receives the time step's sinusoidal embedding
(Vaswani et al. 2017, Sec. 3.5, as in Ho et al. 2020, Appendix B) in every layer, the way the
U-Net's ResNet blocks do:

.. math::
    \mathbf e &= W_e\,\mathrm{SiLU}\big(\mathrm{emb}(t)\big) \;[+\ \mathrm{E}_y]\\
    \mathbf h_0 &= W_\text{in}\,\mathbf x_t,\qquad
    \mathbf h_{\ell} = \mathbf h_{\ell-1} + W_\ell\,\mathrm{SiLU}(\mathbf h_{\ell-1} + \mathbf e)
    \quad(\ell = 1, \dots, \text{depth})\\
    \epsilon_\theta(\mathbf x_t, t) &= W_\text{out}\,\mathrm{SiLU}(\mathbf h_\text{depth})

(residual layers: a deeper net trains as easily as a shallow one). :math:`W_\text{out}` starts at
zero, so the untrained model predicts :math:`\epsilon_\theta = 0`, as the U-Net does.

Optional class conditioning as in the U-Net (Ho & Salimans 2022): an embedding table with
``num_classes + 1`` rows whose last row (index ``num_classes``) is the null label
:math:`\varnothing`; ``labels=None`` means the null label."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ddpm_lib._validate import batch_index, check_int
from ddpm_lib.models.layers import timestep_embedding

# The MLP does not know the diffusion's T; any step the sinusoidal embedding can take is allowed.
_T_MAX = 1_000_000


class MLPConfig(NamedTuple):
    """The hyperparameters of an :class:`MLPEps` (``num_classes`` is what the samplers read)."""

    dim: int
    hidden: int
    depth: int
    emb_dim: int
    num_classes: int | None


class MLPEps(nn.Module):
    r""":math:`\epsilon_\theta(\mathbf x_t, t)` (or :math:`\epsilon_\theta(\mathbf x_t, t, y)`) on
    points ``[B, D]``: usable wherever the library takes an ε-model
    (:meth:`ddpm_lib.Diffusion.call_model`, :func:`ddpm_lib.bound.loss_simple`,
    :func:`ddpm_lib.sample.ancestral`, :func:`ddpm_lib.sample.ddim`).

    Args:
        dim: ``D``, the dimension of a point (2 for the chapter's plane).
        hidden: width of the hidden layers.
        depth: number of residual hidden layers (>= 1).
        emb_dim: width of the sinusoidal time embedding (>= 2).
        num_classes: ``K`` for a class-conditional model (labels ``0..K-1``, ``K`` = null label),
            None for an unconditional one.

    Attributes: ``config`` (:class:`MLPConfig`), ``null_label`` (``num_classes`` or None)."""

    def __init__(
        self,
        dim: int = 2,
        hidden: int = 128,
        depth: int = 3,
        emb_dim: int = 32,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        check_int("dim", dim, 1)
        check_int("hidden", hidden, 1)
        check_int("depth", depth, 1)
        check_int("emb_dim", emb_dim, 2)
        if num_classes is not None:
            check_int("num_classes", num_classes, 1)
        self.config = MLPConfig(dim, hidden, depth, emb_dim, num_classes)
        self.null_label: int | None = num_classes
        self.time_proj = nn.Linear(emb_dim, hidden)
        self.label_emb = nn.Embedding(num_classes + 1, hidden) if num_classes is not None else None
        self.inp = nn.Linear(dim, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config._asdict().items())

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor | int, labels: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        r"""Predict the noise :math:`\bar\epsilon_t` that produced ``x_t`` (Ho et al. 2020, Eq. 12).

        Args:
            x_t: points ``[B, D]``, floating point (computed in the parameters' dtype).
            t: time steps (``1..T`` in use): an int, or an integer tensor ``[B]`` or ``[]``;
                or a continuous time (a float or a floating tensor), as the SDE samplers pass.
            labels: ``[B]`` (or an int) in ``0..num_classes`` for a conditional model; None = the
                null label. Must be None for an unconditional model.

        Returns:
            :math:`\epsilon_\theta` ``[B, D]`` in ``x_t``'s dtype.
        """
        D = self.config.dim
        if not isinstance(x_t, torch.Tensor) or not x_t.dtype.is_floating_point:
            raise TypeError(f"x_t must be a floating-point torch.Tensor [B, {D}], got {x_t!r:.60}")
        if x_t.dim() != 2 or x_t.shape[1] != D or x_t.shape[0] == 0:
            raise ValueError(f"x_t must have shape [B, {D}] with B >= 1, got {list(x_t.shape)}")
        B, dtype = x_t.shape[0], self.inp.weight.dtype
        t = batch_index("t", t, B, x_t.device, hi=_T_MAX, continuous=True)
        e = self.time_proj(F.silu(timestep_embedding(t, self.config.emb_dim).to(dtype)))
        if self.label_emb is not None:
            assert self.null_label is not None
            if labels is None:
                labels = self.null_label
            e = e + self.label_emb(batch_index("labels", labels, B, x_t.device, hi=self.null_label))
        elif labels is not None:
            raise ValueError(
                "labels were given but this model is unconditional (num_classes=None); "
                "pass labels=None or build the model with num_classes set"
            )
        h = self.inp(x_t.to(dtype))
        for layer in self.layers:
            h = h + layer(F.silu(h + e))
        return self.out(F.silu(h)).to(x_t.dtype)
