r"""Chapter 3, the forward-process posterior :math:`q(x_{t-1}\mid x_t, x_0)`: the figures.

The library holds the formula (:meth:`ddpm_lib.Diffusion.q_posterior`, Ho et al. 2020, Eqs. 6-7);
:mod:`ddpm_lib.toy` holds what the chapter checks it *against*, computed without it (Bayes' rule on
a grid, a Monte Carlo regression). This module draws both; each ``draw_*`` draws into a matplotlib
figure, and :func:`draw_digit_posterior` is shown live or as an animation by
:func:`ddpm_lib.viz.explore`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import stats

from .._validate import check_choice, check_t
from ..diffusion import Diffusion
from ..toy import Regression, bayes_on_grid, data_posterior
from .common import colour
from .images import draw_image


class ReverseCase(NamedTuple):
    """One panel of :func:`draw_true_reverse`: a schedule, a step ``t`` and an observed ``x_t``."""

    label: str
    diffusion: Diffusion
    t: int
    x_t: float


# ------------------------------------------------------------------------------------- figures
def draw_beta_tildes(fig: plt.Figure, schedules: Mapping[str, Diffusion]) -> None:
    r"""Left: :math:`\beta_t` and :math:`\tilde\beta_t` against ``t`` (log scale) for each named
    schedule; right: the ratio :math:`\tilde\beta_t/\beta_t = (1-\bar\alpha_{t-1})/(1-\bar\alpha_t)`."""
    ax_b, ax_r = fig.subplots(1, 2)
    for i, (name, d) in enumerate(schedules.items()):
        c = colour(name, i)
        t = np.arange(1, d.T + 1)
        ax_b.plot(t, d.betas[1:].numpy(), color=c, label=rf"$\beta_t$ ({name})")
        ax_b.plot(t[1:], d.beta_tildes[2:].numpy(), "--", color=c,
                  label=rf"$\tilde\beta_t$ ({name})")  # fmt: skip
        ratio = (d.beta_tildes[1:] / d.betas[1:]).numpy()
        ax_r.plot(t, ratio, color=c, label=name)
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
        t = int(check_t(t, 2, d.T))
        x0_t, z_t = (torch.tensor([v], dtype=torch.float64) for v in (x0, z))
        x_t = float(d.q_sample(x0_t, t, z_t))
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
    schedules: Mapping[str, Diffusion],
    n_samples: int = 3,
    seed: int = 0,
) -> None:
    r"""For one image ``x0`` ``[1, H, W]`` in [-1, 1]: :math:`x_0`, a draw :math:`x_t` (Eq. 4), the
    posterior mean :math:`\tilde\mu_t(x_t, x_0)` and ``n_samples`` draws of
    :math:`x_{t-1}\sim q(x_{t-1}\mid x_t, x_0)` (Eqs. 6-7). All noise comes from ``seed``, the same
    for every ``t``, so the frames of an animation differ only through ``t``."""
    check_choice("schedule", schedule, tuple(schedules))
    d = schedules[schedule]
    t = int(check_t(t, 1, d.T))
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
    titles = [r"$\mathbf{x}_0$", rf"$\mathbf{{x}}_{{{t}}}$", r"$\tilde{\boldsymbol{\mu}}_t$"]
    titles += [rf"$\mathbf{{x}}_{{{t - 1}}}$ draw {i + 1}" for i in range(n_samples)]
    axes = fig.subplots(1, len(images) + 1)
    for ax, img, title in zip(axes, images, titles, strict=False):
        draw_image(ax, img)
        ax.set_title(title, fontsize=9)
    scale = max(float(step.abs().max()), 1e-12)
    axes[-1].imshow(step.numpy(), cmap="RdBu_r", vmin=-scale, vmax=scale)
    axes[-1].set_title(
        rf"$\tilde{{\boldsymbol{{\mu}}}}_t - \mathbf{{x}}_t$ (±{scale:.2g})", fontsize=9
    )
    for ax in axes:
        ax.set_axis_off()
    c0, ct = float(d.posterior_coef_x0[t]), float(d.posterior_coef_xt[t])
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.74, wspace=0.08)
    fig.suptitle(
        rf"{schedule}, t = {t}:  $\tilde{{\boldsymbol{{\mu}}}}_t$ = {c0:.3f} $\mathbf{{x}}_0$ + "
        rf"{ct:.3f} $\mathbf{{x}}_t$,  "
        rf"$\sqrt{{\tilde\beta_t}}$ = {math.sqrt(float(d.beta_tildes[t])):.3f}",
        fontsize=9,
    )
