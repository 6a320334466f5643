r"""Self-checks for chapter 2, the closed form of :math:`q(\mathbf x_t \mid \mathbf x_0)` (Ho et al.
2020, Eq. 4) and the schedules.

Functions the student writes (``check_*(fn) -> CheckResult``): :func:`check_alpha_bars`,
:func:`check_q_sample`, :func:`check_snr_crossing`. Numbers the student writes
(``check_*(number) -> CheckResult``): :func:`check_alpha_bar_T` (derivation: :math:`\bar\alpha_T`
for ``T = 200``) and :func:`check_snr_crossing_prediction` (predict, then run: the first step with
SNR < 1).

A check never raises for a wrong answer; it names the kind of mistake (a missing square root, an
index off by one, ...), and ``hint(name)`` / ``solution(name)`` give the next tiers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .. import schedule
from .._validate import check_choice
from ..diffusion import Diffusion
from ._check import Case, CheckResult, Crash, Kind, Slip, register, run_check
from ._check import hint as hint
from ._check import solution as solution
from ._question import Bounds, Tolerance, Wrong, check_number


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
register(
    "alpha_bars",
    "Unroll the chain: each step multiplies the signal's share of the variance by the same kind "
    "of factor, so alpha_bar_t is a running product over the steps 1..t. betas[0] = 0 makes the "
    "product start at 1 for the clean data; torch has a running-product function.",
    "alpha_bar_t = prod_{s=1}^{t} (1 - beta_s), alpha_bar_0 = 1.\n"
    "In code:  return torch.cumprod(1 - betas, dim=0)",
)


def check_alpha_bars(fn: Callable[[torch.Tensor], torch.Tensor]) -> CheckResult:
    r"""Check ``fn(betas) -> alpha_bars``: from ``betas`` float64 ``[T + 1]`` with ``betas[0] = 0``,
    return :math:`\bar\alpha_t = \prod_{s=1}^{t}(1-\beta_s)` as ``[T + 1]`` with
    ``alpha_bars[0] = 1`` (Ho et al. 2020, the text before Eq. 4). Any float dtype, a NumPy array
    or a list passes."""
    cases = [Case((betas,), desc) for betas, desc in _schedules()]

    def shifted(betas):
        return torch.cat([torch.ones(1, dtype=betas.dtype), torch.cumprod(1 - betas, 0)[:-1]])

    slips = [
        Slip(Kind.WRONG_QUANTITY, "you multiplied the betas, the noise's shares; alpha_bar "
             "multiplies what each step keeps.", lambda b: torch.cumprod(b, 0)),
        Slip(Kind.INDEX_ZERO, "you dropped index 0: alpha_bars[0] = 1 must stay (t = 0 is the "
             "clean data).", lambda b: torch.cumprod(1 - b[1:], 0)),
        Slip(Kind.OFF_BY_ONE, "alpha_bar_t must include step t itself: yours stops one step "
             "short.", shifted),
        Slip(Kind.APPROXIMATION, "you summed the betas: 1 - (beta_1 + ... + beta_t) is only a "
             "first-order approximation.", lambda b: 1 - torch.cumsum(b, 0)),
        Slip(Kind.APPROXIMATION, "exp(-(beta_1 + ... + beta_t)) is only an approximation.",
             lambda b: torch.exp(-torch.cumsum(b, 0))),
        Slip(Kind.MISSING_SQRT, "these are square roots: alpha_bar_t is the signal's share of "
             "the variance, not the coefficient of x_0.", lambda b: torch.cumprod(1 - b, 0).sqrt()),
    ]  # fmt: skip
    return run_check(
        "alpha_bars", fn, lambda b: Diffusion(b).alpha_bars, cases, slips=slips
    )  # fmt: skip


# --------------------------------------------------------------------------------- exercise 2
register(
    "q_sample",
    "x_t is x_0 scaled down plus noise scaled up, with coefficients chosen so that data of "
    "variance 1 keeps variance 1: alpha_bar_t is the signal's share of the variance, so each "
    "coefficient is the square root of a share. alpha_bars[t] holds one number per image ([B]); "
    "reshape it so that it broadcasts against [B, C, H, W]. Use the eps you are given.",
    "x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * epsbar_t   (Ho et al. 2020, Eq. 4).\n"
    "In code:  abar = alpha_bars[t].to(x0.dtype).reshape(-1, 1, 1, 1)\n"
    "          return abar.sqrt() * x0 + (1 - abar).sqrt() * eps",
)


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
    :math:`\mathbf x_t = \sqrt{\bar\alpha_t}\,\mathbf x_0 + \sqrt{1-\bar\alpha_t}\,
    \bar{\boldsymbol\epsilon}_t` with the given noise ``eps``.

    Shapes: ``x0`` and ``eps`` float64 ``[B, C, H, W]``; ``t`` a LongTensor ``[B]`` (one step per
    image, in ``[0, T]``); ``alpha_bars`` float64 ``[T + 1]``. Returns ``[B, C, H, W]`` (any float
    dtype)."""

    def coef(alpha_bars, t, x0):
        return alpha_bars[t].reshape(-1, 1, 1, 1).to(x0.dtype)

    def form(signal, noise, shift=0):
        def wrong(x0, t, eps, ab):
            a = coef(ab, (t + shift).clamp(min=0), x0)
            return signal(a) * x0 + noise(a) * eps

        return wrong

    sq = torch.sqrt
    slips = [
        Slip(Kind.MISSING_SQRT, "alpha_bar_t and 1 - alpha_bar_t are shares of the variance, "
             "used here as scale factors: each needs a square root.",
             form(lambda a: a, lambda a: 1 - a)),
        Slip(Kind.MISSING_SQRT, "the coefficient of x0 is a share of the variance used as a scale "
             "factor: it needs a square root.", form(lambda a: a, lambda a: sq(1 - a))),
        Slip(Kind.MISSING_SQRT, "the coefficient of eps is a share of the variance used as a "
             "scale factor: it needs a square root.", form(lambda a: sq(a), lambda a: 1 - a)),
        Slip(Kind.SWAPPED, "the two coefficients are swapped: the signal keeps the larger share "
             "at small t.", form(lambda a: sq(1 - a), lambda a: sq(a))),
        Slip(Kind.OFF_BY_ONE, "you used alpha_bars[t - 1]; index t already is step t (index 0 = "
             "clean data).", form(lambda a: sq(a), lambda a: sq(1 - a), shift=-1)),
        Slip(Kind.MISSING_FACTOR, "the noise is not scaled: at small t it must be weak.",
             form(lambda a: sq(a), lambda a: torch.ones_like(a))),
        Slip(Kind.WRONG_SIGN, "the noise term has the wrong sign.",
             form(lambda a: sq(a), lambda a: -sq(1 - a))),
    ]  # fmt: skip
    crashes = [
        Crash(Kind.SHAPE, "alpha_bars[t] has one number per image, shape [B]; reshape it so that "
              "it broadcasts against the images [B, C, H, W].",
              lambda err: isinstance(err, RuntimeError) and "size of tensor" in str(err)),
    ]  # fmt: skip
    return run_check(
        "q_sample", fn,
        lambda x0, t, eps, ab: _diffusion(ab).q_sample(x0, t, noise=eps),
        _q_sample_cases(), slips=slips, crashes=crashes,
    )  # fmt: skip


# --------------------------------------------------------------------------------- exercise 3
register(
    "snr_crossing",
    "SNR(t) compares the signal's variance with the noise's variance in x_t. Compute it for the "
    "steps t = 1..T only (index 0 is the clean data, where it is infinite), find the first step "
    "where it is below 1 (torch.nonzero gives positions), and turn that position into a step t.",
    "SNR(t) = alpha_bar_t / (1 - alpha_bar_t); the answer is the first t >= 1 with SNR(t) < 1.\n"
    "In code:  snr = alpha_bars[1:] / (1 - alpha_bars[1:])\n"
    "          return int(torch.nonzero(snr < 1)[0]) + 1   # position i is step i + 1",
)


def check_snr_crossing(fn: Callable[[torch.Tensor], int]) -> CheckResult:
    r"""Check ``fn(alpha_bars) -> t``: the first step ``t`` in ``[1, T]`` at which the signal-to-noise
    ratio :math:`\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)` falls below 1, as an ``int``
    (a one-element tensor, a NumPy integer or a whole float pass). Every schedule tested crosses 1."""
    cases = []
    for betas, desc in (
        (schedule.linear_betas(1000, 1e-4, 0.02), "the linear schedule, T = 1000"),
        (schedule.cosine_betas(1000), "the cosine schedule, T = 1000"),
        (schedule.linear_betas(100, 1e-4, 0.05), "a linear schedule with T = 100, beta_T = 0.05"),
        (schedule.cosine_betas(8), "the cosine schedule with T = 8"),
    ):
        cases.append(Case((Diffusion(betas).alpha_bars,), desc))

    def zero_based(ab):
        return _diffusion(ab).first_t_snr_below() - 1

    def amplitude(ab):
        return int(torch.nonzero(ab[1:].sqrt() < 0.5)[0]) + 1

    def std_over_var(ab):
        return int(torch.nonzero(ab[1:].sqrt() / (1 - ab[1:]) < 1)[0]) + 1

    def inverted(ab):
        return int(torch.nonzero((1 - ab[1:]) / ab[1:] < 1)[0]) + 1

    slips = [
        Slip(Kind.OFF_BY_ONE, "you returned a 0-based position (or the last t with SNR >= 1); the "
             "answer is the step t itself, with alpha_bars[t] the value at step t.", zero_based),
        Slip(Kind.VAR_VS_STD, "you compared the signal's standard deviation with 1/2. SNR "
             "compares two variances.", amplitude),
        Slip(Kind.VAR_VS_STD, "you divided a standard deviation by a variance; SNR is a ratio of "
             "variances.", std_over_var),
        Slip(Kind.SWAPPED, "your ratio is upside down (noise over signal), so it is below 1 "
             "from the start.", inverted),
    ]  # fmt: skip
    return run_check(
        "snr_crossing", fn, lambda ab: _diffusion(ab).first_t_snr_below(1.0), cases, slips=slips
    )


# ============================================================ numbers: derive, then predict
register(
    "alpha_bar_T",
    "Build the schedule with the library (schedule.linear_betas with T = 200 and the same beta_1, "
    "beta_T: it spreads them over 200 steps, it does not rescale them), then take the running "
    "product of what each step keeps, up to and including step T. Approximations such as "
    "exp(-sum of betas) are not accurate enough here.",
    "alpha_bar_T = prod_{t=1}^{T} (1 - beta_t), beta_t = beta_1 + (t - 1)/(T - 1) (beta_T - beta_1).\n"
    "In code:  betas = schedule.linear_betas(200, 1e-4, 0.02)\n"
    "          torch.cumprod(1 - betas, 0)[200]      # or Diffusion(betas).alpha_bars[200]",
)


def check_alpha_bar_T(
    answer: Any, *, T: int = 200, beta_1: float = 1e-4, beta_T: float = 0.02, rtol: float = 5e-3
) -> CheckResult:
    r"""Derivation: :math:`\bar\alpha_T = \prod_{t=1}^{T}(1-\beta_t)` for the linear schedule
    :func:`ddpm_lib.schedule.linear_betas` ``(T, beta_1, beta_T)``: :math:`\beta_t` evenly spaced
    from :math:`\beta_1 = 10^{-4}` to :math:`\beta_T = 0.02` over ``T = 200`` steps (not rescaled by
    1000/T as in Nichol & Dhariwal's code), within a relative ``rtol`` (0.5 %: three significant
    figures pass)."""
    d = Diffusion(schedule.linear_betas(T, beta_1, beta_T))
    ab = float(d.alpha_bars[T])
    sum_b = float(d.betas.sum())
    wrong = [
        Wrong(Kind.APPROXIMATION, "exp(-(beta_1 + ... + beta_T)) is an approximation; the question "
              "asks for the exact product.", math.exp(-sum_b)),
        Wrong(Kind.APPROXIMATION, "1 - (beta_1 + ... + beta_T) is a first-order approximation, "
              "useless when the betas add up to more than 1.", 1.0 - sum_b),
        Wrong(Kind.OFF_BY_ONE, "that is alpha_bar_{T-1}: the product runs up to and including "
              "step T.", float(d.alpha_bars[T - 1])),
        Wrong(Kind.MISSING_SQRT, "that is sqrt(alpha_bar_T), the coefficient of x_0; alpha_bar_T "
              "is the signal's share of the variance.", math.sqrt(ab)),
        Wrong(Kind.WRONG_QUANTITY, "that is 1 - alpha_bar_T, the noise's share.", 1.0 - ab),
        Wrong(Kind.WRONG_QUANTITY, "you multiplied the betas; alpha_bar multiplies what each step "
              "keeps.", float(torch.prod(d.betas[1:]))),
        Wrong(Kind.WRONG_PARAMETERS, f"that is alpha_bar_{T} of the T = 1000 schedule; with T = {T} "
              "the same betas are spread over fewer steps.",
              float(Diffusion(schedule.linear_betas(1000, beta_1, beta_T)).alpha_bars[T])
              if T <= 1000 else math.nan),
        Wrong(Kind.WRONG_PARAMETERS, "that is alpha_bar_T for T = 1000; the question has "
              f"T = {T}.", float(Diffusion(schedule.linear_betas(1000, beta_1, beta_T)).alpha_bars[-1])),
        Wrong(Kind.WRONG_PARAMETERS, "you rescaled the betas by 1000/T (a convention of Nichol & "
              "Dhariwal's code); this book's linear_betas keeps beta_1 and beta_T as given.",
              _scaled_alpha_bar(T, beta_1, beta_T)),
    ]  # fmt: skip
    return check_number(
        "alpha_bar_T", answer, ab, Tolerance(rtol=rtol), wrong=wrong,
        bounds=Bounds(0.0, 1.0, "alpha_bar_T is a product of numbers between 0 and 1."),
    )  # fmt: skip


def _scaled_alpha_bar(T: int, beta_1: float, beta_T: float) -> float:
    scale = 1000 / T
    if not 0 < beta_T * scale < 1 or not 0 < beta_1 * scale < 1:
        return math.nan
    return float(Diffusion(schedule.linear_betas(T, beta_1 * scale, beta_T * scale)).alpha_bars[T])


register(
    "snr_crossing_prediction",
    "SNR(t) < 1 exactly when alpha_bar_t < 1/2. For the cosine schedule alpha_bar_t is (almost) "
    "a squared cosine of a rescaled t/T: where does a squared cosine equal 1/2? Do not forget the "
    "offset s in the rescaling.",
    "SNR(t) < 1  <=>  alpha_bar_t < 1/2. Cosine (Nichol & Dhariwal 2021, Eq. 17): "
    "alpha_bar_t = f(t)/f(0), f(t) = cos^2((t/T + s)/(1 + s) * pi/2),\n"
    "so f(t) = 1/2 at t/T = (1 + s)/2 - s; the first whole step after it is the answer.\n"
    "In code:  Diffusion(schedule.cosine_betas(1000)).first_t_snr_below(1.0)",
)


def check_snr_crossing_prediction(
    prediction: Any, *, schedule_name: str = "cosine", T: int = 1000, atol: int = 1
) -> CheckResult:
    r"""Predict, then run: the first step ``t`` with :math:`\mathrm{SNR}(t) < 1` for the schedule
    ``schedule_name`` (``"cosine"``: :func:`ddpm_lib.schedule.cosine_betas` ``(T)``, s = 0.008;
    ``"linear"``: ``linear_betas(T, 1e-4, 0.02)``), within ``±atol`` steps. Exact:
    :meth:`Diffusion.first_t_snr_below`. For the cosine schedule the crossing can be predicted with
    pencil and paper (where is a squared cosine 1/2?)."""
    check_choice("schedule_name", schedule_name, ("cosine", "linear"))
    both = {
        "cosine": Diffusion(schedule.cosine_betas(T)),
        "linear": Diffusion(schedule.linear_betas(T, 1e-4, 0.02)),
    }
    d = both[schedule_name]
    other = "linear" if schedule_name == "cosine" else "cosine"
    exact = d.first_t_snr_below(1.0)
    ab = d.alpha_bars
    wrong = [
        Wrong(Kind.VAR_VS_STD, "that is where sqrt(alpha_bar_t), a standard deviation, falls "
              "below 1/2; SNR compares variances.", int(torch.nonzero(ab[1:].sqrt() < 0.5)[0]) + 1),
        Wrong(Kind.WRONG_PARAMETERS, f"that is the {other} schedule's crossing.",
              both[other].first_t_snr_below(1.0)),
    ]  # fmt: skip
    if schedule_name == "cosine":
        no_offset = Diffusion(schedule.cosine_betas(T, 0.0)).first_t_snr_below(1.0)
        wrong.append(Wrong(Kind.WRONG_PARAMETERS, "that ignores the offset s = 0.008, which "
                           "shifts the crossing by a few steps.", no_offset))  # fmt: skip
    return check_number(
        "snr_crossing_prediction", prediction, exact, Tolerance(atol=atol), wrong=wrong,
        what="prediction", bounds=Bounds(1, T, f"A step t lies between 1 and T = {T}."),
    )  # fmt: skip
