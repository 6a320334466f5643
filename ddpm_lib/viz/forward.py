r"""Chapter 1, the forward Markov chain: running it, the exact marginal of a 1-D toy, and the figures.

The chain :math:`q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I)` (Ho et al.
2020, Eq. 2; seeds 000, 001, 002) is run one step at a time with :meth:`Diffusion.q_step`. For a
1-D Gaussian mixture the marginal :math:`q(x_t) = \int q(x_t \mid x_0)\,q(x_0)\,dx_0` is again a
mixture (the diffusion kernel is a Gaussian convolution, seed 004), so a simulation can be checked
against an exact density. Drawing functions have the form ``draw(fig, ...)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np
import torch
from matplotlib import colors

from .. import schedule
from .._validate import check_choice, check_steps, check_tensor
from ..diffusion import Diffusion
from ._live import Draw, explore
from .images import to_display

__all__ = [
    "SCHEDULES",
    "Chain",
    "Mixture1D",
    "make_diffusion",
    "run_chain",
    "variance_trajectory",
    "toy_mixture",
    "check_mixture",
    "sample_mixture",
    "diffused_mixture",
    "mixture_pdf",
    "mixture_cdf",
    "mixture_marginal_pdf",
    "mixture_marginal_cdf",
    "plot_schedules",
    "noising_draw",
    "explore_noising",
    "plot_pixel_histograms",
    "plot_pixel_moments",
    "plot_toy_marginals",
    "plot_marginal_heatmap",
]

#: The two schedules the chapter compares (see :func:`make_diffusion`).
SCHEDULES = ("linear", "cosine")
_SCHEDULE_COLOURS = {"linear": "tab:blue", "cosine": "tab:orange"}


def make_diffusion(name: str, T: int = 1000) -> Diffusion:
    r"""``"linear"``: :math:`\beta_t` from :math:`10^{-4}` to 0.02 (Ho et al. 2020, Sec. 4);
    ``"cosine"``: Nichol & Dhariwal (2021, Eq. 17) with :math:`s = 0.008`. ``T`` steps."""
    check_choice("name", name, SCHEDULES)
    if name == "linear":
        return Diffusion(schedule.linear_betas(T, 1e-4, 0.02))
    return Diffusion(schedule.cosine_betas(T))


# --------------------------------------------------------------------------- running the chain
class Chain(NamedTuple):
    """One run of the forward chain from ``x0``: ``states[i]`` is :math:`x_t` for ``t = ts[i]``
    (``[len(ts), B, ...]``, ``x0``'s dtype); ``means[t]`` and ``variances[t]`` (float64 ``[T + 1]``)
    are the mean and variance of *all* entries of :math:`x_t` pooled, at every ``t = 0..T``."""

    ts: tuple[int, ...]
    states: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor


def _check_ts(ts: Iterable[int], T: int) -> tuple[int, ...]:
    return check_steps(ts, 0, T)


def run_chain(
    x0: torch.Tensor,
    d: Diffusion,
    ts: Iterable[int],
    generator: torch.Generator | None = None,
) -> Chain:
    r"""Run :math:`x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\epsilon_t` for ``t = 1..T``
    (Ho et al. 2020, Eq. 2), one :meth:`Diffusion.q_step` at a time, with fresh noise each step.

    Args: ``x0`` ``[B, ...]``; ``ts`` strictly increasing steps in ``[0, T]`` to keep (0 keeps
    ``x0``); ``generator`` for every noise draw. Returns a :class:`Chain`.
    """
    x = check_tensor("x0", x0)
    keep = set(_check_ts(ts, d.T))
    means = torch.empty(d.T + 1, dtype=torch.float64)
    variances = torch.empty(d.T + 1, dtype=torch.float64)
    states = []
    for t in range(d.T + 1):
        if t > 0:
            x = d.q_step(x, t, generator=generator)
        flat = x.detach().double().flatten()
        means[t], variances[t] = flat.mean(), flat.var(correction=0)
        if t in keep:
            states.append(x.detach().clone())
    return Chain(tuple(sorted(keep)), torch.stack(states), means, variances)


def variance_trajectory(var0: float, d: Diffusion) -> torch.Tensor:
    r"""The variance of :math:`x_t` for ``t = 0..T`` when :math:`\mathrm{Var}\,x_0 =` ``var0``:
    iterating :math:`v_t = (1-\beta_t)\,v_{t-1} + \beta_t` gives
    :math:`1 - v_t = \bar\alpha_t\,(1 - v_0)` (chapter 1; Ho et al. 2020, Eq. 2). float64 ``[T + 1]``."""
    if isinstance(var0, bool) or not isinstance(var0, int | float) or not var0 >= 0:
        raise ValueError(f"var0 must be a number >= 0, got {var0!r}")
    return 1.0 - d.alpha_bars * (1.0 - float(var0))


# ---------------------------------------------------------------------- the 1-D toy mixture
class Mixture1D(NamedTuple):
    r""":math:`q(x) = \sum_k \pi_k\,\mathcal N(x;\ \mu_k, s_k^2)`: ``weights`` :math:`\pi_k`,
    ``means`` :math:`\mu_k`, ``stds`` :math:`s_k`, each float64 ``[K]``."""

    weights: torch.Tensor
    means: torch.Tensor
    stds: torch.Tensor


def check_mixture(mixture: Mixture1D) -> Mixture1D:
    """Validate a mixture (weights > 0 summing to 1, stds > 0, equal lengths); returns it as float64."""
    w, m, s = (torch.as_tensor(v, dtype=torch.float64) for v in mixture)
    if not (w.dim() == m.dim() == s.dim() == 1 and w.shape == m.shape == s.shape and len(w) > 0):
        shapes = [list(torch.as_tensor(v).shape) for v in mixture]
        raise ValueError(f"weights, means, stds must be 1-D of one length K >= 1, got {shapes}")
    if bool((w <= 0).any()) or abs(float(w.sum()) - 1.0) > 1e-9:
        raise ValueError(f"weights must be > 0 and sum to 1, got {w.tolist()}")
    if bool((s <= 0).any()):
        raise ValueError(f"stds must be > 0, got {s.tolist()}")
    return Mixture1D(w, m, s)


def toy_mixture() -> Mixture1D:
    """The chapter's data distribution: three narrow bumps at -0.8, 0.1 and 0.75 in [-1, 1]."""
    return Mixture1D(
        torch.tensor([0.25, 0.45, 0.30], dtype=torch.float64),
        torch.tensor([-0.8, 0.1, 0.75], dtype=torch.float64),
        torch.tensor([0.05, 0.05, 0.05], dtype=torch.float64),
    )


def sample_mixture(
    mixture: Mixture1D, n: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""``n`` draws :math:`x_0 \sim q(x_0)` (pick a component, then add its Gaussian noise): float64 ``[n]``."""
    w, m, s = check_mixture(mixture)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    k = torch.multinomial(w, n, replacement=True, generator=generator)
    return m[k] + s[k] * torch.randn(n, generator=generator, dtype=torch.float64)


def diffused_mixture(mixture: Mixture1D, alpha_bar: float | torch.Tensor) -> Mixture1D:
    r"""The parameters of :math:`q(x_t) = \int q(x_t\mid x_0)\,q(x_0)\,dx_0` for a Gaussian mixture
    :math:`q(x_0)` (seed 004, "diffusion kernel"): the same weights, means
    :math:`\sqrt{\bar\alpha_t}\,\mu_k`, variances :math:`\bar\alpha_t s_k^2 + 1 - \bar\alpha_t`."""
    w, m, s = check_mixture(mixture)
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64)
    if ab.dim() != 0 or not 0.0 <= float(ab) <= 1.0:
        raise ValueError(f"alpha_bar must be one number in [0, 1], got {alpha_bar!r}")
    return Mixture1D(w, ab.sqrt() * m, (ab * s**2 + 1.0 - ab).sqrt())


def _components(x: torch.Tensor, mixture: Mixture1D) -> tuple[torch.Tensor, Mixture1D]:
    x = check_tensor("x", torch.as_tensor(x)).double()
    return (x.unsqueeze(-1) - mixture.means) / mixture.stds, mixture


def mixture_pdf(x: torch.Tensor, mixture: Mixture1D) -> torch.Tensor:
    r""":math:`\sum_k \pi_k\,\mathcal N(x;\ \mu_k, s_k^2)` at every entry of ``x`` (float64, ``x``'s shape)."""
    z, (w, _, s) = _components(x, check_mixture(mixture))
    return (w * torch.exp(-0.5 * z**2) / (s * math.sqrt(2 * math.pi))).sum(-1)


def mixture_cdf(x: torch.Tensor, mixture: Mixture1D) -> torch.Tensor:
    r""":math:`\sum_k \pi_k\,\Phi\big((x - \mu_k)/s_k\big)` at every entry of ``x`` (float64)."""
    z, (w, _, _) = _components(x, check_mixture(mixture))
    return (w * 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))).sum(-1)


def mixture_marginal_pdf(x: torch.Tensor, t: int, d: Diffusion, mixture: Mixture1D) -> torch.Tensor:
    r"""The exact density of :math:`x_t` when :math:`x_0` follows ``mixture`` (seed 004):
    :math:`q(x_t) = \sum_k \pi_k\,\mathcal N\big(x_t;\ \sqrt{\bar\alpha_t}\mu_k,\
    \bar\alpha_t s_k^2 + 1 - \bar\alpha_t\big)`, with :math:`\bar\alpha_t` = ``d.alpha_bars[t]``,
    ``t`` in ``[0, T]``. ``x`` any shape; returns float64 of that shape."""
    t = _check_ts([t], d.T)[0]
    return mixture_pdf(x, diffused_mixture(mixture, d.alpha_bars[t].cpu()))


def mixture_marginal_cdf(x: torch.Tensor, t: int, d: Diffusion, mixture: Mixture1D) -> torch.Tensor:
    """The CDF of :func:`mixture_marginal_pdf` (for a Kolmogorov-Smirnov test)."""
    t = _check_ts([t], d.T)[0]
    return mixture_cdf(x, diffused_mixture(mixture, d.alpha_bars[t].cpu()))


# ---------------------------------------------------------------------------------- figures
def _std_normal_curve(ax, lo: float = -4.0, hi: float = 4.0) -> None:
    v = np.linspace(lo, hi, 301)
    ax.plot(
        v, np.exp(-0.5 * v**2) / math.sqrt(2 * math.pi), "k--", lw=1.2, label=r"$\mathcal{N}(0,1)$"
    )


def plot_schedules(fig, T: int = 1000) -> None:
    r"""Left: :math:`\beta_t` of both schedules (log scale); right: :math:`\bar\alpha_t =
    \prod_{s\le t}(1-\beta_s)`, the fraction of the data's variance still left at step ``t``."""
    ax_b, ax_a = fig.subplots(1, 2)
    t = np.arange(1, T + 1)
    for name in SCHEDULES:
        d = make_diffusion(name, T)
        c = _SCHEDULE_COLOURS[name]
        ax_b.plot(t, d.betas[1:].numpy(), color=c, label=name)
        ax_a.plot(np.arange(T + 1), d.alpha_bars.numpy(), color=c, label=name)
    ax_b.set(yscale="log", xlabel="$t$", ylabel=r"$\beta_t$", title="noise added per step")
    ax_a.set(xlabel="$t$", ylabel=r"$\bar\alpha_t$", title=r"signal variance left, $\bar\alpha_t$")
    for ax in (ax_b, ax_a):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()


def _hist(ax, values: torch.Tensor, lo: float = -4.0, hi: float = 4.0, bins: int = 81) -> None:
    ax.hist(values.flatten().double().numpy(), bins=np.linspace(lo, hi, bins), density=True,
            color="tab:gray", alpha=0.7)  # fmt: skip


def noising_draw(chains: Mapping[str, Chain], n_show: int = 5) -> Draw:
    r"""``draw(fig, t, schedule)``: ``n_show`` digits of ``chains[schedule]`` at step ``t`` and the
    histogram of all its pixels at ``t`` with the :math:`\mathcal N(0, 1)` density. Every ``t``
    must be in the chain's ``ts``; images are ``[B, 1, H, W]`` in [-1, 1] at ``t = 0``."""
    if not chains:
        raise ValueError("chains must hold at least one schedule")

    def draw(fig, t: int, schedule: str) -> None:
        check_choice("schedule", schedule, tuple(chains))
        chain = chains[schedule]
        if t not in chain.ts:
            raise ValueError(f"t must be one of the chain's steps {list(chain.ts)}, got {t}")
        x_t = chain.states[chain.ts.index(t)]
        grid = fig.add_gridspec(
            1, n_show + 4, left=0.01, right=0.99, top=0.8, bottom=0.13, wspace=0.08
        )
        for i in range(min(n_show, x_t.shape[0])):
            ax = fig.add_subplot(grid[0, i])
            ax.imshow(
                to_display(x_t[i]).reshape(x_t.shape[-2:]).numpy(), cmap="gray", vmin=0, vmax=1
            )
            ax.set_axis_off()
        ax = fig.add_subplot(grid[0, n_show + 1 :])
        _hist(ax, x_t)
        _std_normal_curve(ax)
        ax.set(ylim=(0, 1.0), yticks=[])
        ax.set_title(f"all pixels of {x_t.shape[0]} digits: mean {float(chain.means[t]):+.2f}, "
                     f"var {float(chain.variances[t]):.2f}", fontsize=9)  # fmt: skip
        ax.legend(loc="upper right", fontsize=8)
        fig.suptitle(f"{schedule} schedule, $t = {t}$", x=0.27, fontsize=11)

    return draw


def explore_noising(chains: Mapping[str, Chain], n_show: int = 5, static: bool | None = None):
    """The noising explorer: controls ``t`` (the chains' common ``ts``) and ``schedule``; in the
    static book an animation over ``t`` for the first schedule (see :func:`ddpm_lib.viz.explore`)."""
    ts = {chain.ts for chain in chains.values()}
    if len(ts) != 1:
        raise ValueError(f"all chains must keep the same steps ts, got {sorted(ts)}")
    controls = {"t": list(ts.pop()), "schedule": list(chains)}
    return explore(noising_draw(chains, n_show), controls, "t", figsize=(9.0, 2.4), static=static)


def plot_pixel_histograms(fig, chains: Mapping[str, Chain], ts: Iterable[int]) -> None:
    r"""One row per schedule, one panel per ``t`` (each in the chains' ``ts``): the histogram of
    every pixel value of :math:`x_t` against the :math:`\mathcal N(0, 1)` density."""
    ts = tuple(ts)
    axes = fig.subplots(len(chains), len(ts), sharex=True, sharey=True, squeeze=False)
    for row, (name, chain) in zip(axes, chains.items(), strict=True):
        for ax, t in zip(row, ts, strict=True):
            if t not in chain.ts:
                raise ValueError(f"t must be one of the chain's steps {list(chain.ts)}, got {t}")
            _hist(ax, chain.states[chain.ts.index(t)])
            _std_normal_curve(ax)
            ax.set_title(f"{name}, $t={t}$\nmean {float(chain.means[t]):+.2f}, "
                         f"var {float(chain.variances[t]):.2f}", fontsize=9)  # fmt: skip
            ax.set(ylim=(0, 1.0), yticks=[])
    axes[-1, -1].legend(fontsize=8)
    fig.tight_layout()


def plot_pixel_moments(
    fig, chains: Mapping[str, Chain], diffusions: Mapping[str, Diffusion]
) -> None:
    r"""Pooled mean and variance of the pixels of :math:`x_t` against :math:`t` (solid) with the
    predictions :math:`\sqrt{\bar\alpha_t}\,m_0` and :math:`1 - \bar\alpha_t(1 - v_0)` (black dashed);
    right: what the variance would do without the factor :math:`\sqrt{1-\beta_t}`,
    :math:`v_0 + \sum_{s\le t}\beta_s`."""
    ax_m, ax_v, ax_x = fig.subplots(1, 3)
    for name, chain in chains.items():
        d, c = diffusions[name], _SCHEDULE_COLOURS.get(name)
        t = np.arange(d.T + 1)
        ax_m.plot(t, chain.means.numpy(), color=c, lw=2.5, alpha=0.6, label=f"{name}, simulated")
        ax_m.plot(t, (d.alpha_bars.sqrt() * chain.means[0]).numpy(), "k--", lw=1)
        v0 = float(chain.variances[0])
        ax_v.plot(
            t, chain.variances.numpy(), color=c, lw=2.5, alpha=0.6, label=f"{name}, simulated"
        )
        ax_v.plot(t, variance_trajectory(v0, d).numpy(), "k--", lw=1)
        ax_x.plot(t, (v0 + torch.cumsum(d.betas, 0)).numpy(), color=c, label=f"{name}, no shrink")
        ax_x.plot(t, chain.variances.numpy(), color=c, lw=1, ls=":")
    ax_x.plot([], [], "k:", lw=1, label=r"with $\sqrt{1-\beta_t}$ (simulated)")
    ax_m.plot([], [], "k--", lw=1, label="predicted")
    ax_m.set(xlabel="$t$", title=r"mean of the pixels of $x_t$")
    ax_v.set(xlabel="$t$", title=r"variance of the pixels of $x_t$")
    ax_x.set(xlabel="$t$", title=r"variance if $x_t = x_{t-1} + \sqrt{\beta_t}\,\epsilon$")
    for ax in (ax_m, ax_v, ax_x):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()


def plot_toy_marginals(fig, chain: Chain, d: Diffusion, mixture: Mixture1D) -> None:
    """One panel per kept step of a 1-D ``chain`` (states ``[len(ts), n]``): the histogram of the
    simulated :math:`x_t` and the exact density :func:`mixture_marginal_pdf`."""
    axes = fig.subplots(1, len(chain.ts), sharey=False, squeeze=False)[0]
    grid = torch.linspace(-3.5, 3.5, 701, dtype=torch.float64)
    for ax, t, x_t in zip(axes, chain.ts, chain.states, strict=True):
        ax.hist(x_t.double().numpy(), bins=np.linspace(-3.5, 3.5, 176), density=True,
                color="tab:gray", alpha=0.7, label="simulated")  # fmt: skip
        exact = mixture_marginal_pdf(grid, t, d, mixture).numpy()
        ax.plot(grid.numpy(), exact, color="tab:red", lw=1.3, label="exact $q(x_t)$")
        ax.set(title=f"$t = {t}$\n" + rf"$\bar\alpha_t = {float(d.alpha_bars[t]):.3f}$", yticks=[])
        ax.set_xlabel("$x_t$")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()


def plot_marginal_heatmap(
    fig, d: Diffusion, mixture: Mixture1D, paths: Chain | None = None
) -> None:
    r"""The exact :math:`q(x_t)` as an image over ``t`` (horizontal, square-root scale: the early steps
    are where the modes merge) and :math:`x_t` (vertical), with optional sample paths (a 1-D
    :class:`Chain` that kept every step ``0..T``)."""
    ax = fig.subplots(1, 1)
    xs = torch.linspace(-3.0, 3.0, 241, dtype=torch.float64)
    density = torch.stack([mixture_marginal_pdf(xs, t, d, mixture) for t in range(d.T + 1)])
    t_edges = np.arange(d.T + 2) - 0.5
    t_edges[0] = 0.0
    x_edges = np.linspace(-3.0, 3.0, len(xs) + 1)
    ax.pcolormesh(t_edges, x_edges, density.T.numpy(), cmap="magma", shading="flat", rasterized=True,
                  norm=colors.PowerNorm(0.35, vmin=0.0, vmax=float(density.max())))  # fmt: skip
    if paths is not None:
        if paths.ts != tuple(range(d.T + 1)):
            raise ValueError("paths must keep every step 0..T (run_chain with ts=range(T + 1))")
        ax.plot(np.arange(d.T + 1), paths.states.double().numpy(), color="white", lw=0.5, alpha=0.6)
    ax.set_xscale("function", functions=(np.sqrt, np.square))
    ticks = [t for t in (0, 10, 50, 100, 200, 500, 1000, 2000, 5000) if t <= d.T]
    ax.set(xlim=(0, d.T), ylim=(-3.0, 3.0), xticks=ticks, xticklabels=[str(t) for t in ticks])
    ax.set(xlabel=r"$t$ (square-root scale)", ylabel="$x_t$")
    ax.set_title(r"$q(x_t)$: the data distribution, diffused")
    fig.tight_layout()
