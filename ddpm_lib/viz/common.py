r"""What the chapters' figures share: the two schedules they compare, their colours, one run of the
forward chain (Ho et al. 2020, Eq. 2) kept at a few steps for the figures to draw, and the small
helpers of the 2-D pictures (a lattice of points, capped arrows, the frame shown at a slider value,
a list of guidance scales)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from .. import schedule
from .._validate import check_number, check_steps, check_tensor
from ..diffusion import Diffusion

_COLOURS = {"linear": "tab:blue", "cosine": "tab:orange"}


def schedule_pair(T: int = 1000) -> dict[str, Diffusion]:
    r"""The schedules every chapter compares, by name: ``"linear"`` (:math:`\beta_t` from
    :math:`10^{-4}` to 0.02, Ho et al. 2020, Sec. 4) and ``"cosine"`` (Nichol & Dhariwal 2021,
    Eq. 17, :math:`s = 0.008`), ``T`` steps each."""
    return {
        "linear": Diffusion(schedule.linear_betas(T, 1e-4, 0.02)),
        "cosine": Diffusion(schedule.cosine_betas(T, 0.008)),
    }


def colour(name: str, i: int = 0) -> str:
    """The colour of schedule ``name`` in every figure (the ``i``-th unknown name gets its own)."""
    return _COLOURS.get(name, f"C{i + 2}")


class Chain(NamedTuple):
    r"""One run of the forward chain from ``x0`` ``[B, ...]``, kept at the steps ``ts``.

    ``x_t[i]``: :math:`x_t` for ``t = ts[i]``, ``[len(ts), B, ...]`` in ``x0``'s dtype.
    ``eps_bar[i]``: the merged noise :math:`\bar{\boldsymbol\epsilon}_t = \bar{\boldsymbol\epsilon}_{1:t}`
    of Ho et al. 2020, Eq. 4 (the step noises :math:`\boldsymbol\epsilon_1, \dots,
    \boldsymbol\epsilon_t` merged into one), defined by
    :math:`\mathbf x_t = \sqrt{\bar\alpha_t}\,\mathbf x_0 + \sqrt{1-\bar\alpha_t}\,\bar{\boldsymbol\epsilon}_t`, same shape (0 at
    ``t = 0``, where no noise was added). ``means[t]``, ``variances[t]``: float64
    ``[max(ts) + 1]``, the mean and variance of *all* entries of :math:`x_t` pooled, ``t = 0..max(ts)``.
    """

    ts: tuple[int, ...]
    x_t: torch.Tensor
    eps_bar: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor


@torch.no_grad()
def run_chain(
    diffusion: Diffusion,
    x0: torch.Tensor,
    ts: Iterable[int],
    generator: torch.Generator | None = None,
) -> Chain:
    r"""Iterate :math:`\mathbf x_t = \sqrt{\alpha_t}\,\mathbf x_{t-1} + \sqrt{\beta_t}\,\boldsymbol\epsilon_t`
    (Ho et al. 2020, Eq. 2) with :meth:`Diffusion.q_step`, a fresh :math:`\boldsymbol\epsilon_t` at
    every step ``t``, up to ``max(ts)``.

    The chain is linear, so :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + m_t`, where :math:`m_t` is the
    same chain started from :math:`m_0 = 0` and fed the same noises. It is run alongside, and
    :math:`\bar{\boldsymbol\epsilon}_t = m_t / \sqrt{1-\bar\alpha_t}` is the one standard normal that Eq. 4 says
    it is -- computed from the chain, not from Eq. 4, so comparing the two tests the derivation.

    Args: ``x0`` ``[B, ...]``; ``ts`` strictly increasing steps in ``[0, T]`` (0 keeps ``x0``);
    ``generator`` for every noise draw. Returns a :class:`Chain`."""
    x0 = check_tensor("x0", x0).detach()
    ts = check_steps(ts, 0, diffusion.T)
    x, m = x0, torch.zeros_like(x0)
    means = torch.empty(ts[-1] + 1, dtype=torch.float64)
    variances = torch.empty(ts[-1] + 1, dtype=torch.float64)
    keep, kept_x, kept_eps = set(ts), [], []
    for t in range(ts[-1] + 1):
        if t > 0:
            eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
            x = diffusion.q_step(x, t, noise=eps)
            m = diffusion.q_step(m, t, noise=eps)
        flat = x.double().flatten()
        means[t], variances[t] = flat.mean(), flat.var(correction=0)
        if t in keep:
            kept_x.append(x.clone())
            kept_eps.append(m / math.sqrt(1.0 - float(diffusion.alpha_bars[t])) if t else m.clone())
    return Chain(ts, torch.stack(kept_x), torch.stack(kept_eps), means, variances)


def grid_points(coords: torch.Tensor) -> torch.Tensor:
    """The ``G x G`` lattice of ``coords`` ``[G]`` as points ``[G*G, 2]``, row-major in y: point
    ``i * G + j`` is ``(coords[j], coords[i])``."""
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def arrows(field: torch.Tensor, factor: float, longest: float) -> tuple[np.ndarray, np.ndarray]:
    """``field`` ``[G, G, 2]`` times ``factor``, each arrow shortened to at most ``longest``: the
    ``u``, ``v`` arrays of ``quiver``."""
    v = factor * field
    norm = v.norm(dim=-1, keepdim=True)
    v = v * torch.where(norm > longest, longest / norm.clamp_min(1e-300), torch.ones_like(norm))
    return v[..., 0].numpy(), v[..., 1].numpy()


def frame_index(values: torch.Tensor, value: float, name: str, what: str = "") -> int:
    """The index of ``value`` in the kept ``values`` ``[K]`` (steps, times or scales of a set of
    frames, equal to 1e-12), else a ValueError: ``{name} must be one of {what} [...]``."""
    hits = (values - float(value)).abs() < 1e-12
    if not bool(hits.any()):
        where = f"{what} " if what else ""
        raise ValueError(f"{name} must be one of {where}{values.tolist()}, got {value!r}")
    return int(hits.nonzero()[0])


def check_scales(values: Sequence[float], name: str) -> list[float]:
    """Distinct finite numbers (guidance scales), sorted, as floats; else a ValueError."""
    values = list(values)
    if not values:
        raise ValueError(f"{name} must name at least one scale")
    for v in values:
        check_number(f"every entry of {name}", v)
    if len({float(v) for v in values}) != len(values):
        raise ValueError(f"{name} must be distinct, got {values}")
    return sorted(float(v) for v in values)
