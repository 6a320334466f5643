r"""Self-checks for chapter 1, the forward Markov chain.

Functions the student writes (``check_*(fn) -> CheckResult``):

* :func:`check_q_step` -- one step :math:`\mathbf x_t = \sqrt{\alpha_t}\,\mathbf x_{t-1} +
  \sqrt{\beta_t}\,\boldsymbol\epsilon_t` (Ho et al. 2020, Eq. 2), against
  :meth:`ddpm_lib.Diffusion.q_step`;
* :func:`check_variance_trajectory` -- :math:`\mathrm{Var}\,x_t` for ``t = 0..T`` from
  :math:`\mathrm{Var}\,x_0`, against :meth:`ddpm_lib.Diffusion.variance_trajectory`;
* :func:`check_marginal_pdf` -- the density of :math:`x_t` for a 1-D Gaussian-mixture
  :math:`q(x_0)`, against :meth:`ddpm_lib.toy.GaussianMixture.noised`.

Numbers the student writes (``check_*(number) -> CheckResult``):

* :func:`check_variance_prediction` -- predict, then run: :math:`\mathrm{Var}\,x_t` at one step;
* :func:`check_variance_step` -- derivation: one step of the variance recursion;
* :func:`check_merged_variance` -- derivation: the variance of two steps' noises merged into one.

A check never raises for a wrong answer; it names the kind of mistake, and ``hint(name)`` /
``solution(name)`` give the next tiers (:mod:`ddpm_lib.exercises`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .. import schedule
from .._validate import check_t
from ..diffusion import Diffusion
from ..toy import GaussianMixture
from ._check import Case, CheckResult, Kind, Slip, register, run_check
from ._check import hint as hint
from ._check import solution as solution
from ._question import VARIANCE, Bounds, Tolerance, Wrong, check_number


def _random_betas(T: int, gen: torch.Generator) -> torch.Tensor:
    """A deliberately uneven schedule: neighbouring betas differ a lot, so an off-by-one shows."""
    betas = torch.zeros(T + 1, dtype=torch.float64)
    betas[1:] = 0.05 + 0.55 * torch.rand(T, generator=gen, dtype=torch.float64)
    return betas


def _variance_of(betas: torch.Tensor) -> Callable[[float], torch.Tensor]:
    return Diffusion(betas).variance_trajectory


# ------------------------------------------------------------------------------------ q_step
register(
    "q_step",
    "One step shrinks x_{t-1} and adds fresh noise, so that an input of variance 1 keeps variance "
    "1: the two variances the step contributes add up to 1. Coefficients multiply values, so each "
    "is the square root of a variance. betas[t] is beta_t (index 0 is the clean data), and the "
    "noise to add is the `noise` argument -- draw nothing yourself.",
    "x_t = sqrt(alpha_t) * x_{t-1} + sqrt(beta_t) * eps_t, with alpha_t = 1 - beta_t "
    "(Ho et al. 2020, Eq. 2).\n"
    "In code:  beta_t = betas[t]\n"
    "          return (1 - beta_t).sqrt() * x_prev + beta_t.sqrt() * noise",
)


def _step_slip(coef_x: Callable, coef_eps: Callable, shift: int = 0) -> Callable[..., Any]:
    def wrong(x_prev, t, noise, betas):
        b = betas[t + shift]
        ab = torch.cumprod(1 - betas, 0)[t]
        return coef_x(b, ab) * x_prev + coef_eps(b, ab) * noise

    return wrong


_SQ = torch.sqrt


def check_q_step(fn: Callable[..., torch.Tensor]) -> CheckResult:
    r"""Check ``fn(x_prev, t, noise, betas) -> x_t``, one step of the forward chain:
    :math:`\mathbf x_t = \sqrt{1-\beta_t}\,\mathbf x_{t-1} + \sqrt{\beta_t}\,\boldsymbol\epsilon_t`
    with ``betas[t]`` = :math:`\beta_t` (``betas`` float64 ``[T + 1]``, ``betas[0] = 0``), ``t`` an
    int in ``[1, T]``, ``x_prev`` and ``noise`` (:math:`\boldsymbol\epsilon_t`) float32 of one shape
    ``[B, ...]``. Any float dtype of the answer, and Python floats or ``math.sqrt`` inside, pass."""
    gen = torch.Generator().manual_seed(101)
    schedules = {
        "an uneven random schedule (T = 6)": _random_betas(6, gen),
        "the linear schedule (T = 1000)": schedule.linear_betas(1000),
        "the cosine schedule (T = 50)": schedule.cosine_betas(50),
    }
    cases = []
    for name, betas in schedules.items():
        T = betas.shape[0] - 1
        for t, shape in ((1, (4, 1, 5, 5)), (T // 2 + 1, (3, 7)), (T, (6,))):
            x_prev = torch.randn(shape, generator=gen)
            noise = torch.randn(shape, generator=gen)
            cases.append(
                Case((x_prev, t, noise, betas), f"t = {t} of {name}, x shape {list(shape)}")
            )

    def reference(x_prev, t, noise, betas):
        return Diffusion(betas).q_step(x_prev, t, noise=noise)

    one = lambda b, ab: 1.0  # noqa: E731
    slips = [
        Slip(Kind.MISSING_SQRT, "both coefficients are variances used as scale factors: a "
             "coefficient multiplies a value, so it needs a square root.",
             _step_slip(lambda b, ab: 1 - b, lambda b, ab: b)),
        Slip(Kind.MISSING_SQRT, "the coefficient of x_{t-1} is a variance used as a scale factor: "
             "it needs a square root.", _step_slip(lambda b, ab: 1 - b, lambda b, ab: _SQ(b))),
        Slip(Kind.MISSING_SQRT, "the coefficient of the noise is a variance used as a scale "
             "factor: it needs a square root.",
             _step_slip(lambda b, ab: _SQ(1 - b), lambda b, ab: b)),
        Slip(Kind.OFF_BY_ONE, "you used the schedule one step early: betas[t] already is beta_t "
             "(index 0 is the clean data).",
             _step_slip(lambda b, ab: _SQ(1 - b), lambda b, ab: _SQ(b), shift=-1)),
        Slip(Kind.OFF_BY_ONE, "you used the schedule one step late: betas[t] already is beta_t.",
             _step_slip(lambda b, ab: _SQ(1 - b), lambda b, ab: _SQ(b), shift=1)),
        Slip(Kind.SWAPPED, "the two coefficients are swapped: beta_t is the noise's share, and "
             "it is small at the start of the chain.",
             _step_slip(lambda b, ab: _SQ(b), lambda b, ab: _SQ(1 - b))),
        Slip(Kind.WRONG_QUANTITY, "you used alpha_bar_t, which jumps from x_0 to x_t in one go; "
             "one step from x_{t-1} involves only this step's beta_t.",
             _step_slip(lambda b, ab: _SQ(ab), lambda b, ab: _SQ(1 - ab))),
        Slip(Kind.WRONG_SIGN, "the noise term has the wrong sign: the step adds its noise.",
             _step_slip(lambda b, ab: _SQ(1 - b), lambda b, ab: -_SQ(b))),
        Slip(Kind.MISSING_FACTOR, "x_{t-1} is not shrunk: without that factor the variance "
             "grows at every step instead of staying near 1.", _step_slip(one, lambda b, ab: _SQ(b))),
        Slip(Kind.MISSING_FACTOR, "the noise is added at full strength: it must be scaled down "
             "to this step's noise level.", _step_slip(lambda b, ab: _SQ(1 - b), one)),
    ]  # fmt: skip
    return run_check("q_step", fn, reference, cases, slips=slips)


# -------------------------------------------------------------------------- variance trajectory
register(
    "variance_trajectory",
    "For independent X and Z, Var(a X + b Z) = a^2 Var X + b^2 Var Z. One step of the chain is of "
    "that form, with fresh noise of variance 1 that is independent of x_{t-1}. Start from index "
    "0 = var0 (the clean data) and apply the rule once per step.",
    "Var x_t = (1 - beta_t) * Var x_{t-1} + beta_t, with Var x_0 = var0;\n"
    "equivalently 1 - Var x_t = alpha_bar_t * (1 - var0).\n"
    "In code:  v = torch.empty_like(betas); v[0] = var0\n"
    "          for t in range(1, len(betas)): v[t] = (1 - betas[t]) * v[t - 1] + betas[t]",
)


def _trajectory_slip(step: Callable, shift: int = 0) -> Callable[..., torch.Tensor]:
    """The recursion ``v[t] = step(v[t - 1], betas[t + shift])``; shift -1 reads betas[t - 1]."""

    def wrong(var0, betas):
        v = torch.empty_like(betas)
        v[0] = var0
        for t in range(1, len(betas)):
            v[t] = step(v[t - 1], betas[t + shift])
        return v

    return wrong


def check_variance_trajectory(fn: Callable[[float, torch.Tensor], torch.Tensor]) -> CheckResult:
    r"""Check ``fn(var0, betas) -> variances``: ``[T + 1]`` with ``variances[0] = var0`` and
    ``variances[t]`` :math:`= \mathrm{Var}\,x_t` for the chain of Ho et al. 2020, Eq. 2 (``var0`` a
    Python float >= 0, ``betas`` float64 ``[T + 1]``). A tensor of any float dtype, a NumPy array
    or a list of numbers passes."""
    gen = torch.Generator().manual_seed(202)
    schedules = {
        "an uneven random schedule (T = 8)": _random_betas(8, gen),
        "the linear schedule (T = 1000)": schedule.linear_betas(1000),
        "the cosine schedule (T = 100)": schedule.cosine_betas(100),
    }
    cases = [
        Case((var0, betas), f"var0 = {var0} with {name}")
        for name, betas in schedules.items()
        for var0 in (0.0, 0.3, 1.0, 4.0)
    ]

    def reference(var0, betas):
        return _variance_of(betas)(var0)

    def shifted(var0, betas):
        v = reference(var0, betas)
        return torch.cat([v[1:], v[-1:]])

    slips = [
        Slip(Kind.INDEX_ZERO, "your answer has T values, not T + 1: index 0 must hold var0 "
             "(t = 0 is the clean data).", lambda v0, b: reference(v0, b)[1:]),
        Slip(Kind.OFF_BY_ONE, "index t holds the variance of step t + 1: index 0 must hold var0 "
             "itself.", shifted),
        Slip(Kind.OFF_BY_ONE, "step t used betas[t - 1]: betas[t] already is beta_t.",
             _trajectory_slip(lambda v, b: (1 - b) * v + b, shift=-1)),
        Slip(Kind.VAR_VS_STD, "the variance was multiplied by the coefficient of x_{t-1} itself: "
             "a variance scales with the square of a coefficient.",
             _trajectory_slip(lambda v, b: (1 - b).sqrt() * v + b)),
        Slip(Kind.VAR_VS_STD, "the noise contributes its standard deviation; what adds up are "
             "variances.", _trajectory_slip(lambda v, b: (1 - b) * v + b.sqrt())),
        Slip(Kind.VAR_VS_STD, "these are standard deviations; the exercise asks for variances.",
             lambda v0, b: reference(v0, b).sqrt()),
        Slip(Kind.ADDED_STDS, "you added standard deviations (and squared the sum); for "
             "independent terms it is the variances that add.",
             _trajectory_slip(lambda v, b: ((1 - b).sqrt() * v.sqrt() + b.sqrt()) ** 2)),
        Slip(Kind.MISSING_FACTOR, "the variance already there is never shrunk, so it only grows.",
             lambda v0, b: v0 + torch.cumsum(b, 0)),
        Slip(Kind.MISSING_FACTOR, "the fresh noise's variance is missing: only the shrinking "
             "is there.", _trajectory_slip(lambda v, b: (1 - b) * v)),
        Slip(Kind.MISSING_FACTOR, "var0 is ignored: your curve is the one of data with variance 0.",
             lambda v0, b: reference(0.0, b)),
    ]  # fmt: skip
    return run_check("variance_trajectory", fn, reference, cases, slips=slips)


# ---------------------------------------------------------------------------- marginal pdf
register(
    "marginal_pdf",
    "Take one component k at a time: x_0 ~ N(means[k], stds[k]^2), and x_t is a scaled copy of x_0 "
    "plus independent Gaussian noise, so it is Gaussian too. Work out its mean and its variance "
    "(the data's own spread is scaled along with the data), write the Gaussian density with that "
    "variance, and mix the components with their weights.",
    "q(x_t) = sum_k weights[k] * N(x_t; sqrt(alpha_bar_t) * means[k], "
    "alpha_bar_t * stds[k]**2 + 1 - alpha_bar_t),\n"
    "where N(x; m, v) = exp(-(x - m)**2 / (2 v)) / sqrt(2 pi v).\n"
    "In code:  var = alpha_bar_t * stds**2 + 1 - alpha_bar_t            # [K]\n"
    "          z2 = (x[:, None] - alpha_bar_t.sqrt() * means) ** 2 / var  # [N, K]\n"
    "          return (torch.exp(-z2 / 2) / torch.sqrt(2 * math.pi * var)) @ weights",
)


def _pdf_slip(
    mean: Callable, var: Callable, norm: bool = True, equal: bool = False, log: bool = False
) -> Callable[..., torch.Tensor]:
    def wrong(x, ab, weights, means, stds):
        m, v = mean(ab, means), var(ab, stds)
        w = torch.full_like(weights, 1 / len(weights)) if equal else weights
        dens = torch.exp(-0.5 * (x[:, None] - m) ** 2 / v)
        if norm:
            dens = dens / torch.sqrt(2 * math.pi * v)
        out = dens @ w
        return out.log() if log else out

    return wrong


def check_marginal_pdf(fn: Callable[..., torch.Tensor]) -> CheckResult:
    r"""Check ``fn(x, alpha_bar_t, weights, means, stds) -> density``: the density of :math:`x_t`
    at every entry of ``x`` (float64 ``[N]``) when :math:`x_0 \sim \sum_k \pi_k\,\mathcal N(\mu_k,
    s_k^2)` and :math:`x_t \mid x_0 \sim \mathcal N(\sqrt{\bar\alpha_t}\,x_0, 1-\bar\alpha_t)`;
    ``alpha_bar_t`` is a 0-dim float64 tensor in [0, 1], ``weights``/``means``/``stds`` float64
    ``[K]``. A tensor of any float dtype or a NumPy array (e.g. from ``scipy.stats``) passes."""
    gen = torch.Generator().manual_seed(303)
    cases = []
    for K, alpha_bar in ((3, 1.0), (2, 0.6), (4, 0.25), (3, 0.02), (2, 0.0)):
        weights = torch.rand(K, generator=gen, dtype=torch.float64) + 0.2
        weights = weights / weights.sum()
        means = 2.0 * torch.rand(K, generator=gen, dtype=torch.float64) - 1.0
        stds = 0.2 + 0.5 * torch.rand(K, generator=gen, dtype=torch.float64)
        x = torch.linspace(-3.0, 3.0, 61, dtype=torch.float64)
        ab = torch.tensor(alpha_bar, dtype=torch.float64)
        cases.append(
            Case((x, ab, weights, means, stds), f"K = {K} components, alpha_bar_t = {alpha_bar}")
        )

    def reference(x, alpha_bar_t, weights, means, stds):
        q_t = GaussianMixture(weights, means[:, None], stds).noised(alpha_bar_t)
        return q_t.log_prob(x[:, None]).exp()

    mean = lambda ab, m: ab.sqrt() * m  # noqa: E731
    var = lambda ab, s: ab * s**2 + 1 - ab  # noqa: E731
    slips = [
        Slip(Kind.MISSING_FACTOR, "the data's own spread is missing from each component's "
             "variance: only the noise's variance is there.",
             _pdf_slip(mean, lambda ab, s: (1 - ab) + 0 * s)),
        Slip(Kind.MISSING_SQRT, "each component's mean is scaled by a variance-type number: the "
             "data is scaled by the square root of it.", _pdf_slip(lambda ab, m: ab * m, var)),
        Slip(Kind.VAR_VS_STD, "your density's width is off: a variance stands where the density "
             "formula has a standard deviation.", _pdf_slip(mean, lambda ab, s: var(ab, s) ** 2)),
        Slip(Kind.VAR_VS_STD, "your density's width is off: a standard deviation stands where the "
             "density formula has a variance.", _pdf_slip(mean, lambda ab, s: var(ab, s).sqrt())),
        Slip(Kind.MISSING_FACTOR, "the data's spread is not shrunk along with the data.",
             _pdf_slip(mean, lambda ab, s: s**2 + 1 - ab)),
        Slip(Kind.VAR_VS_STD, "the data's variance is scaled by the coefficient of x_0 itself; a "
             "variance scales with the square of a coefficient.",
             _pdf_slip(mean, lambda ab, s: ab.sqrt() * s**2 + 1 - ab)),
        Slip(Kind.ADDED_STDS, "you added the two standard deviations; for independent terms the "
             "variances add.", _pdf_slip(mean, lambda ab, s: (ab.sqrt() * s + (1 - ab).sqrt()) ** 2)),
        Slip(Kind.MISSING_FACTOR, "the mixture weights are ignored: every component counts the "
             "same.", _pdf_slip(mean, var, equal=True)),
        Slip(Kind.MISSING_FACTOR, "the Gaussian densities are not normalised: the constant in "
             "front of the exponential is missing.", _pdf_slip(mean, var, norm=False)),
        Slip(Kind.WRONG_QUANTITY, "this is the log-density; the exercise asks for the density.",
             _pdf_slip(mean, var, log=True)),
    ]  # fmt: skip
    return run_check("marginal_pdf", fn, reference, cases, slips=slips)


# ============================================================ numbers: predict, then derive
def _linear(T: int) -> Diffusion:
    return Diffusion(schedule.linear_betas(T, 1e-4, 0.02))


register(
    "variance_prediction",
    "Follow the variance step by step: each step shrinks the variance already there and adds the "
    "fresh noise's variance. What happens to 1 - Var x_t in one step, and so in t steps? You need "
    "alpha_bar_t at this t: read it from the library (d.alpha_bars[t]) before you run the "
    "experiment.",
    "Var x_t = 1 - alpha_bar_t * (1 - v0)   (from Var x_t = (1 - beta_t) Var x_{t-1} + beta_t).\n"
    "In code:  d = Diffusion(schedule.linear_betas(1000, 1e-4, 0.02))\n"
    "          1 - d.alpha_bars[t] * (1 - v0)      # or d.variance_trajectory(v0)[t]",
)


def check_variance_prediction(
    prediction: Any, *, v0: float = 0.25, t: int = 200, T: int = 1000, atol: float = 0.01
) -> CheckResult:
    r"""Predict, then run: :math:`\mathrm{Var}\,x_t` at step ``t`` of the linear schedule
    (:func:`ddpm_lib.schedule.linear_betas` ``(T, 1e-4, 0.02)``) for data whose entries have
    variance ``v0``, within ``±atol``. The exact value is
    :meth:`Diffusion.variance_trajectory` ``(v0)[t]``; the defaults (``v0 = 0.25``, ``t = 200``)
    keep every typical mistake further than 0.01 from it (at ``t = 500`` several land within 0.02)."""
    d = _linear(T)
    t = check_t(t, 1, T)
    v = d.variance_trajectory(v0)
    ab = float(d.alpha_bars[t])
    cos = Diffusion(schedule.cosine_betas(T)).variance_trajectory(v0)
    exact = float(v[t])
    wrong = [
        Wrong(Kind.VAR_VS_STD, "that is a standard deviation; the question asks for a variance.",
              math.sqrt(exact)),
        Wrong(Kind.MISSING_FACTOR, "that is what the noise alone contributes: the data's own "
              "variance, shrunk by the chain, is still there too.", 1 - ab),
        Wrong(Kind.MISSING_FACTOR, "that is only the data's part: the noise added so far is "
              "missing.", ab * v0),
        Wrong(Kind.VAR_VS_STD, f"you squared v0 = {v0:g}, but it already is a variance.",
              ab * v0**2 + 1 - ab),
        Wrong(Kind.VAR_VS_STD, "the data's variance was scaled by the coefficient of x_0 itself; "
              "a variance scales with its square.", math.sqrt(ab) * v0 + 1 - ab),
        Wrong(Kind.MISSING_FACTOR, "you added up the noise variances without shrinking what was "
              "already there.", v0 + float(d.betas[: t + 1].sum())),
        Wrong(Kind.WRONG_QUANTITY, "1 is where the variance ends up near t = T; at this t the "
              "chain is not there yet.", 1.0),
        Wrong(Kind.OFF_BY_ONE, "that is the value at t - 1.", float(v[t - 1])),
        Wrong(Kind.WRONG_PARAMETERS, "that is the cosine schedule's value; the question uses "
              "the linear one.", float(cos[t])),
    ]  # fmt: skip
    if t < T:
        wrong.append(Wrong(Kind.OFF_BY_ONE, "that is the value at t + 1.", float(v[t + 1])))
    return check_number(
        "variance_prediction", prediction, exact, Tolerance(atol=atol), wrong=wrong,
        what="prediction", bounds=VARIANCE,
    )  # fmt: skip


register(
    "variance_step",
    "Var(a X + b Z) = a^2 Var X + b^2 Var Z for independent X and Z. In one step, X = x_{t-1} "
    "and Z is the fresh noise (variance 1, independent of x_{t-1}); a and b are the step's two "
    "coefficients.",
    "Var x_t = (1 - beta_t) * Var x_{t-1} + beta_t.\n"
    "In code:  Diffusion(torch.tensor([0.0, beta_t])).variance_trajectory(var_prev)[1]",
)


def check_variance_step(
    answer: Any, *, var_prev: float = 0.5, beta_t: float = 0.3, atol: float = 1e-3
) -> CheckResult:
    r"""Derivation: :math:`\mathrm{Var}\,x_t` after one step with :math:`\beta_t` = ``beta_t`` from
    :math:`\mathrm{Var}\,x_{t-1}` = ``var_prev``, within ``±atol``. Exact: the one-step schedule's
    :meth:`Diffusion.variance_trajectory`."""
    betas = torch.tensor([0.0, float(beta_t)], dtype=torch.float64)
    exact = float(Diffusion(betas).variance_trajectory(float(var_prev))[1])
    a, b, v = 1.0 - beta_t, float(beta_t), float(var_prev)
    wrong = [
        Wrong(Kind.VAR_VS_STD, "Var x_{t-1} was multiplied by the coefficient itself; a variance "
              "scales with the square of a coefficient.", math.sqrt(a) * v + b),
        Wrong(Kind.VAR_VS_STD, "the noise contributes its standard deviation; what add up are "
              "variances.", a * v + math.sqrt(b)),
        Wrong(Kind.VAR_VS_STD, "that is a standard deviation; the question asks for a variance.",
              math.sqrt(exact)),
        Wrong(Kind.MISSING_FACTOR, "x_{t-1} was not shrunk before the noise was added.", v + b),
        Wrong(Kind.MISSING_FACTOR, "the fresh noise's variance is missing.", a * v),
        Wrong(Kind.ADDED_STDS, "you added standard deviations and squared the sum; for "
              "independent terms the variances add.", (math.sqrt(a * v) + math.sqrt(b)) ** 2),
        Wrong(Kind.WRONG_QUANTITY, "the variance stays 1 only when Var x_{t-1} = 1; here it is "
              f"{v:g}.", 1.0),
    ]  # fmt: skip
    return check_number(
        "variance_step", answer, exact, Tolerance(atol=atol), wrong=wrong,
        bounds=VARIANCE,
    )  # fmt: skip


register(
    "merged_variance",
    "Write x_t in terms of x_{t-2}: substitute the step from x_{t-2} to x_{t-1} into the step "
    "from x_{t-1} to x_t. Two noise terms appear, each with its own coefficient; they are "
    "independent, so the variance of their sum is the sum of their variances.",
    "sqrt(alpha_t) sqrt(beta_{t-1}) eps_{t-1} + sqrt(beta_t) eps_t = sqrt(v) epsbar_{t-1:t} with\n"
    "v = alpha_t * beta_{t-1} + beta_t = 1 - alpha_t * alpha_{t-1}.\n"
    "In code:  betas = torch.tensor([0.0, beta_prev, beta_t])\n"
    "          1 - Diffusion(betas).alpha_bars[2]",
)


def check_merged_variance(
    answer: Any, *, beta_prev: float = 0.1, beta_t: float = 0.2, atol: float = 1e-3
) -> CheckResult:
    r"""Derivation: the variance :math:`v` of the merged noise of two steps,
    :math:`\sqrt{\alpha_t}\sqrt{\beta_{t-1}}\,\boldsymbol\epsilon_{t-1} + \sqrt{\beta_t}\,
    \boldsymbol\epsilon_t = \sqrt{v}\,\bar{\boldsymbol\epsilon}_{t-1:t}`, for
    :math:`\beta_{t-1}` = ``beta_prev`` and :math:`\beta_t` = ``beta_t``, within ``±atol``. Exact:
    :math:`1-\bar\alpha_2` of the two-step schedule (:class:`Diffusion`)."""
    betas = torch.tensor([0.0, float(beta_prev), float(beta_t)], dtype=torch.float64)
    exact = float(1.0 - Diffusion(betas).alpha_bars[2])
    b1, b2 = float(beta_prev), float(beta_t)
    a2 = 1.0 - b2
    wrong = [
        Wrong(Kind.MISSING_FACTOR, "you added the two betas: the earlier noise is shrunk by the "
              "later step before the two add up.", b1 + b2),
        Wrong(Kind.ADDED_STDS, "you added the two standard deviations and squared the sum; "
              "independent noises add their variances.", (math.sqrt(a2 * b1) + math.sqrt(b2)) ** 2),
        Wrong(Kind.VAR_VS_STD, "that is a standard deviation; the question asks for a variance.",
              math.sqrt(exact)),
        Wrong(Kind.VAR_VS_STD, "the earlier noise's variance was scaled by the coefficient "
              "itself; a variance scales with its square.", math.sqrt(a2) * b1 + b2),
        Wrong(Kind.WRONG_QUANTITY, "that is the share of the signal that survives two steps; the "
              "question asks for the noise's variance.", 1.0 - exact),
        Wrong(Kind.MISSING_FACTOR, "only the earlier noise is there: the fresh noise of step t "
              "adds its variance too.", a2 * b1),
        Wrong(Kind.WRONG_QUANTITY, "variances of independent noises add; they do not multiply.",
              b1 * b2),
    ]  # fmt: skip
    return check_number(
        "merged_variance", answer, exact, Tolerance(atol=atol), wrong=wrong,
        bounds=Bounds(0.0, 1.0, "A share of the variance lies between 0 and 1."),
    )  # fmt: skip
