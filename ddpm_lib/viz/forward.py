r"""Chapter 1, the forward Markov chain: the figures.

The chain :math:`q(\mathbf x_t \mid \mathbf x_{t-1}) = \mathcal N(\sqrt{\alpha_t}\,\mathbf x_{t-1},\
\beta_t \mathbf I)` (Ho et al. 2020, Eq. 2) is run by :func:`ddpm_lib.viz.run_chain`; the exact marginal of the 1-D toy it is
checked against is :meth:`ddpm_lib.toy.GaussianMixture.noised`. Every ``draw_*`` draws into a
matplotlib figure; ``draw_noising(fig, t, schedule, ...)`` is also shown live or as an animation by
:func:`explore_noising`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial

import numpy as np
import torch
from matplotlib import colors
from scipy import stats

from .._validate import check_choice
from ..diffusion import Diffusion
from ..toy import GaussianMixture
from ._live import explore
from .common import Chain, colour
from .images import draw_image


def _kept(chain: Chain, t: int) -> torch.Tensor:
    """:math:`x_t` of ``chain``; ValueError unless ``t`` is one of its kept steps."""
    if t not in chain.ts:
        raise ValueError(f"t must be one of the chain's steps {list(chain.ts)}, got {t}")
    return chain.x_t[chain.ts.index(t)]


def _std_normal_curve(ax, lo: float = -4.0, hi: float = 4.0) -> None:
    v = np.linspace(lo, hi, 301)
    ax.plot(v, stats.norm.pdf(v), "k--", lw=1.2, label=r"$\mathcal{N}(0,1)$")


def _hist(ax, values: torch.Tensor, lo: float = -4.0, hi: float = 4.0, bins: int = 81) -> None:
    ax.hist(values.flatten().double().numpy(), bins=np.linspace(lo, hi, bins), density=True,
            color="tab:gray", alpha=0.7)  # fmt: skip


def draw_betas(fig, schedules: Mapping[str, Diffusion]) -> None:
    r"""Left: :math:`\beta_t` of each named schedule (log scale); right: :math:`\bar\alpha_t =
    \prod_{s\le t}(1-\beta_s)`, the fraction of the data's variance still left at step ``t``."""
    ax_b, ax_a = fig.subplots(1, 2)
    for i, (name, d) in enumerate(schedules.items()):
        c = colour(name, i)
        ax_b.plot(np.arange(1, d.T + 1), d.betas[1:].numpy(), color=c, label=name)
        ax_a.plot(np.arange(d.T + 1), d.alpha_bars.numpy(), color=c, label=name)
    ax_b.set(yscale="log", xlabel="$t$", ylabel=r"$\beta_t$", title="noise added per step")
    ax_a.set(xlabel="$t$", ylabel=r"$\bar\alpha_t$", title=r"signal variance left, $\bar\alpha_t$")
    for ax in (ax_b, ax_a):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()


def draw_noising(fig, t: int, schedule: str, *, chains: Mapping[str, Chain], n_show: int = 5):
    r"""``n_show`` digits of ``chains[schedule]`` at step ``t`` (one of the chain's ``ts``) and the
    histogram of all its pixels at ``t`` with the :math:`\mathcal N(0, 1)` density. Images are
    ``[B, 1, H, W]``, in [-1, 1] at ``t = 0``."""
    check_choice("schedule", schedule, tuple(chains))
    chain = chains[schedule]
    x_t = _kept(chain, t)
    grid = fig.add_gridspec(1, n_show + 4, left=0.01, right=0.99, top=0.8, bottom=0.13, wspace=0.08)
    for i in range(min(n_show, x_t.shape[0])):
        ax = fig.add_subplot(grid[0, i])
        draw_image(ax, x_t[i])
        ax.set_axis_off()
    ax = fig.add_subplot(grid[0, n_show + 1 :])
    _hist(ax, x_t)
    _std_normal_curve(ax)
    ax.set(ylim=(0, 1.0), yticks=[])
    ax.set_title(f"all pixels of {x_t.shape[0]} digits: mean {float(chain.means[t]):+.2f}, "
                 f"var {float(chain.variances[t]):.2f}", fontsize=9)  # fmt: skip
    ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"{schedule} schedule, $t = {t}$", x=0.27, fontsize=11)


def explore_noising(chains: Mapping[str, Chain], n_show: int = 5, static: bool | None = None):
    """The noising explorer (:func:`draw_noising`): controls ``t`` (the chains' common ``ts``) and
    ``schedule``; in the static book an animation over ``t`` for the first schedule (see
    :func:`ddpm_lib.viz.explore`)."""
    if not chains:
        raise ValueError("chains must hold at least one schedule")
    ts = {chain.ts for chain in chains.values()}
    if len(ts) != 1:
        raise ValueError(f"all chains must keep the same steps ts, got {sorted(ts)}")
    draw = partial(draw_noising, chains=chains, n_show=n_show)
    controls = {"t": list(ts.pop()), "schedule": list(chains)}
    return explore(draw, controls, "t", figsize=(9.0, 2.4), static=static)


def draw_pixel_histograms(fig, chains: Mapping[str, Chain], ts: Iterable[int]) -> None:
    r"""One row per schedule, one panel per ``t`` (each in the chains' ``ts``): the histogram of
    every pixel value of :math:`x_t` against the :math:`\mathcal N(0, 1)` density."""
    ts = tuple(ts)
    axes = fig.subplots(len(chains), len(ts), sharex=True, sharey=True, squeeze=False)
    for row, (name, chain) in zip(axes, chains.items(), strict=True):
        for ax, t in zip(row, ts, strict=True):
            _hist(ax, _kept(chain, t))
            _std_normal_curve(ax)
            ax.set_title(f"{name}, $t={t}$\nmean {float(chain.means[t]):+.2f}, "
                         f"var {float(chain.variances[t]):.2f}", fontsize=9)  # fmt: skip
            ax.set(ylim=(0, 1.0), yticks=[])
    axes[-1, -1].legend(fontsize=8)
    fig.tight_layout()


def draw_pixel_moments(
    fig, chains: Mapping[str, Chain], schedules: Mapping[str, Diffusion]
) -> None:
    r"""Pooled mean and variance of the pixels of :math:`x_t` against :math:`t` (solid) with the
    predictions :math:`\sqrt{\bar\alpha_t}\,m_0` and :meth:`Diffusion.variance_trajectory` (black
    dashed); right: what the variance would do without the factor :math:`\sqrt{1-\beta_t}`,
    :math:`v_0 + \sum_{s\le t}\beta_s`. Each chain must have run to ``T``."""
    ax_m, ax_v, ax_x = fig.subplots(1, 3)
    for i, (name, chain) in enumerate(chains.items()):
        d, c = schedules[name], colour(name, i)
        if len(chain.means) != d.T + 1:
            raise ValueError(
                f"chain {name!r} must run to T = {d.T}, it ran to {len(chain.means) - 1}"
            )
        t = np.arange(d.T + 1)
        ax_m.plot(t, chain.means.numpy(), color=c, lw=2.5, alpha=0.6, label=f"{name}, simulated")
        ax_m.plot(t, (d.alpha_bars.sqrt() * chain.means[0]).numpy(), "k--", lw=1)
        v0 = float(chain.variances[0])
        ax_v.plot(
            t, chain.variances.numpy(), color=c, lw=2.5, alpha=0.6, label=f"{name}, simulated"
        )
        ax_v.plot(t, d.variance_trajectory(v0).numpy(), "k--", lw=1)
        ax_x.plot(t, (v0 + torch.cumsum(d.betas, 0)).numpy(), color=c, label=f"{name}, no shrink")
        ax_x.plot(t, chain.variances.numpy(), color=c, lw=1, ls=":")
    ax_x.plot([], [], "k:", lw=1, label=r"with $\sqrt{1-\beta_t}$ (simulated)")
    ax_m.plot([], [], "k--", lw=1, label="predicted")
    ax_m.set(xlabel="$t$", title=r"mean of the pixels of $\mathbf{x}_t$")
    ax_v.set(xlabel="$t$", title=r"variance of the pixels of $\mathbf{x}_t$")
    ax_x.set(xlabel="$t$",
             title=r"variance if $\mathbf{x}_t = \mathbf{x}_{t-1} + \sqrt{\beta_t}\,\boldsymbol{\epsilon}_t$")  # fmt: skip
    for ax in (ax_m, ax_v, ax_x):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()


def _density_1d(mixture: GaussianMixture, alpha_bar: torch.Tensor, xs: torch.Tensor) -> np.ndarray:
    """The exact :math:`q(x_t)` at the points ``xs`` ``[n]`` for :math:`\\bar\\alpha_t` = ``alpha_bar``."""
    return mixture.noised(alpha_bar).log_prob(xs[:, None]).exp().numpy()


def _check_1d(mixture: GaussianMixture) -> None:
    if not isinstance(mixture, GaussianMixture) or mixture.D != 1:
        raise ValueError(f"mixture must be a 1-D ddpm_lib.toy.GaussianMixture, got {mixture!r}")


def draw_toy_marginals(fig, chain: Chain, d: Diffusion, mixture: GaussianMixture) -> None:
    """One panel per kept step of a chain run on 1-D data (``x_t`` ``[len(ts), n, 1]``): the
    histogram of the simulated :math:`x_t` and the exact density of ``mixture`` diffused to ``t``."""
    _check_1d(mixture)
    axes = fig.subplots(1, len(chain.ts), sharey=False, squeeze=False)[0]
    grid = torch.linspace(-3.5, 3.5, 701, dtype=torch.float64)
    for ax, t, x_t in zip(axes, chain.ts, chain.x_t, strict=True):
        ax.hist(x_t.double().flatten().numpy(), bins=np.linspace(-3.5, 3.5, 176), density=True,
                color="tab:gray", alpha=0.7, label="simulated")  # fmt: skip
        exact = _density_1d(mixture, d.alpha_bars[t], grid)
        ax.plot(grid.numpy(), exact, color="tab:red", lw=1.3, label="exact $q(x_t)$")
        ax.set(title=f"$t = {t}$\n" + rf"$\bar\alpha_t = {float(d.alpha_bars[t]):.3f}$", yticks=[])
        ax.set_xlabel("$x_t$")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()


def draw_marginal_heatmap(
    fig, d: Diffusion, mixture: GaussianMixture, paths: Chain | None = None
) -> None:
    r"""The exact :math:`q(x_t)` of the 1-D ``mixture`` diffused by ``d``, as an image over ``t``
    (horizontal, square-root scale: the early steps are where the modes merge) and :math:`x_t`
    (vertical), with optional sample paths (a 1-D :class:`Chain` that kept every step ``0..T``)."""
    _check_1d(mixture)
    if paths is not None and paths.ts != tuple(range(d.T + 1)):
        raise ValueError("paths must keep every step 0..T (run_chain with ts=range(T + 1))")
    ax = fig.subplots(1, 1)
    xs = torch.linspace(-3.0, 3.0, 241, dtype=torch.float64)
    density = np.stack([_density_1d(mixture, d.alpha_bars[t], xs) for t in range(d.T + 1)])
    t_edges = np.arange(d.T + 2) - 0.5
    t_edges[0] = 0.0
    x_edges = np.linspace(-3.0, 3.0, len(xs) + 1)
    ax.pcolormesh(t_edges, x_edges, density.T, cmap="magma", shading="flat", rasterized=True,
                  norm=colors.PowerNorm(0.35, vmin=0.0, vmax=float(density.max())))  # fmt: skip
    if paths is not None:
        ax.plot(np.arange(d.T + 1), paths.x_t.double().flatten(1).numpy(), color="white", lw=0.5,
                alpha=0.6)  # fmt: skip
    ax.set_xscale("function", functions=(np.sqrt, np.square))
    ticks = [t for t in (0, 10, 50, 100, 200, 500, 1000, 2000, 5000) if t <= d.T]
    ax.set(xlim=(0, d.T), ylim=(-3.0, 3.0), xticks=ticks, xticklabels=[str(t) for t in ticks])
    ax.set(xlabel=r"$t$ (square-root scale)", ylabel="$x_t$")
    ax.set_title(r"$q(x_t)$: the data distribution, diffused")
    fig.tight_layout()
