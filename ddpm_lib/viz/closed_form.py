r"""Chapter 2, the closed form of :math:`q(x_t \mid x_0)`: the schedule table and the figures.

The chapter's result (Ho et al. 2020, Eq. 4) is

.. math:: q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big),
    \qquad \bar\alpha_t = \prod_{s=1}^{t} (1 - \beta_s).

The numbers come from the library (:func:`ddpm_lib.viz.run_chain`, :meth:`Diffusion.q_sample`,
:meth:`Diffusion.first_t_snr_below`, :func:`ddpm_lib.bound.prior_bpd`); this module puts them
in a table and draws them. Schedules are passed as a mapping name -> :class:`Diffusion` (see
:func:`ddpm_lib.viz.schedule_pair`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import NamedTuple

import numpy as np
import torch
from scipy import stats

from .._validate import check_choice, check_t, check_tensor
from ..bound import prior_bpd
from ..diffusion import Diffusion
from ._live import explore
from .common import colour
from .images import check_digit, draw_image

# fmt: off
# fmt: on

BOTH = "both"


# ------------------------------------------------------------------------ the schedules compared
class ScheduleSummary(NamedTuple):
    r"""One row of the chapter's table. ``prior_bpd_mean``/``prior_bpd_max``: :math:`\mathrm{KL}(
    q(x_T\mid x_0)\,\|\,\mathcal N(0, I))` in bits per dimension over the digits given."""

    name: str
    T: int
    alpha_bar_T: float
    t_snr_below_1: int
    fraction_snr_below: float
    prior_bpd_mean: float
    prior_bpd_max: float


def summarise_schedule(
    name: str, d: Diffusion, x0: torch.Tensor, level: float = 1e-2
) -> ScheduleSummary:
    r"""How fast ``d`` destroys the digits ``x0`` (``[B, 1, H, W]`` in [-1, 1]) and how close its
    :math:`x_T` gets to pure noise, via :func:`ddpm_lib.bound.prior_bpd` (computed in float64)."""
    kl = prior_bpd(d, check_tensor("x0", x0).double())
    return ScheduleSummary(
        name, d.T, float(d.alpha_bars[d.T]), d.first_t_snr_below(1.0),
        d.fraction_snr_below(level), float(kl.mean()), float(kl.max()),
    )  # fmt: skip


def html_table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain HTML table (display it with ``IPython.display.HTML``); cells are shown with ``str``,
    HTML-escaped and unwrapped, numbers right-aligned."""
    from html import escape

    def cell(tag: str, v: object) -> str:
        style = "padding:0.1em 0.6em"
        if tag == "td":  # numbers such as 4.04e-05 stay on one line
            style += "; white-space:nowrap"
        if isinstance(v, int | float):
            style += "; text-align:right"
        return f'<{tag} style="{style}">{escape(str(v))}</{tag}>'

    head = "".join(cell("th", c) for c in columns)
    body = "".join("<tr>" + "".join(cell("td", v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary_table(rows: Sequence[ScheduleSummary], level: float = 1e-2) -> str:
    """An HTML table of :class:`ScheduleSummary` rows; ``level`` names the SNR threshold the rows
    were computed with."""
    columns = ("schedule", "T", "ᾱ_T", "SNR < 1 from t", f"steps with SNR < {level:g}",
               "KL to N(0, I), bits/dim: mean", "max")  # fmt: skip
    return html_table(columns, [
        (r.name, r.T, f"{r.alpha_bar_T:.3g}", f"{r.t_snr_below_1} ({r.t_snr_below_1 / r.T:.0%} of T)",
         f"{r.fraction_snr_below:.1%}", f"{r.prior_bpd_mean:.3g}", f"{r.prior_bpd_max:.3g}")
        for r in rows
    ])  # fmt: skip


# ------------------------------------------------------------------------------------- figures
def draw_merge(fig, w: torch.Tensor, z: torch.Tensor, var_1: float, var_2: float) -> None:
    r"""The histogram of :math:`w + z` for independent :math:`w \sim \mathcal N(0, \sigma_1^2)`,
    :math:`z \sim \mathcal N(0, \sigma_2^2)` against :math:`\mathcal N(0, \sigma_1^2 + \sigma_2^2)`
    (variances add, solid) and the tempting wrong :math:`\mathcal N(0, (\sigma_1 + \sigma_2)^2)`
    (dashed)."""
    s = (w + z).detach().double().flatten().numpy()
    ax = fig.add_subplot(1, 1, 1)
    right, wrong = var_1 + var_2, (math.sqrt(var_1) + math.sqrt(var_2)) ** 2
    lim = 4.5 * math.sqrt(wrong)
    v = np.linspace(-lim, lim, 401)
    ax.hist(s, bins=np.linspace(-lim, lim, 81), density=True, color="tab:gray", alpha=0.6,
            label=f"$w + z$, {s.size:,} draws (variance {s.var():.4f})")  # fmt: skip
    ax.plot(v, stats.norm.pdf(v, 0.0, math.sqrt(right)), "k", lw=1.8,
            label=rf"$\mathcal{{N}}(0, \sigma_1^2 + \sigma_2^2)$, variance {right:.4f}")  # fmt: skip
    ax.plot(v, stats.norm.pdf(v, 0.0, math.sqrt(wrong)), "r--", lw=1.4,
            label=rf"$\mathcal{{N}}(0, (\sigma_1 + \sigma_2)^2)$, variance {wrong:.4f}")  # fmt: skip
    ax.set(xlabel="value", yticks=[], title="merging two independent Gaussians")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()


def draw_chain_vs_closed_form(
    fig,
    ts: Sequence[int],
    chain: torch.Tensor,
    closed: torch.Tensor,
    pvalues: Sequence[float] | None = None,
) -> None:
    """One panel per step (a 2 x 2 grid for four steps): the histogram of ``chain[i]`` (values of
    :math:`x_t`, ``t = ts[i]``, from ``t`` iterated steps) over that of ``closed[i]`` (one
    :meth:`Diffusion.q_sample`); ``chain``/``closed`` are ``[len(ts), ...]``. ``pvalues`` (one per
    step, e.g. of a two-sample Kolmogorov-Smirnov test) are added to the titles."""
    if len(chain) != len(ts) or len(closed) != len(ts):
        raise ValueError(
            f"chain and closed must have len(ts) = {len(ts)} rows, got {len(chain)} and {len(closed)}"
        )
    if pvalues is not None and len(pvalues) != len(ts):
        raise ValueError(f"pvalues must hold len(ts) = {len(ts)} numbers, got {len(pvalues)}")
    ncols = 2 if len(ts) == 4 else len(ts)
    axes = fig.subplots(-(-len(ts) // ncols), ncols, squeeze=False).flatten()
    for i, (ax, t) in enumerate(zip(axes, ts, strict=True)):
        a = chain[i].detach().double().flatten().numpy()
        b = closed[i].detach().double().flatten().numpy()
        lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
        bins = np.linspace(lo, hi, 61)
        ax.hist(
            b, bins=bins, density=True, color="tab:orange", alpha=0.45, label="one q_sample (Eq. 4)"
        )
        ax.hist(a, bins=bins, density=True, histtype="step", color="tab:blue", lw=1.6,
                label="t steps of q_step")  # fmt: skip
        title = f"$t = {t}$"
        if pvalues is not None:
            title += f"\nKS p = {pvalues[i]:.2f}"
        ax.set(title=title, yticks=[], xlabel="pixel value")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()


def draw_snr(fig, schedules: Mapping[str, Diffusion], level: float = 1e-2) -> None:
    r"""Left: :math:`\bar\alpha_t` against :math:`t/T`. Right: :math:`\log\mathrm{SNR}(t)` (natural
    log) with the line SNR = 1 and the band below ``level``, where :math:`x_t` is nearly pure noise;
    the legend gives :meth:`Diffusion.fraction_snr_below` of each schedule."""
    ax_a, ax_s = fig.subplots(1, 2)
    for i, (name, d) in enumerate(schedules.items()):
        c = colour(name, i)
        frac = d.fraction_snr_below(level)
        ax_a.plot(np.arange(d.T + 1) / d.T, d.alpha_bars.numpy(), color=c, label=name)
        ax_s.plot(np.arange(1, d.T + 1) / d.T, d.snrs[1:].log().numpy(), color=c,
                  label=f"{name}: {frac:.0%} of steps below")  # fmt: skip
    ax_s.axhline(0.0, color="k", lw=0.8)
    ax_s.axhspan(-40, math.log(level), color="tab:red", alpha=0.08, label=f"SNR < {level:g}")
    low = min(float(d.snrs[d.T].log()) for d in schedules.values())
    ax_s.set(ylim=(max(low, -25) - 1, 12))
    ax_a.set(xlabel="$t/T$", ylabel=r"$\bar\alpha_t$", title=r"signal kept, $\bar\alpha_t$")
    ax_s.set(xlabel="$t/T$", ylabel=r"$\log\,\mathrm{SNR}(t)$",
             title=r"$\log\,\mathrm{SNR}(t) = \log\frac{\bar\alpha_t}{1-\bar\alpha_t}$")  # fmt: skip
    for ax in (ax_a, ax_s):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()


def draw_noising_grid(
    fig,
    x0: torch.Tensor,
    noise: torch.Tensor,
    schedules: Mapping[str, Diffusion],
    ts: Sequence[int],
) -> None:
    r"""One row per schedule, one column per step: :math:`\mathbf x_t = \sqrt{\bar\alpha_t}\,\mathbf x_0 +
    \sqrt{1-\bar\alpha_t}\,\bar{\boldsymbol\epsilon}_t` with the *same* ``noise``
    :math:`\bar{\boldsymbol\epsilon}_t` everywhere, so the
    rows differ only by their :math:`\bar\alpha_t`. ``x0``, ``noise``: ``[1, 1, H, W]``."""
    x0, noise = check_digit(x0, noise)
    axes = fig.subplots(len(schedules), len(ts), squeeze=False)
    for r, (row, (name, d)) in enumerate(zip(axes, schedules.items(), strict=True)):
        for ax, t in zip(row, ts, strict=True):
            draw_image(ax, d.q_sample(x0, int(t), noise=noise))
            ax.set_xlabel(
                rf"$\sqrt{{\bar\alpha_t}} = {float(d.alpha_bars[t].sqrt()):.2f}$", fontsize=8
            )
            if r == 0:
                ax.set_title(f"$t = {t}$", fontsize=9)
        row[0].set_ylabel(name, fontsize=10)
    fig.tight_layout()


def _common_T(schedules: Mapping[str, Diffusion]) -> int:
    Ts = {d.T for d in schedules.values()}
    if len(Ts) != 1:
        raise ValueError(f"all schedules must have the same T, got {sorted(Ts)}")
    return Ts.pop()


def draw_side_by_side(
    fig,
    t: int,
    schedule: str,
    *,
    x0: torch.Tensor,
    noise: torch.Tensor,
    schedules: Mapping[str, Diffusion],
) -> None:
    r"""The digit ``x0`` noised to step ``t`` by each chosen schedule (``"both"`` or one name) with
    the same ``noise``, and the :math:`\log\mathrm{SNR}` curves with a marker at ``t``. ``x0``,
    ``noise``: ``[1, 1, H, W]``; every schedule has the same ``T``, ``t`` in ``[0, T]``."""
    x0, noise = check_digit(x0, noise)
    T = _common_T(schedules)
    names = tuple(schedules)
    check_choice("schedule", schedule, (BOTH, *names))
    t = check_t(t, 0, T)
    chosen = [name for name in names if schedule in (BOTH, name)]
    grid = fig.add_gridspec(1, len(chosen) + 2)
    for i, name in enumerate(chosen):
        d = schedules[name]
        ax = fig.add_subplot(grid[0, i])
        draw_image(ax, d.q_sample(x0, t, noise=noise))
        ax.set_title(f"{name}\n" + rf"$\sqrt{{\bar\alpha_t}} = {float(d.alpha_bars[t].sqrt()):.3f}$",
                     fontsize=9, color=colour(name, names.index(name)))  # fmt: skip
    ax = fig.add_subplot(grid[0, len(chosen) :])
    steps = np.arange(1, T + 1)
    for name in chosen:
        d, c = schedules[name], colour(name, names.index(name))
        ax.plot(steps, d.snrs[1:].log().numpy(), color=c, label=name)
        if t >= 1:
            ax.plot([t], [float(d.snrs[t].log())], "o", color=c)
    ax.axvline(t, color="k", lw=0.8)
    ax.axhline(0.0, color="gray", lw=0.6, ls=":")
    ax.set(xlim=(0, T), ylim=(-21, 10), xlabel="$t$", title=rf"$\log\,\mathrm{{SNR}}$, $t = {t}$")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()


def explore_side_by_side(
    x0: torch.Tensor,
    noise: torch.Tensor,
    schedules: Mapping[str, Diffusion],
    ts: Sequence[int],
    static: bool | None = None,
):
    """The chapter's explorer (:func:`draw_side_by_side`): controls ``t`` (the values ``ts``) and
    ``schedule`` (``"both"`` first, then each name); in the static book an animation over ``t`` with
    both schedules side by side (see :func:`ddpm_lib.viz.explore`)."""
    check_digit(x0, noise)
    _common_T(schedules)
    draw = partial(draw_side_by_side, x0=x0, noise=noise, schedules=schedules)
    controls = {"t": [int(t) for t in ts], "schedule": [BOTH, *schedules]}
    return explore(draw, controls, "t", figsize=(8.0, 2.8), static=static)
