r"""Self-checks for chapter 2, the closed form of :math:`q(x_t \mid x_0)` (Ho et al. 2020, Eq. 4).

Each ``check_*`` runs the learner's function and the library's reference on the same inputs and
returns a :class:`~ddpm_lib.exercises.CheckResult`; it never raises for a wrong answer. When a wrong
answer matches a typical slip (a missing square root, an index off by one, ...), the message
names the slip.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import schedule
from ..diffusion import Diffusion
from ._check import Case, CheckResult, Slip, run_check_with_slips

__all__ = ["check_alpha_bars", "check_q_sample", "check_snr_crossing"]


def _diffusion(alpha_bars: torch.Tensor) -> Diffusion:
    r"""The :class:`Diffusion` with these :math:`\bar\alpha_t`: :math:`\beta_t = 1 -
    \bar\alpha_t / \bar\alpha_{t-1}` for ``t >= 1``, :math:`\beta_0 = 0`."""
    betas = torch.zeros_like(alpha_bars, dtype=torch.float64)
    betas[1:] = 1.0 - alpha_bars[1:] / alpha_bars[:-1]
    return Diffusion(betas)


def _schedules() -> list[tuple[torch.Tensor, str]]:
    g = torch.Generator().manual_seed(2020)
    random = torch.zeros(7, dtype=torch.float64)
    random[1:] = torch.rand(6, generator=g, dtype=torch.float64) * 0.3 + 0.01
    return [
        (schedule.linear_betas(10, 1e-4, 0.02), "the linear schedule with T = 10"),
        (schedule.cosine_betas(25), "the cosine schedule with T = 25"),
        (random, "6 random betas in (0.01, 0.31)"),
        (schedule.linear_betas(1, 0.3, 0.3), "a one-step chain (T = 1, beta_1 = 0.3)"),
    ]


# --------------------------------------------------------------------------------- exercise 1
def check_alpha_bars(fn: Callable[[torch.Tensor], torch.Tensor]) -> CheckResult:
    r"""Check ``fn(betas) -> alpha_bars``: from ``betas`` float64 ``[T + 1]`` with ``betas[0] = 0``,
    return :math:`\bar\alpha_t = \prod_{s=1}^{t}(1-\beta_s)` as ``[T + 1]`` with
    ``alpha_bars[0] = 1`` (Ho et al. 2020, the text before Eq. 4)."""
    cases = [Case((betas,), desc) for betas, desc in _schedules()]

    def shifted(betas):
        return torch.cat([torch.ones(1, dtype=betas.dtype), torch.cumprod(1 - betas, 0)[:-1]])

    slips = [
        Slip("you multiplied the betas. alpha_bar multiplies alpha_s = 1 - beta_s.",
             lambda b: torch.cumprod(b, 0)),
        Slip("you dropped index 0: alpha_bars[0] = 1 must stay (t = 0 is the clean data).",
             lambda b: torch.cumprod(1 - b[1:], 0)),
        Slip("you are off by one: alpha_bar_t includes alpha_t itself (the product runs to s = t).",
             shifted),
        Slip("you summed the betas: 1 - (beta_1 + ... + beta_t) is only a first-order approximation.",
             lambda b: 1 - torch.cumsum(b, 0)),
    ]  # fmt: skip
    return run_check_with_slips(
        "alpha_bars", fn, lambda b: Diffusion(b).alpha_bars, cases,
        "alpha_bars[t] is the product of (1 - betas[s]) for s = 0..t; torch.cumprod does it.",
        slips,
    )  # fmt: skip


# --------------------------------------------------------------------------------- exercise 2
def _q_sample_cases() -> list[Case]:
    g = torch.Generator().manual_seed(4)
    cases = []
    for (betas, desc), ts in zip(
        _schedules()[:3], ([1, 5, 10], [0, 12, 25], [6, 3, 1]), strict=True
    ):
        alpha_bars = Diffusion(betas).alpha_bars
        x0 = torch.rand(3, 1, 4, 5, generator=g, dtype=torch.float64) * 2 - 1
        eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        t = torch.tensor(ts)
        cases.append(Case((x0, t, eps, alpha_bars), f"{desc}, x0 [3, 1, 4, 5], t = {ts}"))
    return cases


def check_q_sample(
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
) -> CheckResult:
    r"""Check ``fn(x0, t, eps, alpha_bars) -> x_t``, the closed form (Ho et al. 2020, Eq. 4)
    :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon` with the given noise.

    Shapes: ``x0`` and ``eps`` ``[B, C, H, W]``; ``t`` a LongTensor ``[B]`` (one step per image, in
    ``[0, T]``); ``alpha_bars`` float64 ``[T + 1]``. Returns ``[B, C, H, W]``."""

    def coef(alpha_bars, t, x0):
        return alpha_bars[t].reshape(-1, 1, 1, 1).to(x0.dtype)

    def no_sqrt(x0, t, eps, ab):
        a = coef(ab, t, x0)
        return a * x0 + (1 - a) * eps

    def swapped(x0, t, eps, ab):
        a = coef(ab, t, x0)
        return (1 - a).sqrt() * x0 + a.sqrt() * eps

    def off_by_one(x0, t, eps, ab):
        a = coef(ab, (t - 1).clamp(min=0), x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    def noise_std_one(x0, t, eps, ab):
        return coef(ab, t, x0).sqrt() * x0 + eps

    slips = [
        Slip("a square root is missing: alpha_bar_t and 1 - alpha_bar_t are *variances*; "
             "x_t is built from standard deviations.", no_sqrt),
        Slip("the two coefficients are swapped: the signal keeps sqrt(alpha_bar_t).", swapped),
        Slip("you used alpha_bars[t - 1]; index t already is step t (index 0 = clean data).",
             off_by_one),
        Slip("the noise is not scaled: it needs the factor sqrt(1 - alpha_bar_t).", noise_std_one),
    ]  # fmt: skip
    return run_check_with_slips(
        "q_sample", fn,
        lambda x0, t, eps, ab: _diffusion(ab).q_sample(x0, t, noise=eps),
        _q_sample_cases(),
        "x_t = sqrt(alpha_bars[t]) * x0 + sqrt(1 - alpha_bars[t]) * eps, with alpha_bars[t] "
        "reshaped to [B, 1, 1, 1] so that each image gets its own step.",
        slips,
    )  # fmt: skip


# --------------------------------------------------------------------------------- exercise 3
def check_snr_crossing(fn: Callable[[torch.Tensor], int]) -> CheckResult:
    r"""Check ``fn(alpha_bars) -> t``: the first step ``t`` in ``[1, T]`` at which the signal-to-noise
    ratio :math:`\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)` falls below 1, as an ``int``
    (a one-element tensor is accepted). Every schedule tested does cross 1."""
    if not callable(fn):
        return CheckResult(False, f"snr_crossing: expected a function, got {type(fn).__name__}")
    cases = []
    for betas, desc in (
        (schedule.linear_betas(1000, 1e-4, 0.02), "the linear schedule, T = 1000"),
        (schedule.cosine_betas(1000), "the cosine schedule, T = 1000"),
        (schedule.linear_betas(100, 1e-4, 0.05), "a linear schedule with T = 100, beta_T = 0.05"),
        (schedule.cosine_betas(8), "the cosine schedule with T = 8"),
    ):
        cases.append(Case((Diffusion(betas).alpha_bars,), desc))

    def as_int(alpha_bars):
        got = fn(alpha_bars)
        if isinstance(got, torch.Tensor):
            if got.numel() != 1:
                raise TypeError(
                    f"expected one step t (an int), got a tensor of shape {list(got.shape)}"
                )
            return int(got.item())
        return got

    def zero_based(ab):
        return _diffusion(ab).first_t_snr_below() - 1

    def amplitude(ab):
        return int(torch.nonzero(ab[1:].sqrt() < 0.5)[0]) + 1

    def std_over_var(ab):
        return int(torch.nonzero(ab[1:].sqrt() / (1 - ab[1:]) < 1)[0]) + 1

    slips = [
        Slip("you returned a 0-based position (or the last t with SNR >= 1); the answer is "
             "the step t itself, with alpha_bars[t] the value at step t.", zero_based),
        Slip("you compared the signal's standard deviation sqrt(alpha_bar_t) with 1/2. "
             "SNR compares the two variances: alpha_bar_t against 1 - alpha_bar_t.", amplitude),
        Slip("you divided a standard deviation by a variance; SNR is a ratio of variances.",
             std_over_var),
    ]  # fmt: skip
    return run_check_with_slips(
        "snr_crossing", as_int, lambda ab: _diffusion(ab).first_t_snr_below(1.0), cases,
        "SNR(t) = alpha_bars[t] / (1 - alpha_bars[t]); look at t = 1..T only and return the first t "
        "where it is below 1 (torch.nonzero gives positions).",
        slips,
    )  # fmt: skip
