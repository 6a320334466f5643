r"""Chapter 7's toy picture: what classifier guidance does to a distribution, on the 2-D toy
with the exact classifier. For each :math:`\gamma` the exact tilted density
:math:`p(\mathbf x)\,q(y\mid\mathbf x)^\gamma / Z` next to the samples that
:func:`ddpm_lib.sample.ddim` guided by :class:`~ddpm_lib.toy.MixtureClassifier` produces
(:func:`tilted_frames`, :func:`draw_tilted`, :func:`explore_tilted`; re-exported by
:mod:`ddpm_lib.viz.guidance`). Every density comes from :class:`~ddpm_lib.toy.GaussianMixture`,
every sample from the library's sampler."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import numpy as np
import torch

from .. import sample
from .._validate import check_int, check_number
from ..diffusion import Diffusion
from ..toy import GaussianMixture, MixtureClassifier
from ._live import explore
from .common import check_scales, frame_index, grid_points


class TiltedFrames(NamedTuple):
    r"""What :func:`draw_tilted` shows, float64 on the CPU.

    * ``label``: the class :math:`y`; ``gammas`` ``[G]`` (increasing).
    * ``coords`` ``[M]`` (the grid along each axis); ``density`` ``[G, M, M]``: the tilted density
      :math:`p(\mathbf x)\,q(y\mid\mathbf x)^\gamma / Z` at ``(coords[j], coords[i])`` = ``[g, i,
      j]`` (row = second coordinate), :math:`Z` by the sum over the grid; ``conditional``
      ``[M, M]``: the exact Bayes conditional :math:`q(\mathbf x\mid y)` (the :math:`\gamma = 1`
      density, not normalised on the grid).
    * ``samples`` ``[G, n, 2]``: DDIM samples guided by the exact classifier with
      :math:`\gamma`, all from one ``x_T``; ``tilted_mean`` ``[G, 2]`` (over the grid) and
      ``sample_mean`` ``[G, 2]``; ``steps``: DDIM steps.
    """

    label: int
    gammas: torch.Tensor
    coords: torch.Tensor
    density: torch.Tensor
    conditional: torch.Tensor
    samples: torch.Tensor
    tilted_mean: torch.Tensor
    sample_mean: torch.Tensor
    steps: int


def tilted_frames(
    mixture: GaussianMixture,
    diffusion: Diffusion,
    label: int,
    gammas: Sequence[float],
    n: int = 1000,
    steps: int = 200,
    grid: int = 121,
    lim: float = 1.75,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> TiltedFrames:
    r"""For each :math:`\gamma` of ``gammas``: the exact tilted density
    :math:`p(\mathbf x)\,q(y\mid\mathbf x)^\gamma / Z` on a ``grid`` x ``grid`` grid over
    :math:`[-\text{lim}, \text{lim}]^2`
    (:meth:`~ddpm_lib.toy.GaussianMixture.tilted_log_prob`), and ``n`` samples of
    :func:`ddpm_lib.sample.ddim` (``steps`` steps,
    ``eta``) guided towards ``label`` by the exact noisy classifier
    :class:`ddpm_lib.toy.MixtureClassifier` with ``classifier_scale`` :math:`\gamma`, on the
    exact unconditional ε-model (``mixture.eps_model``, null label: ``guidance_scale=0.0``),
    from one float64 :math:`\mathbf x_T` drawn from ``generator``; no clipping.

    :math:`\gamma = 0` is :math:`p(\mathbf x)` and :math:`\gamma = 1` the Bayes conditional
    :math:`q(\mathbf x\mid y)`, which the sampler reproduces; for :math:`\gamma > 1` the guided
    score at each :math:`t` is that of :math:`q_t(\mathbf x)\,q(y\mid\mathbf x_t)^\gamma`, and
    these are not the marginals of one diffusion, so the samples need not follow the
    :math:`t = 0` tilted density (the picture shows by how much)."""
    if not isinstance(mixture, GaussianMixture) or mixture.D != 2:
        raise ValueError(f"mixture must be a 2-D toy.GaussianMixture, got {mixture!r}")
    check_int("label", label, 0, mixture.K - 1)
    gammas = check_scales(gammas, "gammas")
    for name, value, lo in (("n", n, 1), ("steps", steps, 1), ("grid", grid, 2)):
        check_int(name, value, lo)
    check_number("lim", lim, 0, lo_open=True)
    coords = torch.linspace(-lim, lim, grid, dtype=torch.float64)
    pts = grid_points(coords)
    cell = float(coords[1] - coords[0]) ** 2
    # gamma = 1 is the Bayes conditional q(x | y) = q(x) q(y | x) / pi_y
    log_cond = mixture.tilted_log_prob(pts, label, 1.0) - mixture.weights[label].log()
    conditional = log_cond.exp().reshape(grid, grid)
    model, clf = mixture.eps_model(diffusion), MixtureClassifier(mixture, diffusion)
    x_T = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    densities, samples, means = [], [], []
    for gamma in gammas:
        w = torch.softmax(mixture.tilted_log_prob(pts, label, gamma), dim=0)  # sums to 1
        densities.append((w / cell).reshape(grid, grid))
        means.append((w[:, None] * pts).sum(0))
        x = sample.ddim(model, diffusion, x_T=x_T, steps=steps, eta=eta, labels=label,
                        guidance_scale=0.0, classifier=clf, classifier_scale=gamma,
                        clip_samples=False, threshold="none", generator=generator)  # fmt: skip
        samples.append(x.detach().double().cpu())
    samples_t = torch.stack(samples)
    return TiltedFrames(label, torch.tensor(gammas, dtype=torch.float64), coords,
                        torch.stack(densities), conditional, samples_t, torch.stack(means),
                        samples_t.mean(1), steps)  # fmt: skip


def draw_tilted(fig, gamma: float, *, frames: TiltedFrames) -> None:
    r"""Two panels at ``gamma`` (one of ``frames.gammas``). Left: the exact tilted density (grey
    fill), the Bayes conditional :math:`q(\mathbf x\mid y)` (orange contours) and the guided
    samples (red dots), with both means (black cross: tilted; red plus: samples). Right: the
    first coordinate's marginal, tilted density vs Bayes conditional vs histogram of the
    samples."""
    k = frame_index(frames.gammas, gamma, "gamma")
    c = frames.coords.numpy()
    cell = float(c[1] - c[0])
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    left.contourf(c, c, frames.density[k].numpy(), levels=12, cmap="Greys")
    left.contour(c, c, frames.conditional.numpy(), levels=5, colors="tab:orange",
                 linewidths=0.9)  # fmt: skip
    pts = frames.samples[k].numpy()
    left.scatter(pts[:, 0], pts[:, 1], s=3, color="tab:red", alpha=0.35, linewidths=0)
    tm, sm = frames.tilted_mean[k].numpy(), frames.sample_mean[k].numpy()
    left.scatter(*tm, marker="x", s=60, color="black", zorder=4, label=f"tilted mean {_pair(tm)}")
    left.scatter(*sm, marker="+", s=80, color="tab:red", zorder=4, label=f"sample mean {_pair(sm)}")
    left.set(xlim=(c[0], c[-1]), ylim=(c[0], c[-1]), aspect="equal")
    left.legend(loc="lower right", fontsize=7, framealpha=0.8)
    left.set_title(f"$p(\\mathbf{{x}})\\,q(y\\mid\\mathbf{{x}})^\\gamma/Z$, class {frames.label}"
                   " (orange: $q(\\mathbf{x}\\mid y)$)", fontsize=9)  # fmt: skip
    right.plot(c, frames.density[k].sum(0).numpy() * cell, color="black", label="tilted (exact)")
    right.plot(c, frames.conditional.sum(0).numpy() * cell, color="tab:orange", ls="--",
               label="Bayes $q(x_1\\mid y)$")  # fmt: skip
    right.hist(pts[:, 0], bins=40, range=(c[0], c[-1]), density=True, color="tab:red",
               alpha=0.4, label=f"guided samples (n = {pts.shape[0]})")  # fmt: skip
    right.set_xlabel("$x_1$")
    right.legend(loc="upper left", fontsize=7, framealpha=0.8)
    right.set_title("first coordinate", fontsize=9)
    fig.suptitle(f"classifier guidance with the exact classifier, $\\gamma = {gamma:g}$ "
                 f"(DDIM {frames.steps} steps)", fontsize=11)  # fmt: skip


def _pair(v: np.ndarray) -> str:
    return f"({v[0]:.2f}, {v[1]:.2f})"


def explore_tilted(frames: TiltedFrames, static: bool | None = None):
    r""":func:`draw_tilted` with a :math:`\gamma` slider over ``frames.gammas``; in the static
    book an animation over them."""
    draw = partial(draw_tilted, frames=frames)
    gammas = [float(g) for g in frames.gammas]
    return explore(draw, {"gamma": gammas}, "gamma", figsize=(9.5, 4.6), static=static,
                   labels={"gamma": "γ"})  # fmt: skip
