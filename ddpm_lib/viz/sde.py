r"""Chapter 6's picture: the VP-SDE on the 2-D toy, with time as the slider.

At each continuous time :math:`\tau \in [0, 1]` (network time :math:`t = \tau T`,
:class:`ddpm_lib.sde.VPSDE`) the figure shows the exact marginal :math:`q_\tau`
(``mixture.noised(alpha_bar(tau))``), its score field :math:`\nabla\log q_\tau(\mathbf x)` next to
the network's :math:`-\epsilon_\theta(\mathbf x, \tau T)/\sqrt{1-\bar\alpha(\tau)}`, and a few
paths of the reverse-time SDE and of the probability-flow ODE that start from the same
:math:`\mathbf x(1)`, drawn from :math:`\tau = 1` down to the slider's :math:`\tau`
(:func:`sde_frames`, :func:`draw_sde`, :func:`explore_sde`).

No sampler math lives here: the paths are what a :class:`ddpm_lib.sample.Recorder` sees as the
``callback`` of :func:`ddpm_lib.sample.reverse_sde` (the state before every step) and of
:func:`ddpm_lib.sample.probability_flow` (the solver's states at the same times, ``t_eval``), and
their ends are the samplers' outputs."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import numpy as np
import torch

from .. import sample
from .._validate import check_int, check_number
from ..diffusion import Diffusion, EpsModel
from ..models import CallCounter
from ..sde import VPSDE
from ..toy import GaussianMixture
from ._live import explore
from .common import arrows, frame_index, grid_points


class SDEFrames(NamedTuple):
    r"""What :func:`draw_sde` shows, all float64 on the CPU.

    * ``taus`` ``[K]``, decreasing (the order in which the reverse processes pass them), and
      ``alpha_bars`` ``[K]``, :math:`\bar\alpha(\tau)` there.
    * ``coords`` ``[G]`` (the arrow grid along each axis); ``exact`` and ``network``
      ``[K, G, G, 2]``, the score at the point ``(coords[j], coords[i])`` is ``[k, i, j]``
      (row = y); ``network`` is NaN at :math:`\tau = 0`, where the network is not defined.
    * ``density_coords`` ``[M]`` and ``density`` ``[K, M, M]``: :math:`q_\tau` on a finer grid.
    * ``path_taus`` ``[S + 1]``: :math:`1, (S-1)/S, \dots, 1/S, 0`; ``sde_paths`` and
      ``ode_paths`` ``[S + 1, n, 2]``, the states there (row 0 is the shared :math:`\mathbf x(1)`,
      row ``S`` the samplers' outputs); ``ode_nfe``: network evaluations of the ODE sampler.
    """

    taus: torch.Tensor
    alpha_bars: torch.Tensor
    coords: torch.Tensor
    exact: torch.Tensor
    network: torch.Tensor
    density_coords: torch.Tensor
    density: torch.Tensor
    path_taus: torch.Tensor
    sde_paths: torch.Tensor
    ode_paths: torch.Tensor
    ode_nfe: int


def _check_taus(taus: Sequence[float]) -> list[float]:
    values = list(taus)
    if not values:
        raise ValueError("taus must name at least one time in [0, 1]")
    for tau in values:
        check_number("every tau in taus", tau, 0, 1)
    if len(set(float(v) for v in values)) != len(values):
        raise ValueError(f"taus must be distinct, got {values}")
    return sorted((float(v) for v in values), reverse=True)


def _state_dtype(model: EpsModel) -> torch.dtype:
    """The dtype the model computes in: its parameters' (a network), else float64 (the exact toy)."""
    params = getattr(model, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    return first.dtype if first is not None else torch.float64


def _sde_path(model, diffusion, x1: torch.Tensor, steps: int, generator) -> torch.Tensor:
    r"""The states :func:`ddpm_lib.sample.reverse_sde` visits: the state before each of its
    ``steps`` steps (at :math:`\tau = 1, \dots, 1/S`) and its output (:math:`\tau = 0`)."""
    rec = sample.Recorder()
    out = sample.reverse_sde(model, diffusion, x_T=x1, steps=steps, generator=generator,
                             clip_samples=False, callback=rec)  # fmt: skip
    return torch.cat([rec.x_t, out.detach().cpu()[None]]).double()


def _ode_path(model, diffusion, x1, path_taus, rtol, atol) -> tuple[torch.Tensor, int]:
    """The states of :func:`ddpm_lib.sample.probability_flow` from ``x1`` at ``path_taus`` (the
    solver's interpolant, recorded by the callback; the last one is the sampler's output) and that
    sampler's NFE (the calls counted, less the callback's one per recorded time)."""
    counted, rec = CallCounter(model), sample.Recorder()
    end = sample.probability_flow(counted, diffusion, x_T=x1, rtol=rtol, atol=atol,
                                  clip_samples=False, callback=rec, t_eval=path_taus[:-1])  # fmt: skip
    path = torch.cat([rec.x_t, end.detach().cpu()[None]]).double()
    return path, counted.calls - len(rec.steps)


def sde_frames(
    model: EpsModel,
    diffusion: Diffusion,
    mixture: GaussianMixture,
    taus: Sequence[float],
    n_paths: int = 6,
    grid: int = 15,
    lim: float = 2.0,
    density_grid: int = 81,
    steps: int = 200,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    generator: torch.Generator | None = None,
) -> SDEFrames:
    r"""Everything :func:`draw_sde` shows, for the 2-D ``mixture`` and an ε-``model`` of it (e.g.
    ``mixture.eps_model(diffusion)``, the exact one, or a trained MLP).

    Args:
        taus: the times to show, distinct, in :math:`[0, 1]` (stored in decreasing order).
        n_paths: paths of each process, from ``n_paths`` draws of :math:`\mathbf x(1) \sim
            \mathcal N(\mathbf 0, \mathbf I)` (``generator``; the SDE's noise continues that stream).
        grid, lim, density_grid: arrow grid ``grid`` x ``grid`` and density grid over
            :math:`[-\text{lim}, \text{lim}]^2`.
        steps: Euler–Maruyama steps of the reverse SDE (``sample.reverse_sde``); the ODE path is
            recorded at the same :math:`S + 1` times.
        rtol, atol: tolerances of the ODE solver (``sample.probability_flow``, ``sde.solve_flow``).

    One model call of ``grid**2`` points per time for the network's field, ``steps`` calls of
    ``n_paths`` points for the SDE, and the ODE solver's calls; no gradients."""
    if not isinstance(mixture, GaussianMixture) or mixture.D != 2:
        raise ValueError(f"mixture must be a 2-D toy.GaussianMixture, got {mixture!r}")
    taus = _check_taus(taus)
    for name, value, lo in (("n_paths", n_paths, 1), ("grid", grid, 2),
                            ("density_grid", density_grid, 2), ("steps", steps, 2)):  # fmt: skip
        check_int(name, value, lo)
    check_number("lim", lim, 0, lo_open=True)
    sde = VPSDE(diffusion)
    dtype = _state_dtype(model)
    coords = torch.linspace(-lim, lim, grid, dtype=torch.float64)
    fine = torch.linspace(-lim, lim, density_grid, dtype=torch.float64)
    pts, fine_pts = grid_points(coords), grid_points(fine)
    alpha_bars, exact, network, density = [], [], [], []
    with torch.no_grad():
        for tau in taus:
            ab = sde.alpha_bar(tau).double()
            q_tau = mixture.noised(ab)
            alpha_bars.append(ab)
            exact.append(q_tau.score(pts).reshape(grid, grid, 2))
            if tau > 0.0:
                s = sde.score(model, pts.to(dtype), tau).double().cpu()
            else:
                s = torch.full_like(pts, float("nan"))
            network.append(s.reshape(grid, grid, 2))
            density.append(q_tau.log_prob(fine_pts).exp().reshape(density_grid, density_grid))
    x1 = torch.randn(n_paths, 2, generator=generator, dtype=torch.float64).to(dtype)
    path_taus = torch.arange(steps, -1, -1, dtype=torch.float64) / steps
    sde_paths = _sde_path(model, diffusion, x1, steps, generator)
    ode_paths, nfe = _ode_path(model, diffusion, x1, path_taus.tolist(), rtol, atol)
    return SDEFrames(torch.tensor(taus, dtype=torch.float64), torch.stack(alpha_bars), coords,
                     torch.stack(exact), torch.stack(network), fine, torch.stack(density),
                     path_taus, sde_paths, ode_paths, nfe)  # fmt: skip


def draw_sde(fig, tau: float, *, frames: SDEFrames, field: str = "both") -> None:
    r"""Two panels at time ``tau`` (one of ``frames.taus``), both over the density of
    :math:`q_\tau`. Left: the score field, the exact one (blue) and/or the network's (red),
    ``field`` = ``"exact"``, ``"network"`` or ``"both"``, one arrow scale for both (one grid cell
    = the 90th percentile of the exact score's length, given in the title; longer arrows are
    shortened to 1.5 cells). Right: the reverse-SDE paths (red) and the probability-flow-ODE paths
    (blue) from their shared start :math:`\mathbf x(1)` (black crosses) down to the last recorded
    time :math:`\ge \tau`, with dots where they are then."""
    if field not in ("exact", "network", "both"):
        raise ValueError(f"field must be 'exact', 'network' or 'both', got {field!r}")
    k = frame_index(frames.taus, tau, "tau", "the frames' times")
    c, fc = frames.coords.numpy(), frames.density_coords.numpy()
    cell = float(c[1] - c[0])
    unit = float(torch.quantile(frames.exact[k].norm(dim=-1).flatten(), 0.9))
    factor = cell / unit if unit > 0 else 1.0
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    for ax in axes:
        ax.contourf(fc, fc, frames.density[k].numpy(), levels=12, cmap="Greys", alpha=0.6)
        ax.set_aspect("equal")
        ax.set_xlim(c[0] - cell, c[-1] + cell)
        ax.set_ylim(c[0] - cell, c[-1] + cell)
    shown = []
    if field in ("exact", "both"):
        shown.append((frames.exact[k], "tab:blue", 0.006, r"exact $\nabla\log q_\tau$"))
    has_network = not bool(frames.network[k].isnan().any())
    if field in ("network", "both") and has_network:
        shown.append((frames.network[k], "tab:red", 0.003, r"network $-\epsilon_\theta/\sigma$"))
    for vectors, colour, width, label in shown:
        u, v = arrows(vectors, factor, 1.5 * cell)
        axes[0].quiver(c, c, u, v, color=colour, angles="xy", scale_units="xy", scale=1.0,
                       width=width, label=label)  # fmt: skip
    if shown:
        axes[0].legend(loc="lower left", fontsize=7, framealpha=0.8)
    note = "" if has_network or field == "exact" else " (network undefined at $\\tau = 0$)"
    axes[0].set_title(f"score, 1 cell = length {unit:.3g}{note}", fontsize=9)
    last = int((frames.path_taus >= float(tau) - 1e-12).sum()) - 1
    # at most ~60 points per drawn path (always the first and the current one): a 1000-step
    # SDE path drawn in full is a scribble that hides the density
    stride = max(1, (frames.path_taus.numel() - 1) // 60)
    rows = sorted({*range(0, last + 1, stride), last})
    styles = ((frames.sde_paths, "tab:red", 0.6, 0.45, "reverse SDE"),
              (frames.ode_paths, "tab:blue", 1.3, 0.9, "PF-ODE"))  # fmt: skip
    for paths, colour, lw, alpha, name in styles:
        p = paths[rows].numpy()
        axes[1].plot(p[:, :, 0], p[:, :, 1], color=colour, lw=lw, alpha=alpha)
        axes[1].scatter(p[-1, :, 0], p[-1, :, 1], s=16, color=colour, zorder=3, label=name)
    start = frames.sde_paths[0].numpy()
    axes[1].scatter(start[:, 0], start[:, 1], marker="x", s=18, color="black", zorder=4,
                    label=r"$\mathbf{x}(1)$")  # fmt: skip
    axes[1].legend(loc="lower left", fontsize=7, framealpha=0.8)
    axes[1].set_title(f"paths from $\\tau = 1$ to $\\tau = {frames.path_taus[last]:.3g}$",
                      fontsize=9)  # fmt: skip
    ab = float(frames.alpha_bars[k])
    fig.suptitle(f"$\\tau = {float(tau):.3g}$, $\\bar\\alpha(\\tau) = {ab:.3g}$", fontsize=11)


def explore_sde(frames: SDEFrames, static: bool | None = None, field: str = "both"):
    r""":func:`draw_sde` with a :math:`\tau` slider over ``frames.taus`` (from 1 towards 0, the
    direction the reverse processes run); in the static book an animation over them (see
    :func:`ddpm_lib.viz.explore`)."""
    if field not in ("exact", "network", "both"):
        raise ValueError(f"field must be 'exact', 'network' or 'both', got {field!r}")
    draw = partial(draw_sde, frames=frames, field=field)
    taus = [float(t) for t in np.asarray(frames.taus)]
    return explore(draw, {"tau": taus}, "tau", figsize=(9.5, 4.9), static=static,
                   labels={"tau": "τ"})  # fmt: skip
