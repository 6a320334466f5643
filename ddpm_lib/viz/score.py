r"""Chapter 5's pictures: the score field, Langevin chains and Tweedie's denoiser on MNIST.

* Score fields in the plane: the exact score :math:`\nabla\log q_t(\mathbf x_t)` of a noised
  :class:`~ddpm_lib.toy.GaussianMixture` next to a network's estimate
  :math:`\mathbf s_\theta = -\epsilon_\theta(\mathbf x_t, t)/\sqrt{1-\bar\alpha_t}`
  (:meth:`ddpm_lib.Diffusion.score_from_eps`) on a grid, one ``t`` per slider position
  (:func:`score_fields`, :func:`draw_score_fields`, :func:`explore_score_fields`).
* Langevin chains (:func:`ddpm_lib.sample.langevin`, recorded by a :class:`ddpm_lib.sample.Recorder`:
  ``torch.cat([recorder.x_t, end[None]])``) as dots over
  the target's density, one iteration per slider position (:func:`draw_langevin`,
  :func:`explore_langevin`).
* MNIST: :math:`\mathbf x_t`, Tweedie's denoiser :math:`\hat{\mathbf x}_0 =
  \mathbb E[\mathbf x_0\mid\mathbf x_t]` of the network and the per-pixel size of its score
  :math:`|\nabla\log q_t(\mathbf x_t)|` (:func:`tweedie_frames`, :func:`draw_tweedie`,
  :func:`explore_tweedie`).

Everything drawn is the library's numbers; the numeric checks of the chapter use
:func:`ddpm_lib.toy.score_error`, not these fields. Each ``draw_*(fig, ...)`` is shown live or as
an animation by :func:`ddpm_lib.viz.explore`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import numpy as np
import torch

from .._validate import check_int, check_number, check_steps, check_tensor
from ..diffusion import Diffusion, EpsModel
from ..toy import GaussianMixture
from ._live import explore
from .common import arrows, frame_index, grid_points
from .denoise import denoise_steps
from .images import draw_image


# ----------------------------------------------------------------------------- score fields
class ScoreFields(NamedTuple):
    r"""``ts`` int64 ``[K]``; ``coords`` float64 ``[G]`` (the grid along each axis, the same for
    x and y); ``exact`` and ``network`` float64 ``[K, G, G, 2]`` (the score at the point
    ``(coords[j], coords[i])`` is ``[k, i, j]``: row = y); ``density`` float64 ``[K, M, M]``,
    :math:`q_t` on the finer grid ``density_coords`` ``[M]`` (for the background)."""

    ts: torch.Tensor
    coords: torch.Tensor
    exact: torch.Tensor
    network: torch.Tensor
    density_coords: torch.Tensor
    density: torch.Tensor


def score_fields(
    model: EpsModel,
    diffusion: Diffusion,
    mixture: GaussianMixture,
    ts: Sequence[int],
    grid: int = 21,
    lim: float = 1.5,
    density_grid: int = 101,
) -> ScoreFields:
    r"""The exact score of :math:`q_t` (``mixture.noised(alpha_bar_t).score``) and the model's
    :math:`-\epsilon_\theta/\sqrt{1-\bar\alpha_t}` on a ``grid`` x ``grid`` lattice over
    ``[-lim, lim]^2``, for every step of ``ts`` (strictly increasing, in ``[1, T]``), and the
    density of :math:`q_t` on a finer ``density_grid`` lattice. A 2-D ``mixture``; one model call
    of ``grid**2`` points per step, no gradients."""
    if not isinstance(mixture, GaussianMixture) or mixture.D != 2:
        raise ValueError(f"mixture must be a 2-D toy.GaussianMixture, got {mixture!r}")
    steps = check_steps(ts, 1, diffusion.T)
    check_int("grid", grid, 2)
    check_int("density_grid", density_grid, 2)
    check_number("lim", lim, 0, lo_open=True)
    coords = torch.linspace(-lim, lim, grid, dtype=torch.float64)
    fine = torch.linspace(-lim, lim, density_grid, dtype=torch.float64)
    pts, fine_pts = grid_points(coords), grid_points(fine)
    exact, network, density = [], [], []
    with torch.no_grad():
        for t in steps:
            q_t = mixture.noised(diffusion.alpha_bars[t])
            eps = diffusion.call_model(model, pts, t).detach().cpu().double()
            exact.append(q_t.score(pts).reshape(grid, grid, 2))
            network.append(diffusion.score_from_eps(eps, t).reshape(grid, grid, 2))
            density.append(q_t.log_prob(fine_pts).exp().reshape(density_grid, density_grid))
    return ScoreFields(torch.tensor(steps), coords, torch.stack(exact), torch.stack(network),
                       fine, torch.stack(density))  # fmt: skip


def draw_score_fields(fig, t: int, *, fields: ScoreFields) -> None:
    r"""Two panels at step ``t`` (one of ``fields.ts``): left the exact score of :math:`q_t`,
    right the network's, as arrows over the density of :math:`q_t`. The score's size changes by
    orders of magnitude with ``t`` and grows linearly far from the data, so both panels share
    one arrow scale per ``t``: one grid cell stands for the 90th percentile of the exact score's
    length on the grid (given in the title), and longer arrows are shortened to 1.5 cells."""
    k = frame_index(fields.ts, t, "t", "the steps")
    c, fc = fields.coords.numpy(), fields.density_coords.numpy()
    cell = float(c[1] - c[0])
    unit = float(torch.quantile(fields.exact[k].norm(dim=-1).flatten(), 0.9))
    factor = cell / unit if unit > 0 else 1.0
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    panels = (
        (fields.exact[k], r"exact $\nabla\log q_t(\mathbf{x}_t)$", "tab:blue"),
        (fields.network[k], r"network $-\epsilon_\theta/\sqrt{1-\bar\alpha_t}$", "tab:red"),
    )
    for ax, (field, title, colour) in zip(axes, panels, strict=True):
        ax.contourf(fc, fc, fields.density[k].numpy(), levels=12, cmap="Greys", alpha=0.6)
        u, v = arrows(field, factor, 1.5 * cell)
        ax.quiver(c, c, u, v, color=colour, angles="xy", scale_units="xy", scale=1.0,
                  width=0.004)  # fmt: skip
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
        ax.set_xlim(c[0] - cell, c[-1] + cell)
        ax.set_ylim(c[0] - cell, c[-1] + cell)
    fig.suptitle(f"$t = {t}$: one grid cell of arrow = a score of length {unit:.3g}", fontsize=11)


def explore_score_fields(fields: ScoreFields, static: bool | None = None):
    """:func:`draw_score_fields` with a ``t`` slider over ``fields.ts``; in the static book an
    animation over them (see :func:`ddpm_lib.viz.explore`)."""
    draw = partial(draw_score_fields, fields=fields)
    return explore(draw, {"t": fields.ts.tolist()}, "t", figsize=(9.0, 4.6), static=static)


# ---------------------------------------------------------------------------------- Langevin
def _check_trajectory(trajectory: object) -> torch.Tensor:
    trajectory = check_tensor("trajectory", trajectory)
    if trajectory.dim() != 3 or trajectory.shape[2] != 2:
        raise ValueError(
            "trajectory must be the states of sample.langevin on 2-D points (a Recorder's x_t "
            f"and the end), shape [steps + 1, n, 2], got {list(trajectory.shape)}"
        )
    return trajectory


def draw_langevin(
    fig, i: int, *, trajectory: torch.Tensor, mixture: GaussianMixture, lim: float = 1.5
) -> None:
    r"""The Langevin chains at iteration ``i`` (``trajectory[i]``, ``trajectory`` ``[N + 1, n, 2]``)
    as dots over the contours of the target density ``mixture`` (2-D) on ``[-lim, lim]^2``."""
    trajectory = _check_trajectory(trajectory)
    check_int("i", i, 0)
    if i >= trajectory.shape[0]:
        raise ValueError(f"i must be in [0, {trajectory.shape[0] - 1}], got {i}")
    if not isinstance(mixture, GaussianMixture) or mixture.D != 2:
        raise ValueError(f"mixture must be a 2-D toy.GaussianMixture, got {mixture!r}")
    coords = torch.linspace(-lim, lim, 121, dtype=torch.float64)
    density = mixture.log_prob(grid_points(coords)).exp().reshape(121, 121)
    ax = fig.add_subplot(1, 1, 1)
    ax.contour(coords.numpy(), coords.numpy(), density.numpy(), levels=8, cmap="Blues")
    pts = trajectory[i].detach().cpu().double().numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=4, color="tab:red", alpha=0.5, linewidths=0)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
    ax.set_title(f"Langevin iteration $i = {i}$ ({pts.shape[0]} chains)", fontsize=10)


def explore_langevin(
    trajectory: torch.Tensor,
    mixture: GaussianMixture,
    n_frames: int = 25,
    lim: float = 1.5,
    static: bool | None = None,
):
    """:func:`draw_langevin` with an ``i`` slider over ``n_frames`` iterations spread evenly
    (first and last included); in the static book an animation over them."""
    trajectory = _check_trajectory(trajectory)
    check_int("n_frames", n_frames, 1)
    last = trajectory.shape[0] - 1
    its = sorted({int(v) for v in np.linspace(0, last, min(n_frames, last + 1)).round()})
    draw = partial(draw_langevin, trajectory=trajectory, mixture=mixture, lim=lim)
    return explore(draw, {"i": its}, "i", figsize=(4.8, 4.8), static=static)


# ----------------------------------------------------------------------- Tweedie on MNIST
class TweedieFrames(NamedTuple):
    r"""``steps`` int64 ``[K]``; ``x_t``, ``x0_pred`` (Tweedie's :math:`\hat{\mathbf x}_0`,
    clamped to [-1, 1] for display) and ``score_norm`` (:math:`|\nabla\log q_t(\mathbf x_t)|`
    per pixel, the network's estimate) ``[K, B, C, H, W]``, on the CPU."""

    steps: torch.Tensor
    x_t: torch.Tensor
    x0_pred: torch.Tensor
    score_norm: torch.Tensor


def tweedie_frames(
    diffusion: Diffusion, model: EpsModel, x0: torch.Tensor, noise: torch.Tensor, ts: Sequence[int]
) -> TweedieFrames:
    r"""For the digits ``x0`` ``[B, C, H, W]`` noised with one fixed :math:`\bar\epsilon_t`
    (``noise``) to each step of ``ts``: :math:`\mathbf x_t`, the network's
    :math:`\hat{\mathbf x}_0` (:func:`ddpm_lib.viz.denoise.denoise_steps`: the ε-form of
    :math:`\hat{\mathbf x}_0` is Tweedie's formula with the score
    :math:`-\epsilon_\theta/\sqrt{1-\bar\alpha_t}`) and the size of that score per pixel
    (:meth:`ddpm_lib.Diffusion.score_from_eps`). One model call of the batch per step."""
    seen: list[torch.Tensor] = []

    def recording(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = model(x_t, t)
        seen.append(eps.detach())
        return eps

    frames = denoise_steps(diffusion, recording, x0, noise, ts)
    norms = [
        diffusion.score_from_eps(eps, int(t)).abs().cpu()
        for eps, t in zip(seen, frames.steps, strict=True)
    ]
    return TweedieFrames(frames.steps, frames.x_t, frames.x0_pred, torch.stack(norms))


def draw_tweedie(fig, t: int, *, frames: TweedieFrames, n_show: int = 4) -> None:
    r"""Three rows for the first ``n_show`` digits at step ``t`` (one of ``frames.steps``):
    :math:`\mathbf x_t`, Tweedie's :math:`\hat{\mathbf x}_0 = \mathbb E[\mathbf x_0\mid\mathbf x_t]`
    and :math:`|\nabla\log q_t(\mathbf x_t)|` per pixel (one colour scale for the row, from 0 to
    its largest value, given in the row's title)."""
    check_int("n_show", n_show, 1)
    k = frame_index(frames.steps, t, "t", "the steps")
    n = min(n_show, frames.x_t.shape[1])
    axes = fig.subplots(3, n, squeeze=False)
    vmax = float(frames.score_norm[k, :n].max())
    for i in range(n):
        draw_image(axes[0, i], frames.x_t[k, i])
        draw_image(axes[1, i], frames.x0_pred[k, i])
        image = frames.score_norm[k, i].reshape(frames.score_norm.shape[-2:])
        axes[2, i].imshow(image.numpy(), cmap="magma", vmin=0.0, vmax=vmax or 1.0)
        for row in range(3):
            axes[row, i].set_axis_off()
    axes[0, 0].set_title(r"$\mathbf{x}_t$", fontsize=9, loc="left")
    axes[1, 0].set_title(r"$\hat{\mathbf{x}}_0 = \mathbb{E}[\mathbf{x}_0\mid\mathbf{x}_t]$",
                         fontsize=9, loc="left")  # fmt: skip
    axes[2, 0].set_title(rf"$|\nabla\log q_t|$ (max {vmax:.3g})", fontsize=9, loc="left")
    fig.suptitle(f"$t = {t}$", fontsize=11)


def explore_tweedie(frames: TweedieFrames, n_show: int = 4, static: bool | None = None):
    """:func:`draw_tweedie` with a ``t`` slider over ``frames.steps``; in the static book an
    animation over them."""
    check_int("n_show", n_show, 1)
    draw: Callable = partial(draw_tweedie, frames=frames, n_show=n_show)
    width = 1.3 * min(n_show, frames.x_t.shape[1]) + 0.6
    return explore(draw, {"t": frames.steps.tolist()}, "t", figsize=(width, 4.4), static=static)
