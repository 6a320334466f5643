r"""The schedule explorer: choose the schedule (linear, cosine or both), :math:`\beta_1`,
:math:`\beta_T`, :math:`T` and the cosine offset :math:`s`, and see what they do.

Four panels, every number from the library: :math:`\bar\alpha_t` (:attr:`Diffusion.alpha_bars`),
:math:`\mathrm{SNR}(t)` on a log scale (:attr:`Diffusion.snrs`), :math:`\mathrm{KL}(q(\mathbf x_T
\mid\mathbf x_0)\,\|\,\mathcal N(\mathbf 0, \mathbf I))` in bits per dimension against the chain
length :math:`T` (:func:`ddpm_lib.bound.prior_bpd`, one digit), and that digit at the chosen
step, :math:`\mathbf x_t = \sqrt{\bar\alpha_t}\,\mathbf x_0 + \sqrt{1-\bar\alpha_t}\,
\bar{\boldsymbol\epsilon}_t` with a fixed :math:`\bar{\boldsymbol\epsilon}_t`
(:meth:`Diffusion.q_sample`). The schedules come from :func:`ddpm_lib.schedule.linear_betas`
(Ho et al. 2020) and :func:`ddpm_lib.schedule.cosine_betas` (Nichol & Dhariwal 2021, Eq. 17).

:func:`explore_schedules` shows it with sliders in a live kernel; in the static book it is an
animation over ``T`` with both schedules (:func:`ddpm_lib.viz.explore`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch

from .. import schedule
from .._validate import check_choice
from ..bound import prior_bpd
from ..diffusion import Diffusion
from ._live import explore
from .common import colour
from .images import check_digit, draw_image

#: The schedule kinds; the explorer's ``kind`` control adds ``"both"``.
KINDS = ("linear", "cosine")
BOTH = "both"

#: The values each slider offers (``T`` is also the grid of the KL panel).
CONTROLS: dict[str, tuple[Any, ...]] = {
    "kind": (BOTH, *KINDS),
    "T": (10, 20, 50, 100, 200, 500, 1000, 2000, 4000),
    "beta_1": (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3),
    "beta_T": (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2),
    "s": (0.0, 0.001, 0.008, 0.02, 0.05, 0.1, 0.2),
    "t_over_T": (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
}
#: Where the sliders start: both schedules as published (Ho et al. 2020; Nichol & Dhariwal 2021).
INITIAL: dict[str, Any] = {
    "kind": BOTH, "T": 1000, "beta_1": 1e-4, "beta_T": 0.02, "s": 0.008, "t_over_T": 0.5,
}  # fmt: skip
#: The controls' labels, in the book's notation.
LABELS: dict[str, str] = {
    "kind": "schedule", "T": "T", "beta_1": "β₁ (linear)", "beta_T": "β_T (linear)",
    "s": "s (cosine)", "t_over_T": "t / T",
}  # fmt: skip


def make_schedules(
    kind: str, T: int, beta_1: float, beta_T: float, s: float
) -> dict[str, Diffusion]:
    r"""The schedule(s) ``kind`` (``"linear"``, ``"cosine"`` or ``"both"``) with ``T`` steps, by
    name: ``"linear"`` is ``linear_betas(T, beta_1, beta_T)``, ``"cosine"`` is
    ``cosine_betas(T, s)``; each parameter is validated by the schedule constructor."""
    check_choice("kind", kind, (BOTH, *KINDS))
    made = {
        "linear": lambda: Diffusion(schedule.linear_betas(T, beta_1, beta_T)),
        "cosine": lambda: Diffusion(schedule.cosine_betas(T, s)),
    }
    return {name: made[name]() for name in KINDS if kind in (BOTH, name)}


def step_at(t_over_T: float, T: int) -> int:
    """The step ``t = round(t_over_T * T)`` in ``[0, T]`` (``t_over_T`` in [0, 1])."""
    if isinstance(t_over_T, bool) or not isinstance(t_over_T, int | float):
        raise TypeError(f"t_over_T must be a number, got {type(t_over_T).__name__}")
    if not 0.0 <= t_over_T <= 1.0:
        raise ValueError(f"t_over_T must be in [0, 1], got {t_over_T}")
    return round(t_over_T * T)


def prior_bpd_by_T(
    name: str, Ts: Sequence[int], x0: torch.Tensor, beta_1: float, beta_T: float, s: float
) -> np.ndarray:
    r""":math:`\mathrm{KL}(q(\mathbf x_T\mid\mathbf x_0)\,\|\,\mathcal N(\mathbf 0,\mathbf I))` in
    bits per dimension of the image ``x0`` ``[1, C, H, W]`` (float64) for the schedule ``name``
    with each chain length in ``Ts``: :func:`ddpm_lib.bound.prior_bpd`, one value per ``T``."""
    return np.array([
        float(prior_bpd(make_schedules(name, int(T), beta_1, beta_T, s)[name], x0.double())[0])
        for T in Ts
    ])  # fmt: skip


def draw_schedule_explorer(
    fig,
    kind: str,
    T: int,
    beta_1: float,
    beta_T: float,
    s: float,
    t_over_T: float,
    *,
    x0: torch.Tensor,
    noise: torch.Tensor,
    Ts: Sequence[int] = CONTROLS["T"],
) -> None:
    r"""Draw the explorer for one setting (see the module docstring): axes 0 :math:`\bar\alpha_t`
    against :math:`t/T`, 1 :math:`\mathrm{SNR}(t)` (log), 2 the prior KL against ``Ts`` (log-log,
    the current ``T`` marked), then one image per schedule shown: ``x0`` ``[1, 1, H, W]`` in
    [-1, 1] noised to ``t = step_at(t_over_T, T)`` with ``noise`` (same shape). Each curve is
    labelled with its schedule's name."""
    x0, noise = check_digit(x0, noise)
    schedules = make_schedules(kind, T, beta_1, beta_T, s)
    t = step_at(t_over_T, T)
    grid = fig.add_gridspec(2, 4, width_ratios=(1, 1, 1, 0.5), wspace=0.4, hspace=0.35,
                            left=0.05, right=0.99, bottom=0.16, top=0.88)  # fmt: skip
    ax_a = fig.add_subplot(grid[:, 0])
    ax_s = fig.add_subplot(grid[:, 1])
    ax_k = fig.add_subplot(grid[:, 2])
    for i, (name, d) in enumerate(schedules.items()):
        c = colour(name, KINDS.index(name))
        steps = np.arange(d.T + 1)
        ax_a.plot(steps / d.T, d.alpha_bars.numpy(), color=c, label=name)
        ax_s.plot(steps[1:] / d.T, d.snrs[1:].numpy(), color=c, label=name)
        kl = prior_bpd_by_T(name, Ts, x0, beta_1, beta_T, s)
        ax_k.plot(np.asarray(Ts), kl, ".-", color=c, lw=1, label=name)
        here = float(prior_bpd(d, x0.double())[0])
        ax_k.plot([T], [here], "o", ms=9, mfc="none", color=c, label=f"T = {T}: {here:.2g}")
        if t >= 1:
            ax_s.plot([t / d.T], [float(d.snrs[t])], "o", color=c)
        ax_img = fig.add_subplot(grid[i, 3])
        draw_image(ax_img, d.q_sample(x0, t, noise=noise))
        ax_img.set_title(f"{name}, t = {t}", fontsize=8, color=c)
    for ax in (ax_a, ax_s):
        ax.axvline(t / T, color="k", lw=0.8)
        ax.set_xlabel("$t / T$")
        ax.grid(alpha=0.3)
    ax_a.set(ylim=(-0.02, 1.02), title=r"$\bar\alpha_t$ (signal kept)")
    ax_s.axhline(1.0, color="gray", lw=0.8, ls=":")
    ax_s.set(yscale="log", title=r"$\mathrm{SNR}(t) = \bar\alpha_t / (1-\bar\alpha_t)$")
    ax_k.set(xscale="log", yscale="log", xlabel="$T$",
             title=r"KL$(q(\mathbf{x}_T|\mathbf{x}_0)\,\|\,\mathcal{N}(\mathbf{0}, \mathbf{I}))$, bits/dim")  # fmt: skip
    ax_k.grid(alpha=0.3)
    ax_a.legend(fontsize=7)
    marked = [h for h in ax_k.get_lines() if h.get_label().startswith("T = ")]
    ax_k.legend(handles=marked, fontsize=7, loc="lower left")
    for ax in fig.axes:
        ax.title.set_fontsize(9)


def explore_schedules(
    x0: torch.Tensor,
    noise: torch.Tensor,
    *,
    controls: Mapping[str, Sequence[Any]] | None = None,
    initial: Mapping[str, Any] | None = None,
    animate_over: str = "T",
    static: bool | None = None,
):
    r"""The schedule explorer for the digit ``x0`` ``[1, 1, H, W]`` in [-1, 1] and a fixed
    ``noise`` of the same shape: sliders for ``kind``, ``T``, ``beta_1``, ``beta_T``, ``s`` and
    ``t_over_T`` in a live kernel (values :data:`CONTROLS`, starting at :data:`INITIAL`, both
    overridable; ``controls`` must name all six, and a control whose values lack the initial one
    starts at its first value); in the static book an animation over ``animate_over`` (default ``T``, one frame
    per value) with the other parameters at their initial values (both schedules)."""
    check_digit(x0, noise)
    controls = dict(CONTROLS if controls is None else controls)
    if set(controls) != set(CONTROLS):
        raise ValueError(
            f"controls must give values for exactly {list(CONTROLS)}, got {list(controls)}"
        )
    # the published values where the sliders offer them, else each slider's first value
    start = {k: v for k, v in INITIAL.items() if v in list(controls[k])} | dict(initial or {})
    Ts = tuple(controls.get("T", CONTROLS["T"]))
    draw = partial(draw_schedule_explorer, x0=x0, noise=noise, Ts=Ts)
    return explore(draw, controls, animate_over, figsize=(11.0, 3.4), static=static,
                   initial=start, labels=LABELS)  # fmt: skip
