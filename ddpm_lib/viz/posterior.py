r"""Chapter 3, the forward-process posterior :math:`q(x_{t-1}\mid x_t, x_0)`: experiments and figures.

The library holds the formula (:meth:`ddpm_lib.Diffusion.q_posterior`, Ho et al. 2020, Eqs. 6-7);
this module holds what the chapter checks it *against*, computed without it:

* :func:`bayes_on_grid` -- Bayes' rule evaluated numerically on a fine 1-D grid,
  :math:`q(x_{t-1}\mid x_t) \propto q(x_t\mid x_{t-1})\,q(x_{t-1})`, for data that is one point
  :math:`x_0` (the posterior of the chapter) or a few points with probabilities (then it is the
  true reverse step, which needs the data distribution);
* :func:`regress_posterior` -- Monte Carlo: simulate pairs :math:`(x_{t-1}, x_t)` given
  :math:`x_0` and regress :math:`x_{t-1}` on :math:`x_t`;

and the drawing functions (``draw(fig, ...)``) the notebook shows, live or as an animation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import integrate, special, stats

from ..diffusion import Diffusion
from .images import to_display

__all__ = [
    "GridPosterior",
    "Regression",
    "ReverseCase",
    "bayes_on_grid",
    "data_posterior",
    "regress_posterior",
    "draw_schedules",
    "draw_true_reverse",
    "draw_grid_check",
    "draw_regression",
    "draw_digit_posterior",
]


class GridPosterior(NamedTuple):
    """A density tabulated on a grid: ``grid`` and ``density`` float64 ``[n]`` (it integrates to
    1), and its ``mean`` and ``variance`` (Simpson's rule)."""

    grid: np.ndarray
    density: np.ndarray
    mean: float
    variance: float


class Regression(NamedTuple):
    r"""Least-squares fit :math:`x_{t-1} \approx \text{slope}\cdot x_t + \text{intercept}` on simulated
    pairs (float64 ``[n]`` each), with standard errors and the residual variance."""

    x_t: torch.Tensor
    x_prev: torch.Tensor
    slope: float
    intercept: float
    residual_variance: float
    slope_se: float
    intercept_se: float
    residual_variance_se: float


class ReverseCase(NamedTuple):
    """One panel of :func:`draw_true_reverse`: a schedule, a step ``t`` and an observed ``x_t``."""

    label: str
    diffusion: Diffusion
    t: int
    x_t: float


def _check_step(d: Diffusion, t: int, lo: int) -> int:
    if isinstance(t, bool) or not isinstance(t, int | np.integer):
        raise TypeError(f"t must be an int, got {type(t).__name__}")
    if not lo <= int(t) <= d.T:
        raise ValueError(f"t must be an integer in [{lo}, {d.T}], got {t}")
    return int(t)


def _data(x0_values: Sequence[float], x0_probs: Sequence[float] | None):
    values = np.atleast_1d(np.asarray(x0_values, dtype=np.float64))
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"x0_values must be a non-empty list of finite numbers, got {x0_values}")
    if x0_probs is None:
        return values, np.full(values.size, 1.0 / values.size)
    probs = np.asarray(x0_probs, dtype=np.float64)
    if probs.shape != values.shape or np.any(probs <= 0) or abs(probs.sum() - 1) > 1e-9:
        raise ValueError(
            f"x0_probs must hold {values.size} positive probabilities summing to 1, got {x0_probs}"
        )
    return values, probs


def data_posterior(
    d: Diffusion,
    x_t: float,
    t: int,
    x0_values: Sequence[float],
    x0_probs: Sequence[float] | None = None,
) -> np.ndarray:
    r"""For data that takes the values :math:`v_k` with probabilities :math:`p_k`, the probability of
    each value given the noisy :math:`x_t`, by Bayes with Ho et al. 2020, Eq. 4:

    .. math:: q(x_0 = v_k \mid x_t) = \frac{p_k\,\mathcal N(x_t; \sqrt{\bar\alpha_t} v_k,
        1-\bar\alpha_t)}{\sum_j p_j\,\mathcal N(x_t; \sqrt{\bar\alpha_t} v_j, 1-\bar\alpha_t)}

    ``t`` in ``[1, T]``; returns float64 ``[K]`` summing to 1 (uniform ``p`` if ``x0_probs`` is None).
    """
    t = _check_step(d, t, 1)
    values, probs = _data(x0_values, x0_probs)
    ab = float(d.alpha_bars[t])
    log_w = np.log(probs) + stats.norm.logpdf(x_t, math.sqrt(ab) * values, math.sqrt(1 - ab))
    return np.exp(log_w - special.logsumexp(log_w))


def bayes_on_grid(
    d: Diffusion,
    x_t: float,
    t: int,
    x0_values: Sequence[float],
    x0_probs: Sequence[float] | None = None,
    n: int = 20_001,
) -> GridPosterior:
    r"""Bayes' rule for one reverse step, by brute force on a 1-D grid (no posterior formula used):

    .. math:: q(x_{t-1}\mid x_t) = \frac{q(x_t\mid x_{t-1})\,q(x_{t-1})}{\int q(x_t\mid x')\,q(x')
        \,dx'},\qquad q(x_{t-1}) = \sum_k p_k\,\mathcal N\big(x_{t-1};\sqrt{\bar\alpha_{t-1}}\,v_k,
        1-\bar\alpha_{t-1}\big)

    with :math:`q(x_t\mid x_{t-1}) = \mathcal N(x_t; \sqrt{\alpha_t}x_{t-1}, \beta_t)` (Ho et al.
    2020, Eqs. 2 and 4). With one value :math:`v_1 = x_0` this is :math:`q(x_{t-1}\mid x_t, x_0)`.

    A coarse pass over every plausible region finds where the posterior lives; the fine grid of
    ``n`` points spans that region only. Args: ``x_t`` a number; ``t`` in ``[2, T]`` (at ``t = 1``
    the single-point posterior is a point mass, which no grid resolves); ``n`` odd, ``>= 101``.
    """
    t = _check_step(d, t, 2)
    if isinstance(n, bool) or not isinstance(n, int) or n < 101 or n % 2 == 0:
        raise ValueError(f"n must be an odd integer >= 101, got {n}")
    values, probs = _data(x0_values, x0_probs)
    alpha, beta, ab_prev = float(d.alphas[t]), float(d.betas[t]), float(d.alpha_bars[t - 1])
    prior_sd = math.sqrt(1 - ab_prev)

    def log_post(x: np.ndarray) -> np.ndarray:
        comps = stats.norm.logpdf(x[:, None], math.sqrt(ab_prev) * values[None, :], prior_sd)
        log_prior = special.logsumexp(comps + np.log(probs)[None, :], axis=1)
        return log_prior + stats.norm.logpdf(x_t, math.sqrt(alpha) * x, math.sqrt(beta))

    centres = [x_t / math.sqrt(alpha), *(math.sqrt(ab_prev) * values)]
    widths = (math.sqrt(beta / alpha), prior_sd)
    lo, hi = min(centres) - 12 * max(widths), max(centres) + 12 * max(widths)
    n_coarse = int(min(max((hi - lo) / (min(widths) / 8), 2_001), 2_000_001))
    coarse = np.linspace(lo, hi, n_coarse)
    lp = log_post(coarse)
    inside = np.nonzero(lp > lp.max() - 60.0)[0]  # e^-60: nothing outside contributes
    step = coarse[1] - coarse[0]
    grid = np.linspace(coarse[inside[0]] - 2 * step, coarse[inside[-1]] + 2 * step, n)
    lp = log_post(grid)
    unnorm = np.exp(lp - lp.max())  # the shift avoids underflow; normalised next
    density = unnorm / integrate.simpson(unnorm, x=grid)
    mean = float(integrate.simpson(grid * density, x=grid))
    variance = float(integrate.simpson((grid - mean) ** 2 * density, x=grid))
    return GridPosterior(grid, density, mean, variance)


def regress_posterior(
    d: Diffusion, x0: float, t: int, n: int, generator: torch.Generator | None = None
) -> Regression:
    r"""Monte Carlo: draw ``n`` pairs :math:`x_{t-1}\sim q(x_{t-1}\mid x_0)` (Eq. 4), then
    :math:`x_t \sim q(x_t\mid x_{t-1})` (Eq. 2), and fit :math:`x_{t-1}` on :math:`[x_t, 1]` by least
    squares. Given :math:`x_0` the pair is jointly Gaussian, so the fit recovers the posterior mean's
    coefficients (slope :math:`\approx` the :math:`x_t` one, intercept :math:`\approx` the
    :math:`x_0` one times :math:`x_0`) and the residual variance :math:`\approx\tilde\beta_t`.
    ``t`` in ``[2, T]``, ``n >= 10``."""
    t = _check_step(d, t, 2)
    if isinstance(n, bool) or not isinstance(n, int) or n < 10:
        raise ValueError(f"n must be an integer >= 10, got {n}")
    x0s = torch.full((n, 1), float(x0), dtype=torch.float64)
    x_prev = d.q_sample(x0s, t - 1, generator=generator)
    x_t = d.q_step(x_prev, t, generator=generator)
    design = torch.cat([x_t, torch.ones_like(x_t)], dim=1)
    coef = torch.linalg.lstsq(design, x_prev).solution[:, 0]
    resid = x_prev[:, 0] - design @ coef
    s2 = float(resid.pow(2).sum()) / (n - 2)
    cov = s2 * torch.linalg.inv(design.T @ design)  # the textbook OLS covariance
    return Regression(x_t[:, 0], x_prev[:, 0], float(coef[0]), float(coef[1]), s2,
                      float(cov[0, 0].sqrt()), float(cov[1, 1].sqrt()), s2 * math.sqrt(2 / n))  # fmt: skip


# ------------------------------------------------------------------------------------- figures
def draw_schedules(fig: plt.Figure, diffusions: Mapping[str, Diffusion]) -> None:
    r"""Left: :math:`\beta_t` and :math:`\tilde\beta_t` against ``t`` (log scale) for each named
    schedule; right: the ratio :math:`\tilde\beta_t/\beta_t = (1-\bar\alpha_{t-1})/(1-\bar\alpha_t)`."""
    ax_b, ax_r = fig.subplots(1, 2)
    for (name, d), colour in zip(diffusions.items(), ("C0", "C1", "C2", "C3"), strict=False):
        t = np.arange(1, d.T + 1)
        ax_b.plot(t, d.betas[1:].numpy(), color=colour, label=rf"$\beta_t$ ({name})")
        ax_b.plot(t[1:], d.beta_tildes[2:].numpy(), "--", color=colour,
                  label=rf"$\tilde\beta_t$ ({name})")  # fmt: skip
        ratio = (d.beta_tildes[1:] / d.betas[1:]).numpy()
        ax_r.plot(t, ratio, color=colour, label=name)
    ax_b.set(xscale="log", yscale="log", xlabel="t", title=r"$\beta_t$ and $\tilde\beta_t$")
    ax_r.set(xscale="log", xlabel="t", ylim=(0, 1.05),
             title=r"$\tilde\beta_t/\beta_t = (1-\bar\alpha_{t-1})/(1-\bar\alpha_t)$")  # fmt: skip
    ax_r.axhline(1, color="grey", lw=0.8)
    ax_b.legend(fontsize=8)
    ax_r.legend(fontsize=9)
    fig.tight_layout()


def draw_true_reverse(
    fig: plt.Figure,
    cases: Sequence[ReverseCase],
    x0_values: Sequence[float],
    x0_probs: Sequence[float] | None = None,
) -> None:
    r"""One panel per case: the true reverse step :math:`q(x_{t-1}\mid x_t)` for data on the points
    ``x0_values`` (grid Bayes), and its decomposition :math:`\sum_k q(x_0=v_k\mid x_t)\,
    q(x_{t-1}\mid x_t, x_0=v_k)` into weighted posteriors from :meth:`Diffusion.q_posterior`."""
    axes = np.atleast_1d(fig.subplots(1, len(cases)))
    for ax, case in zip(axes, cases, strict=True):
        d, t = case.diffusion, case.t
        true = bayes_on_grid(d, case.x_t, t, x0_values, x0_probs)
        weights = data_posterior(d, case.x_t, t, x0_values, x0_probs)
        ax.plot(true.grid, true.density, "k", lw=2.5, label=r"$q(x_{t-1}\mid x_t)$")
        for k, (v, w) in enumerate(zip(x0_values, weights, strict=True)):
            mean, var = d.q_posterior(torch.tensor([float(v)], dtype=torch.float64),
                                      torch.tensor([case.x_t], dtype=torch.float64), t)  # fmt: skip
            pdf = stats.norm.pdf(true.grid, float(mean[0]), math.sqrt(float(var)))
            ax.plot(true.grid, w * pdf, "--", color=f"C{k}",
                    label=rf"${w:.2f}\times q(x_{{t-1}}\mid x_t, x_0={v:g})$")  # fmt: skip
        shown = true.grid[true.density > 1e-3 * true.density.max()]
        pad = 0.1 * (shown[-1] - shown[0])
        ax.set(xlim=(shown[0] - pad, shown[-1] + pad), xlabel=r"$x_{t-1}$",
               title=f"{case.label}: t = {t}, $x_t$ = {case.x_t:g}")  # fmt: skip
        ax.legend(fontsize=7)
    fig.tight_layout()


def draw_grid_check(
    fig: plt.Figure,
    d: Diffusion,
    x0: float,
    ts: Sequence[int],
    z: float = 1.0,
    ncols: int | None = None,
) -> None:
    r"""One panel per ``t`` (``ncols`` per row, default all in one row): for
    :math:`x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,z`, the prior
    :math:`q(x_{t-1}\mid x_0)`, the likelihood :math:`q(x_t\mid x_{t-1})` as a density in
    :math:`x_{t-1}`, the grid posterior (shaded) and the formula's :math:`\mathcal N(\tilde\mu_t,
    \tilde\beta_t)` (dashed). ``ts`` in ``[2, T]``."""
    ncols = len(ts) if ncols is None else ncols
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    nrows = -(-len(ts) // ncols)
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax in axes[len(ts) :]:
        ax.set_axis_off()
    for ax, t in zip(axes, ts, strict=False):
        t = _check_step(d, t, 2)
        x_t = math.sqrt(float(d.alpha_bars[t])) * x0 + math.sqrt(1 - float(d.alpha_bars[t])) * z
        post = bayes_on_grid(d, x_t, t, [x0])
        mean, var = d.q_posterior(torch.tensor([x0], dtype=torch.float64),
                                  torch.tensor([x_t], dtype=torch.float64), t)  # fmt: skip
        mean, sd = float(mean[0]), math.sqrt(float(var))
        alpha, beta, ab_prev = float(d.alphas[t]), float(d.betas[t]), float(d.alpha_bars[t - 1])
        lik_mean, lik_sd = x_t / math.sqrt(alpha), math.sqrt(beta / alpha)
        x = np.linspace(mean - 5 * lik_sd, mean + 5 * lik_sd, 801)
        ax.plot(x, stats.norm.pdf(x, math.sqrt(ab_prev) * x0, math.sqrt(1 - ab_prev)), color="C0",
                label=r"prior $q(x_{t-1}\mid x_0)$")  # fmt: skip
        ax.plot(x, stats.norm.pdf(x, lik_mean, lik_sd), color="C2",
                label=r"likelihood $q(x_t\mid x_{t-1})$")  # fmt: skip
        ax.fill_between(post.grid, post.density, color="C3", alpha=0.3, label="grid Bayes")
        ax.plot(
            x, stats.norm.pdf(x, mean, sd), "k--", label=r"$\mathcal{N}(\tilde\mu_t,\tilde\beta_t)$"
        )
        ax.set(xlim=(x[0], x[-1]), xlabel=r"$x_{t-1}$", title=f"t = {t}")
        ax.ticklabel_format(axis="x", useOffset=False)
        ax.tick_params(labelsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08 / nrows, 1, 1))


def draw_regression(
    fig: plt.Figure, d: Diffusion, x0: float, fits: Mapping[int, Regression]
) -> None:
    r"""One panel per ``t`` in ``fits`` (``t`` -> :func:`regress_posterior` result): simulated pairs
    :math:`(x_t, x_{t-1})` given :math:`x_0`, the least-squares line, the formula's
    :math:`\tilde\mu_t(x_t, x_0)` with a band of :math:`\pm 2\sqrt{\tilde\beta_t}`, and the
    line :math:`x_{t-1} = x_t` for reference."""
    axes = np.atleast_1d(fig.subplots(1, len(fits)))
    for ax, (t, fit) in zip(axes, fits.items(), strict=True):
        k = min(2000, fit.x_t.numel())
        ax.scatter(
            fit.x_t[:k].numpy(),
            fit.x_prev[:k].numpy(),
            s=2,
            alpha=0.3,
            color="grey",
            label="simulated",
        )
        xs = torch.linspace(float(fit.x_t.min()), float(fit.x_t.max()), 100, dtype=torch.float64)
        mu = d.q_posterior(torch.full_like(xs, x0)[:, None], xs[:, None], t).mean[:, 0].numpy()
        xs = xs.numpy()
        band = 2 * math.sqrt(float(d.beta_tildes[t]))
        ax.fill_between(xs, mu - band, mu + band, color="C3", alpha=0.15,
                        label=r"$\tilde\mu_t \pm 2\sqrt{\tilde\beta_t}$")  # fmt: skip
        ax.plot(xs, mu, color="C3", lw=2, label=r"formula $\tilde\mu_t(x_t, x_0)$")
        ax.plot(xs, fit.slope * xs + fit.intercept, "k--", label="least-squares fit")
        ax.plot(xs, xs, ":", color="C0", label=r"$x_{t-1} = x_t$")
        ax.set(xlabel=r"$x_t$", ylabel=r"$x_{t-1}$",
               title=f"t = {t}: slope {fit.slope:.4f}, residual var {fit.residual_variance:.2e}")  # fmt: skip
        ax.title.set_fontsize(9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()


def draw_digit_posterior(
    fig: plt.Figure,
    t: int,
    schedule: str,
    *,
    x0: torch.Tensor,
    diffusions: Mapping[str, Diffusion],
    n_samples: int = 3,
    seed: int = 0,
) -> None:
    r"""For one image ``x0`` ``[1, H, W]`` in [-1, 1]: :math:`x_0`, a draw :math:`x_t` (Eq. 4), the
    posterior mean :math:`\tilde\mu_t(x_t, x_0)` and ``n_samples`` draws of
    :math:`x_{t-1}\sim q(x_{t-1}\mid x_t, x_0)` (Eqs. 6-7). All noise comes from ``seed``, the same
    for every ``t``, so the frames of an animation differ only through ``t``."""
    if schedule not in diffusions:
        raise ValueError(f"schedule must be one of {list(diffusions)}, got {schedule!r}")
    d = diffusions[schedule]
    t = _check_step(d, t, 1)
    if x0.dim() != 3:
        raise ValueError(f"x0 must be one image [1, H, W], got shape {list(x0.shape)}")
    gen = torch.Generator().manual_seed(seed)
    x0b = x0[None].to(torch.float64)
    eps = torch.randn(x0b.shape, generator=gen, dtype=torch.float64)
    z = torch.randn((n_samples, *x0.shape), generator=gen, dtype=torch.float64)
    x_t = d.q_sample(x0b, t, noise=eps)
    mean, var = d.q_posterior(x0b, x_t, t)
    samples = mean + var.sqrt() * z
    images = [x0b[0], x_t[0], mean[0], *samples]
    step = (mean - x_t)[0, 0]  # what one reverse step changes, on its own colour scale
    titles = ["$x_0$", f"$x_{{{t}}}$", r"$\tilde\mu_t$"] + [f"$x_{{{t - 1}}}$ draw {i + 1}"
                                                         for i in range(n_samples)]  # fmt: skip
    axes = fig.subplots(1, len(images) + 1)
    for ax, img, title in zip(axes, images, titles, strict=False):
        ax.imshow(to_display(img)[0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
    scale = max(float(step.abs().max()), 1e-12)
    axes[-1].imshow(step.numpy(), cmap="RdBu_r", vmin=-scale, vmax=scale)
    axes[-1].set_title(rf"$\tilde\mu_t - x_t$ (±{scale:.2g})", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    c0, ct = float(d.posterior_coef_x0[t]), float(d.posterior_coef_xt[t])
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.74, wspace=0.08)
    fig.suptitle(
        rf"{schedule}, t = {t}:  $\tilde\mu_t$ = {c0:.3f} $x_0$ + {ct:.3f} $x_t$,  "
        rf"$\sqrt{{\tilde\beta_t}}$ = {math.sqrt(float(d.beta_tildes[t])):.3f}",
        fontsize=9,
    )
