r"""Self-checks for chapter 3, the forward-process posterior
:math:`q(\mathbf x_{t-1}\mid\mathbf x_t, \mathbf x_0) = \mathcal N(\tilde{\boldsymbol\mu}_t,
\tilde\beta_t\mathbf I)` (Ho et al. 2020, Eqs. 6-7), for ``t >= 2``; at ``t = 1`` it is the point
:math:`\mathbf x_0` (:math:`\tilde\beta_1 = 0`).

Functions the student writes receive the schedule as ``betas`` (float64 ``[T + 1]``,
``betas[0] = 0``, index ``t`` = :math:`\beta_t`) and a step ``t`` as a Python int in ``[1, T]``:

* :func:`check_q_posterior`: ``fn(x0, x_t, t, betas) -> (mean, variance)``, Eqs. 6-7;
* :func:`check_mu_tilde_from_eps`: ``fn(x_t, eps, t, betas) -> mean``, Eq. 10;
* :func:`check_beta_tilde`: ``fn(betas) -> beta_tildes`` ``[T + 1]`` with ``beta_tildes[0] = 0``.

Numbers the student writes: :func:`check_beta_tilde_value` (derivation: :math:`\tilde\beta_t` at
given numbers) and :func:`check_posterior_std_prediction` (predict, then run: the posterior's
standard deviation at a step).

A check never raises for a wrong answer; it names the kind of mistake (swapped coefficients,
:math:`\bar\alpha_t` for :math:`\bar\alpha_{t-1}`, a missing square root, ...), and ``hint(name)`` /
``solution(name)`` give the next tiers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .. import schedule
from .._validate import check_choice, check_t
from ..diffusion import Diffusion
from ._check import Case, CheckResult, Kind, Slip, failed, reference_schedules, register, run_check
from ._check import hint as hint
from ._check import solution as solution
from ._question import VARIANCE, Bounds, Tolerance, Wrong, check_number


def _steps(T: int) -> list[int]:
    return sorted({1, 2, 3, T // 2, T})


def _pair_cases(seed: int, shape: tuple[int, ...], names: str) -> list[Case]:
    """Two standard-normal float64 tensors of ``shape`` (described as ``names``) for every schedule
    and step: the arguments ``(a, b, t, betas)``."""
    gen = torch.Generator().manual_seed(seed)
    cases = []
    for label, betas in reference_schedules():
        for t in _steps(betas.shape[0] - 1):
            a = torch.randn(shape, generator=gen, dtype=torch.float64)
            b = torch.randn(shape, generator=gen, dtype=torch.float64)
            cases.append(Case((a, b, t, betas), f"{label}, t = {t}, {names} {list(shape)}"))
    return cases


def _parts(betas: torch.Tensor, t: int):
    """(beta_t, alpha_t, abar_t, abar_{t-1}) as float64 0-dim tensors."""
    ab = torch.cumprod(1 - betas, 0)
    return betas[t], 1 - betas[t], ab[t], ab[t - 1]


def _shifted(reference, shift: int):
    def wrong(*args):
        *rest, t, betas = args
        if not 1 <= t + shift < betas.shape[0]:
            raise IndexError("the slip is undefined at this t")
        return reference(*rest, t + shift, betas)

    return wrong


# ------------------------------------------------------------------------------ q_posterior
register(
    "q_posterior",
    "Bayes: q(x_{t-1} | x_t, x0) is proportional to q(x_t | x_{t-1}) q(x_{t-1} | x0), and both "
    "factors are Gaussian in x_{t-1}. Write each exponent as a quadratic in x_{t-1}, add them and "
    "complete the square: precisions (1 / variance) add, and the mean is the precision-weighted "
    "combination of what each factor says about x_{t-1}. Mind which alpha_bar belongs to which "
    "step (alpha_bars = cumprod(1 - betas) has alpha_bars[0] = 1).",
    "mean = sqrt(abar_{t-1}) beta_t / (1 - abar_t) * x0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) * x_t\n"
    "variance = beta_tilde_t = (1 - abar_{t-1}) / (1 - abar_t) * beta_t   (Ho et al. 2020, Eqs. 6-7)\n"
    "In code:  ab = torch.cumprod(1 - betas, 0); b, a = betas[t], 1 - betas[t]\n"
    "          mean = ab[t-1].sqrt() * b / (1 - ab[t]) * x0 + a.sqrt() * (1 - ab[t-1]) / (1 - ab[t]) * x_t\n"
    "          return mean, (1 - ab[t-1]) / (1 - ab[t]) * b",
)


def _q_posterior_ref(x0, x_t, t, betas):
    mean, var = Diffusion(betas).q_posterior(x0, x_t, t)
    return mean, var


def _posterior_slip(coef_x0, coef_xt, var, swap=False):
    def wrong(x0, x_t, t, betas):
        b, a, ab, ab_prev = _parts(betas, t)
        c0, ct = coef_x0(b, a, ab, ab_prev), coef_xt(b, a, ab, ab_prev)
        if swap:
            c0, ct = ct, c0
        return c0 * x0 + ct * x_t, var(b, a, ab, ab_prev)

    return wrong


def check_q_posterior(fn: Callable[..., Any]) -> CheckResult:
    r"""Check ``fn(x0, x_t, t, betas) -> (mean, variance)`` against Ho et al. 2020, Eqs. 6-7:

    .. math:: \tilde{\boldsymbol\mu}_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}
        \mathbf x_0 + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\mathbf x_t,\qquad
        \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t

    ``x0``, ``x_t`` float64 ``[B, ...]``; ``t`` int in ``[1, T]`` (tested at 1, 2, 3, T/2, T;
    at ``t = 1`` the formulas give the point ``x0``). ``variance`` may be a Python float, a
    one-element tensor or a tensor shaped like ``mean``, of any float dtype; a list for the pair
    passes too."""
    c0 = lambda b, a, ab, abp: abp.sqrt() * b / (1 - ab)  # noqa: E731
    ct = lambda b, a, ab, abp: a.sqrt() * (1 - abp) / (1 - ab)  # noqa: E731
    bt = lambda b, a, ab, abp: (1 - abp) / (1 - ab) * b  # noqa: E731
    slips = [
        Slip(Kind.SWAPPED, "the coefficients of x0 and x_t are swapped.",
             _posterior_slip(c0, ct, bt, True)),
        Slip(Kind.OFF_BY_ONE, "alpha_bar_t is used where the formula has alpha_bar_{t-1}: the "
             "prior q(x_{t-1} | x0) lives one step earlier than x_t.",
             _posterior_slip(lambda b, a, ab, abp: ab.sqrt() * b / (1 - ab),
                             lambda b, a, ab, abp: a.sqrt() * (1 - ab) / (1 - ab),
                             lambda b, a, ab, abp: b)),
        Slip(Kind.MISSING_SQRT, "the mean's coefficients contain shares of the variance where "
             "their square roots belong (they scale values).",
             _posterior_slip(lambda b, a, ab, abp: abp * b / (1 - ab),
                             lambda b, a, ab, abp: a * (1 - abp) / (1 - ab), bt)),
        Slip(Kind.VAR_VS_STD, "the second value is a standard deviation; return the variance.",
             _posterior_slip(c0, ct, lambda b, a, ab, abp: bt(b, a, ab, abp).sqrt())),
        Slip(Kind.WRONG_QUANTITY, "the mean is right, but the variance is the forward step's "
             "beta_t; knowing x0 as well makes the posterior narrower.",
             _posterior_slip(c0, ct, lambda b, a, ab, abp: b)),
        Slip(Kind.OFF_BY_ONE, "the formula is evaluated one step too late (t + 1): is your "
             "alpha_bar array missing alpha_bar_0 = 1, or do you index betas with t + 1?",
             _shifted(_q_posterior_ref, 1)),
        Slip(Kind.OFF_BY_ONE, "the formula is evaluated one step too early (t - 1): betas[t] is "
             "beta_t already.", _shifted(_q_posterior_ref, -1)),
    ]  # fmt: skip
    cases = _pair_cases(3, (2, 1, 3, 3), "x0 and x_t")
    return run_check("q_posterior", fn, _q_posterior_ref, cases, slips=slips)


# ------------------------------------------------------------------------- mu_tilde_from_eps
register(
    "mu_tilde_from_eps",
    "Solve the closed form x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps for x0, substitute it "
    "into the x0-form of the posterior mean and collect the x_t terms: their coefficient "
    "simplifies a lot (use 1 - abar_t = 1 - alpha_t abar_{t-1}).",
    "mean = (x_t - beta_t / sqrt(1 - abar_t) * eps) / sqrt(alpha_t)   (Ho et al. 2020, Eq. 10)\n"
    "In code:  ab = torch.cumprod(1 - betas, 0)\n"
    "          return (x_t - betas[t] / (1 - ab[t]).sqrt() * eps) / (1 - betas[t]).sqrt()",
)


def _mu_eps_ref(x_t, eps, t, betas):
    return Diffusion(betas).mu_tilde_from_eps(x_t, t, eps)


def _mu_eps_slip(front, eps_coef, sign=-1.0):
    def wrong(x_t, eps, t, betas):
        b, a, ab, abp = _parts(betas, t)
        return front(b, a, ab, abp) * (x_t + sign * eps_coef(b, a, ab, abp) * eps)

    return wrong


def check_mu_tilde_from_eps(fn: Callable[..., Any]) -> CheckResult:
    r"""Check ``fn(x_t, eps, t, betas) -> mean`` against the ε-form of the posterior mean
    (Ho et al. 2020, Eq. 10):

    .. math:: \tilde{\boldsymbol\mu}_t = \frac{1}{\sqrt{\alpha_t}}\Big(\mathbf x_t -
        \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\bar{\boldsymbol\epsilon}_t\Big)

    ``x_t``, ``eps`` float64 ``[B, ...]``, ``t`` int in ``[1, T]``; any float dtype of the answer."""
    one_over_sqrt_a = lambda b, a, ab, abp: 1 / a.sqrt()  # noqa: E731
    eps_c = lambda b, a, ab, abp: b / (1 - ab).sqrt()  # noqa: E731
    slips = [
        Slip(Kind.WRONG_QUANTITY, "the front factor undoes all t steps at once; one reverse step "
             "undoes one forward step.", _mu_eps_slip(lambda b, a, ab, abp: 1 / ab.sqrt(), eps_c)),
        Slip(Kind.MISSING_SQRT, "the noise's coefficient divides by a share of the variance "
             "where its square root belongs.",
             _mu_eps_slip(one_over_sqrt_a, lambda b, a, ab, abp: b / (1 - ab))),
        Slip(Kind.WRONG_SIGN, "the noise is added instead of subtracted.",
             _mu_eps_slip(one_over_sqrt_a, eps_c, 1.0)),
        Slip(Kind.WRONG_QUANTITY, "this is the estimate of x0 from x_t and eps, not the posterior "
             "mean of x_{t-1}.", _mu_eps_slip(lambda b, a, ab, abp: 1 / ab.sqrt(),
                                              lambda b, a, ab, abp: (1 - ab).sqrt())),
        Slip(Kind.MISSING_FACTOR, "the factor in front of the bracket is missing.",
             _mu_eps_slip(lambda b, a, ab, abp: 1.0, eps_c)),
        Slip(Kind.OFF_BY_ONE, "the formula is evaluated at t + 1.", _shifted(_mu_eps_ref, 1)),
        Slip(Kind.OFF_BY_ONE, "the formula is evaluated at t - 1.", _shifted(_mu_eps_ref, -1)),
    ]  # fmt: skip
    cases = _pair_cases(5, (3, 1, 4, 4), "x_t and eps")
    return run_check("mu_tilde_from_eps", fn, _mu_eps_ref, cases, slips=slips)


# ------------------------------------------------------------------------------- beta_tilde
register(
    "beta_tilde",
    "The posterior's precision is the sum of the two precisions that meet at x_{t-1}: the "
    "likelihood's (from the step x_{t-1} -> x_t) and the prior's (from q(x_{t-1} | x0)). Invert "
    "the sum and simplify with 1 - abar_t = 1 - alpha_t abar_{t-1}. Index 0 holds a placeholder 0; "
    "compute alpha_bars over the whole [T + 1] tensor so that alpha_bars[0] = 1.",
    "beta_tilde_t = (1 - abar_{t-1}) / (1 - abar_t) * beta_t for t = 1..T (so beta_tilde_1 = 0), "
    "beta_tildes[0] = 0.\n"
    "In code:  ab = torch.cumprod(1 - betas, 0); out = torch.zeros_like(betas)\n"
    "          out[1:] = (1 - ab[:-1]) / (1 - ab[1:]) * betas[1:]; return out",
)


def _beta_tilde_ref(betas):
    return Diffusion(betas).beta_tildes


def _beta_tilde_slip(ratio: Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    def wrong(betas):
        ab = torch.cumprod(1 - betas, 0)
        out = torch.zeros_like(betas)
        out[1:] = ratio(ab[1:], ab[:-1], betas[1:])
        return out

    return wrong


def check_beta_tilde(fn: Callable[..., Any]) -> CheckResult:
    r"""Check ``fn(betas) -> beta_tildes``: ``[T + 1]`` with ``beta_tildes[0] = 0`` (a
    placeholder: there is no posterior step before :math:`\mathbf x_0`) and, for ``t = 1..T``,

    .. math:: \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t
        \quad\text{(Ho et al. 2020, Eq. 7)},\qquad \tilde\beta_1 = 0.

    Any float dtype, a NumPy array or a list passes."""
    slips = [
        Slip(Kind.SWAPPED, "the ratio is upside down: it must be below 1, since the posterior "
             "is narrower than the forward step.",
             _beta_tilde_slip(lambda ab, abp, b: (1 - ab) / (1 - abp) * b)),
        Slip(Kind.WRONG_QUANTITY, "this is beta_t itself (alpha_bar_t where alpha_bar_{t-1} "
             "belongs makes the ratio cancel).", lambda betas: betas.clone()),
        Slip(Kind.MISSING_FACTOR, "the ratio of the two (1 - alpha_bar) terms alone is not the "
             "variance: it still scales the step's own variance.",
             _beta_tilde_slip(lambda ab, abp, b: (1 - abp) / (1 - ab))),
        Slip(Kind.VAR_VS_STD, "these are standard deviations; the exercise asks for variances.",
             lambda betas: _beta_tilde_ref(betas).sqrt()),
        Slip(Kind.INDEX_ZERO, "your answer has T values, not T + 1: keep the placeholder 0 at "
             "index 0.", lambda betas: _beta_tilde_ref(betas)[1:]),
        Slip(Kind.OFF_BY_ONE, "index t holds the value of step t + 1.",
             lambda betas: torch.cat([_beta_tilde_ref(betas)[1:], betas[:1]])),
    ]  # fmt: skip
    cases = [Case((betas,), label) for label, betas in reference_schedules()]
    result = run_check("beta_tilde", fn, _beta_tilde_ref, cases, slips=slips)
    if result.passed or result.kind is not None:
        return result
    try:  # right from t = 1 on, wrong only at the placeholder?
        betas = cases[0].args[0]
        got, want = torch.as_tensor(fn(betas.clone())), _beta_tilde_ref(betas)
        if got.shape == want.shape and torch.allclose(got[1:].double(), want[1:]):
            text = result.message.split("\nStuck?")[0]
            return failed("beta_tilde", text, Kind.INDEX_ZERO,
                          "entries 1..T are right, but index 0 must hold 0 (not nan or a value).")  # fmt: skip
    except Exception:
        pass
    return result


# ============================================================ numbers: derive, then predict
register(
    "beta_tilde_value",
    "Two pieces of evidence about x_{t-1} meet: the forward step says x_{t-1} is near x_t / "
    "sqrt(alpha_t), with variance beta_t / alpha_t, and x0 says it is near sqrt(abar_{t-1}) x0, "
    "with variance 1 - abar_{t-1}. For Gaussians, precisions (1 / variance) add. Add them, invert, "
    "and compare with beta_t.",
    "beta_tilde_t = 1 / (alpha_t / beta_t + 1 / (1 - abar_{t-1})) = (1 - abar_{t-1}) / "
    "(1 - abar_t) * beta_t.\n"
    "In code:  (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t",
)


def beta_tilde_given(beta_t: float = 0.3, alpha_bar_prev: float = 0.72) -> dict[str, float]:
    r"""The numbers :func:`check_beta_tilde_value` gives: ``{"beta_t", "alpha_bar_prev",
    "alpha_bar_t"}`` with :math:`\bar\alpha_t = \bar\alpha_{t-1}(1-\beta_t)` from :class:`Diffusion`
    (a two-step chain whose first step leaves :math:`\bar\alpha_1` = ``alpha_bar_prev``)."""
    d = _two_step(beta_t, alpha_bar_prev)
    return {"beta_t": float(d.betas[2]), "alpha_bar_prev": float(d.alpha_bars[1]),
            "alpha_bar_t": float(d.alpha_bars[2])}  # fmt: skip


def _two_step(beta_t: float, alpha_bar_prev: float) -> Diffusion:
    for name, v in (("beta_t", beta_t), ("alpha_bar_prev", alpha_bar_prev)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1:
            raise ValueError(f"{name} must be a number in (0, 1), got {v!r}")
    return Diffusion(torch.tensor([0.0, 1.0 - alpha_bar_prev, beta_t], dtype=torch.float64))


def check_beta_tilde_value(
    answer: Any, *, beta_t: float = 0.3, alpha_bar_prev: float = 0.72, rtol: float = 5e-3
) -> CheckResult:
    r"""Derivation: :math:`\tilde\beta_t` for :math:`\beta_t` = ``beta_t``,
    :math:`\bar\alpha_{t-1}` = ``alpha_bar_prev`` and :math:`\bar\alpha_t = \bar\alpha_{t-1}
    (1-\beta_t)` (0.3, 0.72, 0.504 by default; see :func:`beta_tilde_given`), within a relative
    ``rtol`` (0.5 %: three significant figures pass). The exact value is ``beta_tildes[2]`` of the
    two-step :class:`Diffusion` with these numbers; a right answer is below ``beta_t``."""
    d = _two_step(beta_t, alpha_bar_prev)
    b, abp, ab = float(d.betas[2]), float(d.alpha_bars[1]), float(d.alpha_bars[2])
    exact = float(d.beta_tildes[2])
    a = 1.0 - b
    wrong = [
        Wrong(Kind.SWAPPED, "alpha_bar_{t-1} and alpha_bar_t are swapped: the ratio must be "
              "below 1, since the posterior is narrower than the forward step.", (1 - ab) / (1 - abp) * b),
        Wrong(Kind.MISSING_FACTOR, "the ratio of the two (1 - alpha_bar) terms alone is not the "
              "variance: it still scales the step's own variance.", (1 - abp) / (1 - ab)),
        Wrong(Kind.WRONG_QUANTITY, "that is beta_t itself, the forward step's variance; knowing "
              "x0 as well narrows it.", b),
        Wrong(Kind.VAR_VS_STD, "that is a standard deviation; beta_tilde_t is a variance.",
              math.sqrt(exact)),
        Wrong(Kind.WRONG_QUANTITY, "that is a precision (1 / variance): invert it.", 1 / exact),
        Wrong(Kind.WRONG_QUANTITY, "you added the two variances; for two Gaussian pieces of "
              "evidence the precisions add.", b / a + (1 - abp)),
        Wrong(Kind.WRONG_QUANTITY, "that is beta_t / alpha_t, the variance the forward step alone "
              "gives x_{t-1}; the prior from x0 narrows it further.", b / a),
    ]  # fmt: skip
    return check_number(
        "beta_tilde_value", answer, exact, Tolerance(rtol=rtol), wrong=wrong,
        bounds=VARIANCE,
    )  # fmt: skip


register(
    "posterior_std_prediction",
    "The posterior's precision is the sum of two precisions: alpha_t / beta_t from x_t and "
    "1 / (1 - abar_{t-1}) from x0. Ask how large each is at the step in the question (how much "
    "is still known about x_{t-1} from x0 there?), and whether one of them can be neglected. The "
    "question asks for a standard deviation.",
    "std = sqrt(beta_tilde_t) = sqrt((1 - abar_{t-1}) / (1 - abar_t) * beta_t).\n"
    "In code:  Diffusion(schedule.linear_betas(1000, 1e-4, 0.02)).beta_tildes[t].sqrt()",
)


def check_posterior_std_prediction(
    prediction: Any, t: int, *, schedule_name: str = "linear", T: int = 1000, rtol: float = 0.05
) -> CheckResult:
    r"""Predict, then run: the standard deviation :math:`\sqrt{\tilde\beta_t}` of
    :math:`q(\mathbf x_{t-1}\mid\mathbf x_t,\mathbf x_0)` at step ``t`` (in ``[1, T]``) of the
    schedule ``schedule_name`` (``"linear"``: ``linear_betas(T, 1e-4, 0.02)``; ``"cosine"``:
    ``cosine_betas(T)``), within a relative ``rtol`` (5 %; at ``t = 1`` the exact value is 0 and
    only 0 passes, up to 1e-9). E.g. ``t = 2`` (far below :math:`\sqrt{\beta_2}`) and
    ``t = 1000`` (where it equals :math:`\sqrt{\beta_T}` to seven digits)."""
    check_choice("schedule_name", schedule_name, ("linear", "cosine"))
    both = {
        "linear": Diffusion(schedule.linear_betas(T, 1e-4, 0.02)),
        "cosine": Diffusion(schedule.cosine_betas(T)),
    }
    d = both[schedule_name]
    t = check_t(t, 1, T)
    bt = d.beta_tildes
    exact = math.sqrt(float(bt[t]))
    forward = (
        "at t = 1 the step lands on x0 itself, which is given: nothing is left uncertain."
        if t == 1
        else "knowing x0 as well makes the posterior narrower."
    )
    other = "cosine" if schedule_name == "linear" else "linear"
    wrong = [
        Wrong(Kind.VAR_VS_STD, "that is the variance beta_tilde_t; the question asks for a "
              "standard deviation.", float(bt[t])),
        Wrong(Kind.WRONG_QUANTITY, f"that is sqrt(beta_t), the forward step's; {forward}",
              math.sqrt(float(d.betas[t]))),
        Wrong(Kind.VAR_VS_STD, f"that is beta_t, the forward step's variance; {forward}",
              float(d.betas[t])),
        Wrong(Kind.WRONG_QUANTITY, "that is sqrt(1 - alpha_bar_t), the spread of x_t given x0 "
              "(the closed form), not of x_{t-1} given x_t and x0.",
              math.sqrt(1 - float(d.alpha_bars[t]))),
        Wrong(Kind.WRONG_PARAMETERS, f"that is the {other} schedule's value.",
              math.sqrt(float(both[other].beta_tildes[t]))),
    ]  # fmt: skip
    if t >= 2:
        wrong.append(
            Wrong(Kind.OFF_BY_ONE, "that is the value at t - 1.", math.sqrt(float(bt[t - 1])))
        )
    if t < T:
        wrong.append(
            Wrong(Kind.OFF_BY_ONE, "that is the value at t + 1.", math.sqrt(float(bt[t + 1])))
        )
    return check_number(
        "posterior_std_prediction", prediction, exact, Tolerance(atol=1e-9, rtol=rtol),
        wrong=wrong, what="prediction",
        bounds=Bounds(0.0, math.inf, "A standard deviation cannot be negative."),
    )  # fmt: skip
