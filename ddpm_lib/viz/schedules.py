r"""Chapter 2, the closed form of :math:`q(x_t \mid x_0)`: the chain against the one-shot sampler,
what the linear and cosine schedules do to a digit, and the figures.

The chapter's result (Ho et al. 2020, Eq. 4; derived step by step in seed 001, stated in seeds 002
and 004) is

.. math:: q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big),
    \qquad \bar\alpha_t = \prod_{s=1}^{t} (1 - \beta_s).

Helpers here *run* the library (:meth:`Diffusion.q_step`, :meth:`Diffusion.q_sample`,
:meth:`Diffusion.snr`, :func:`ddpm_lib.objectives.prior_bpd`) and summarise what they return;
drawing functions have the form ``draw(fig, ...)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from scipy import stats

from .. import schedule
from .._validate import check_choice, check_steps, check_tensor
from ..diffusion import Diffusion, randn_like
from ..objectives import prior_bpd
from ._live import Draw, explore
from .images import to_display

# fmt: off
__all__ = [
    "NamedSchedule", "ChainRun", "SampleComparison", "ScheduleSummary", "two_schedules",
    "run_chain", "compare_samples", "first_t_snr_below", "fraction_snr_below",
    "summarise_schedule", "html_table", "summary_table", "draw_merge",
    "draw_chain_vs_closed_form", "draw_schedules", "draw_noising_grid", "side_by_side_draw",
    "explore_side_by_side",
]
# fmt: on

_COLOURS = {"linear": "tab:blue", "cosine": "tab:orange"}
BOTH = "both"


class NamedSchedule(NamedTuple):
    """A schedule with the name the figures print: ``name`` and its :class:`Diffusion`."""

    name: str
    diffusion: Diffusion


def two_schedules(T: int = 1000) -> tuple[NamedSchedule, NamedSchedule]:
    r"""The chapter's pair: ``linear`` (:math:`\beta_t` from :math:`10^{-4}` to 0.02, Ho et al.
    2020, Sec. 4) and ``cosine`` (Nichol & Dhariwal 2021, Eq. 17, :math:`s = 0.008`), ``T`` steps."""
    return (
        NamedSchedule("linear", Diffusion(schedule.linear_betas(T, 1e-4, 0.02))),
        NamedSchedule("cosine", Diffusion(schedule.cosine_betas(T, 0.008))),
    )


def _colour(name: str, i: int) -> str:
    return _COLOURS.get(name, f"C{i + 2}")


# ------------------------------------------------------------------------- chain vs closed form
class ChainRun(NamedTuple):
    r"""The forward chain run from ``x0``, kept at the steps ``ts``.

    ``x_t[i]``: :math:`x_t` for ``t = ts[i]``, ``[len(ts), B, ...]``. ``eps_bar[i]``: the merged
    noise :math:`\bar\epsilon_t` of Eq. 4, defined by :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 +
    \sqrt{1-\bar\alpha_t}\,\bar\epsilon_t`, same shape."""

    ts: tuple[int, ...]
    x_t: torch.Tensor
    eps_bar: torch.Tensor


def _check_ts(ts: Iterable[int], T: int) -> tuple[int, ...]:
    return check_steps(ts, 1, T)


@torch.no_grad()
def run_chain(
    d: Diffusion, x0: torch.Tensor, ts: Iterable[int], generator: torch.Generator | None = None
) -> ChainRun:
    r"""Iterate :math:`x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{1-\alpha_t}\,\epsilon_{t-1}`
    (Ho et al. 2020, Eq. 2) with :meth:`Diffusion.q_step`, fresh noise at every step, up to
    ``max(ts)``, and track the noise the steps have merged so far.

    The chain is linear, so :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + m_t` where :math:`m_t` is the
    same chain started from :math:`m_0 = 0` and fed the same noises; the derivation says
    :math:`m_t \sim \mathcal N(0, (1-\bar\alpha_t) I)`, so :math:`\bar\epsilon_t = m_t /
    \sqrt{1-\bar\alpha_t}` is the one standard normal that Eq. 4 uses.

    Args: ``x0`` ``[B, ...]``; ``ts`` strictly increasing steps in ``[1, T]``; ``generator`` for
    every draw. Returns a :class:`ChainRun` (tensors in ``x0``'s dtype).
    """
    x0 = check_tensor("x0", x0)
    ts = _check_ts(ts, d.T)
    x, m = x0, torch.zeros_like(x0)
    kept_x, kept_eps = [], []
    for t in range(1, ts[-1] + 1):
        eps = randn_like(x0, generator)
        x = d.q_step(x, t, noise=eps)
        m = d.q_step(m, t, noise=eps)
        if t in ts:
            kept_x.append(x.clone())
            kept_eps.append(m / math.sqrt(1.0 - float(d.alpha_bars[t])))
    return ChainRun(ts, torch.stack(kept_x), torch.stack(kept_eps))


class SampleComparison(NamedTuple):
    """Two samples side by side: the two-sample Kolmogorov-Smirnov statistic and p-value, and the
    mean and variance (unbiased) of each."""

    ks_statistic: float
    ks_pvalue: float
    mean_a: float
    mean_b: float
    var_a: float
    var_b: float


def compare_samples(a: torch.Tensor, b: torch.Tensor) -> SampleComparison:
    """Compare the values of ``a`` and ``b`` (any shapes, flattened, at least 2 values each) with
    :func:`scipy.stats.ks_2samp` and their first two moments."""
    a, b = check_tensor("a", a), check_tensor("b", b)
    for name, v in (("a", a), ("b", b)):
        if v.numel() < 2:
            raise ValueError(f"{name} must hold at least 2 values, got {v.numel()}")
    a_np, b_np = (
        a.detach().double().flatten().cpu().numpy(),
        b.detach().double().flatten().cpu().numpy(),
    )
    ks = stats.ks_2samp(a_np, b_np)
    return SampleComparison(
        float(ks.statistic), float(ks.pvalue),
        float(a_np.mean()), float(b_np.mean()), float(a_np.var(ddof=1)), float(b_np.var(ddof=1)),
    )  # fmt: skip


# ------------------------------------------------------------------------ the schedules compared
def _check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, int | float) or not level > 0:
        raise ValueError(f"level must be a number > 0, got {level!r}")
    return float(level)


def first_t_snr_below(d: Diffusion, level: float = 1.0) -> int:
    r"""The first step at which :math:`\mathrm{SNR}(t) = \bar\alpha_t/(1-\bar\alpha_t)` falls below
    ``level`` (for ``level = 1``: where noise starts to dominate, :math:`\bar\alpha_t < 1/2`).
    Raises ``ValueError`` if it never does for ``t <= T``."""
    level = _check_level(level)
    below = torch.nonzero(d.snr(torch.arange(1, d.T + 1)) < level)
    if below.numel() == 0:
        raise ValueError(
            f"SNR(t) never falls below level={level} for t in [1, {d.T}] "
            f"(SNR(T) = {float(d.snr(d.T)):.4g})"
        )
    return int(below[0]) + 1


def fraction_snr_below(d: Diffusion, level: float) -> float:
    r"""The fraction of the steps ``t = 1..T`` with :math:`\mathrm{SNR}(t) <` ``level``: for a small
    level, the share of the chain spent on images that are (almost) pure noise."""
    level = _check_level(level)
    return float((d.snr(torch.arange(1, d.T + 1)) < level).double().mean())


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
    :math:`x_T` gets to pure noise, via :func:`ddpm_lib.objectives.prior_bpd` (computed in float64)."""
    kl = prior_bpd(d, check_tensor("x0", x0).double())
    return ScheduleSummary(
        name, d.T, float(d.alpha_bars[d.T]), first_t_snr_below(d, 1.0),
        fraction_snr_below(d, level), float(kl.mean()), float(kl.max()),
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
def _normal_pdf(v: np.ndarray, var: float) -> np.ndarray:
    return np.exp(-0.5 * v**2 / var) / math.sqrt(2 * math.pi * var)


def draw_merge(fig, w: torch.Tensor, z: torch.Tensor, var_1: float, var_2: float) -> None:
    r"""The histogram of :math:`w + z` for independent :math:`w \sim \mathcal N(0, \sigma_1^2)`,
    :math:`z \sim \mathcal N(0, \sigma_2^2)` against :math:`\mathcal N(0, \sigma_1^2 + \sigma_2^2)`
    (variances add) and the tempting wrong :math:`\mathcal N(0, (\sigma_1 + \sigma_2)^2)`."""
    s = (w + z).detach().double().flatten().numpy()
    ax = fig.add_subplot(1, 1, 1)
    right, wrong = var_1 + var_2, (math.sqrt(var_1) + math.sqrt(var_2)) ** 2
    lim = 4.5 * math.sqrt(wrong)
    v = np.linspace(-lim, lim, 401)
    ax.hist(s, bins=np.linspace(-lim, lim, 81), density=True, color="tab:gray", alpha=0.6,
            label=f"$w + z$, {s.size:,} draws (variance {s.var():.4f})")  # fmt: skip
    ax.plot(v, _normal_pdf(v, right), "k", lw=1.8,
            label=rf"$\mathcal{{N}}(0, \sigma_1^2 + \sigma_2^2)$, variance {right:.4f}")  # fmt: skip
    ax.plot(v, _normal_pdf(v, wrong), "r--", lw=1.4,
            label=rf"$\mathcal{{N}}(0, (\sigma_1 + \sigma_2)^2)$, variance {wrong:.4f}")  # fmt: skip
    ax.set(xlabel="value", yticks=[], title="merging two independent Gaussians")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()


def draw_chain_vs_closed_form(
    fig,
    ts: Sequence[int],
    chain: torch.Tensor,
    closed: torch.Tensor,
    comparisons: Sequence[SampleComparison] | None = None,
) -> None:
    """One panel per step (a 2 x 2 grid for four steps): the histogram of ``chain[i]`` (values of :math:`x_t`, ``t = ts[i]``,
    from ``t`` iterated steps) over that of ``closed[i]`` (one :meth:`Diffusion.q_sample`);
    ``chain``/``closed`` are ``[len(ts), ...]``. ``comparisons`` add the KS p-value to the titles."""
    if len(chain) != len(ts) or len(closed) != len(ts):
        raise ValueError(
            f"chain and closed must have len(ts) = {len(ts)} rows, got {len(chain)} and {len(closed)}"
        )
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
        if comparisons is not None:
            title += f"\nKS p = {comparisons[i].ks_pvalue:.2f}"
        ax.set(title=title, yticks=[], xlabel="pixel value")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()


def draw_schedules(fig, schedules: Sequence[NamedSchedule], level: float = 1e-2) -> None:
    r"""Left: :math:`\bar\alpha_t` against :math:`t/T`. Right: :math:`\log\mathrm{SNR}(t)` (natural
    log) with the line SNR = 1 and the band below ``level``, where :math:`x_t` is nearly pure noise."""
    ax_a, ax_s = fig.subplots(1, 2)
    level = _check_level(level)
    for i, (name, d) in enumerate(schedules):
        t = torch.arange(1, d.T + 1)
        c = _colour(name, i)
        ax_a.plot(np.arange(d.T + 1) / d.T, d.alpha_bars.numpy(), color=c, label=name)
        frac = fraction_snr_below(d, level)
        ax_s.plot(t.numpy() / d.T, d.snr(t).log().numpy(), color=c,
                  label=f"{name}: {frac:.0%} of steps below")  # fmt: skip
    ax_s.axhline(0.0, color="k", lw=0.8)
    ax_s.axhspan(-40, math.log(level), color="tab:red", alpha=0.08, label=f"SNR < {level:g}")
    low = min(float(d.snr(d.T).log()) for _, d in schedules)
    ax_s.set(ylim=(max(low, -25) - 1, 12))
    ax_a.set(xlabel="$t/T$", ylabel=r"$\bar\alpha_t$", title=r"signal kept, $\bar\alpha_t$")
    ax_s.set(xlabel="$t/T$", ylabel=r"$\log\,\mathrm{SNR}(t)$",
             title=r"$\log\,\mathrm{SNR}(t) = \log\frac{\bar\alpha_t}{1-\bar\alpha_t}$")  # fmt: skip
    for ax in (ax_a, ax_s):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()


def _check_digit(x0: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x0, noise = check_tensor("x0", x0), check_tensor("noise", noise)
    if x0.dim() != 4 or x0.shape[0] != 1:
        raise ValueError(f"x0 must be one image of shape [1, C, H, W], got {list(x0.shape)}")
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have x0's shape {list(x0.shape)}, got {list(noise.shape)}")
    return x0, noise


def _imshow(ax, x: torch.Tensor) -> None:
    ax.imshow(to_display(x[0]).reshape(x.shape[-2:]).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_noising_grid(
    fig,
    x0: torch.Tensor,
    noise: torch.Tensor,
    schedules: Sequence[NamedSchedule],
    ts: Sequence[int],
) -> None:
    r"""One row per schedule, one column per step: :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 +
    \sqrt{1-\bar\alpha_t}\,\epsilon` with the *same* ``noise`` :math:`\epsilon` everywhere, so the
    rows differ only by their :math:`\bar\alpha_t`. ``x0``, ``noise``: ``[1, 1, H, W]``."""
    x0, noise = _check_digit(x0, noise)
    axes = fig.subplots(len(schedules), len(ts), squeeze=False)
    for r, (row, (name, d)) in enumerate(zip(axes, schedules, strict=True)):
        for ax, t in zip(row, ts, strict=True):
            _imshow(ax, d.q_sample(x0, int(t), noise=noise))
            ax.set_xlabel(
                rf"$\sqrt{{\bar\alpha_t}} = {float(d.alpha_bars[t].sqrt()):.2f}$", fontsize=8
            )
            if r == 0:
                ax.set_title(f"$t = {t}$", fontsize=9)
        row[0].set_ylabel(name, fontsize=10)
    fig.tight_layout()


def side_by_side_draw(
    x0: torch.Tensor, noise: torch.Tensor, schedules: Sequence[NamedSchedule]
) -> Draw:
    r"""``draw(fig, t, schedule)`` for the animation: the digit ``x0`` noised to step ``t`` by each
    chosen schedule (``"both"`` or one name) with the same ``noise``, and the
    :math:`\log\mathrm{SNR}` curves with a marker at ``t``. ``x0``, ``noise``: ``[1, 1, H, W]``."""
    x0, noise = _check_digit(x0, noise)
    names = tuple(s.name for s in schedules)
    Ts = {s.diffusion.T for s in schedules}
    if len(Ts) != 1:
        raise ValueError(f"all schedules must have the same T, got {sorted(Ts)}")
    T = Ts.pop()

    def draw(fig, t: int, schedule: str) -> None:
        check_choice("schedule", schedule, (BOTH, *names))
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= T:
            raise ValueError(f"t must be an integer in [0, {T}], got {t!r}")
        chosen = [s for s in schedules if schedule in (BOTH, s.name)]
        grid = fig.add_gridspec(1, len(chosen) + 2)
        for i, (name, d) in enumerate(chosen):
            ax = fig.add_subplot(grid[0, i])
            _imshow(ax, d.q_sample(x0, t, noise=noise))
            ax.set_title(f"{name}\n" + rf"$\sqrt{{\bar\alpha_t}} = {float(d.alpha_bars[t].sqrt()):.3f}$",
                         fontsize=9, color=_colour(name, names.index(name)))  # fmt: skip
        ax = fig.add_subplot(grid[0, len(chosen) :])
        steps = torch.arange(1, T + 1)
        for name, d in chosen:
            c = _colour(name, names.index(name))
            ax.plot(steps.numpy(), d.snr(steps).log().numpy(), color=c, label=name)
            if t >= 1:
                ax.plot([t], [float(d.snr(t).log())], "o", color=c)
        ax.axvline(t, color="k", lw=0.8)
        ax.axhline(0.0, color="gray", lw=0.6, ls=":")
        ax.set(
            xlim=(0, T), ylim=(-21, 10), xlabel="$t$", title=rf"$\log\,\mathrm{{SNR}}$, $t = {t}$"
        )
        ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()

    return draw


def explore_side_by_side(
    x0: torch.Tensor,
    noise: torch.Tensor,
    schedules: Sequence[NamedSchedule],
    ts: Sequence[int],
    static: bool | None = None,
):
    """The chapter's explorer: controls ``t`` (the values ``ts``) and ``schedule`` (``"both"`` first,
    then each name); in the static book an animation over ``t`` with both schedules side by side
    (see :func:`ddpm_lib.viz.explore`)."""
    draw = side_by_side_draw(x0, noise, schedules)
    controls = {"t": [int(t) for t in ts], "schedule": [BOTH, *(s.name for s in schedules)]}
    return explore(draw, controls, "t", figsize=(8.0, 2.8), static=static)
