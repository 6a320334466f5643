r"""Self-checks for chapter 3, the forward-process posterior :math:`q(x_{t-1}\mid x_t, x_0)`.

Every learner function receives the schedule as ``betas`` (float64 ``[T + 1]``, ``betas[0] = 0``,
index ``t`` = :math:`\beta_t`) and a step ``t`` as a Python int in ``[1, T]``:

* :func:`check_q_posterior`: ``fn(x0, x_t, t, betas) -> (mean, variance)``, Ho et al. 2020, Eqs. 6-7;
* :func:`check_mu_tilde_from_eps`: ``fn(x_t, eps, t, betas) -> mean``, Ho et al. 2020, Eq. 10;
* :func:`check_beta_tilde`: ``fn(betas) -> beta_tildes`` ``[T + 1]`` with ``beta_tildes[0] = 0``.

A check never raises for a wrong answer. When the answer is wrong it also compares it with the
typical slips (swapped coefficients, :math:`\bar\alpha_t` for :math:`\bar\alpha_{t-1}`, a missing
square root, an index off by one, ...) and names the one it matches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .. import schedule
from ..diffusion import Diffusion
from ._check import Case, CheckResult, Slip, run_check_with_slips

__all__ = ["check_q_posterior", "check_mu_tilde_from_eps", "check_beta_tilde"]


def _schedules() -> list[tuple[str, torch.Tensor]]:
    # A coarse schedule with large betas makes every slip show up far above the tolerance.
    return [
        ("the linear schedule (T = 1000)", schedule.linear_betas(1000)),
        ("the cosine schedule (T = 1000)", schedule.cosine_betas(1000)),
        ("a coarse schedule (T = 8, beta from 0.05 to 0.4)", schedule.linear_betas(8, 0.05, 0.4)),
    ]


def _steps(T: int) -> list[int]:
    return sorted({1, 2, 3, T // 2, T})


def _pair_cases(seed: int, shape: tuple[int, ...], names: str) -> list[Case]:
    """Two standard-normal float64 tensors of ``shape`` (described as ``names``) for every schedule
    and step: the arguments ``(a, b, t, betas)``."""
    gen = torch.Generator().manual_seed(seed)
    cases = []
    for label, betas in _schedules():
        for t in _steps(betas.shape[0] - 1):
            a = torch.randn(shape, generator=gen, dtype=torch.float64)
            b = torch.randn(shape, generator=gen, dtype=torch.float64)
            cases.append(Case((a, b, t, betas), f"{label}, t = {t}, {names} {list(shape)}"))
    return cases


def _parts(betas: torch.Tensor, t: int):
    """(beta_t, alpha_t, abar_t, abar_{t-1}) as float64 0-dim tensors."""
    ab = torch.cumprod(1 - betas, 0)
    return betas[t], 1 - betas[t], ab[t], ab[t - 1]


# ------------------------------------------------------------------------------ q_posterior
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


def _shifted(reference, shift: int):
    def wrong(*args):
        *rest, t, betas = args
        return reference(*rest, t + shift, betas)

    return wrong


def check_q_posterior(fn: Callable[..., Any]) -> CheckResult:
    r"""Check ``fn(x0, x_t, t, betas) -> (mean, variance)`` against Ho et al. 2020, Eqs. 6-7:

    .. math:: \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}x_0
        + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t,\qquad
        \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t

    ``x0``, ``x_t`` float64 ``[B, ...]``; ``t`` int in ``[1, T]`` (tested at 1, 2, 3, T/2, T);
    ``variance`` may be a number-like tensor or shaped like ``mean``."""
    c0 = lambda b, a, ab, abp: abp.sqrt() * b / (1 - ab)  # noqa: E731
    ct = lambda b, a, ab, abp: a.sqrt() * (1 - abp) / (1 - ab)  # noqa: E731
    bt = lambda b, a, ab, abp: (1 - abp) / (1 - ab) * b  # noqa: E731
    slips = [
        Slip("the coefficients of x0 and x_t are swapped.", _posterior_slip(c0, ct, bt, True)),
        Slip(
            "abar_t is used where the formula has abar_{t-1} (the prior q(x_{t-1} | x0) lives one "
            "step earlier than x_t).",
            _posterior_slip(
                lambda b, a, ab, abp: ab.sqrt() * b / (1 - ab),
                lambda b, a, ab, abp: a.sqrt() * (1 - ab) / (1 - ab),
                lambda b, a, ab, abp: b,
            ),
        ),
        Slip(
            "a square root is missing in the mean: sqrt(abar_{t-1}) and sqrt(alpha_t) scale a "
            "standard deviation, not a variance.",
            _posterior_slip(
                lambda b, a, ab, abp: abp * b / (1 - ab),
                lambda b, a, ab, abp: a * (1 - abp) / (1 - ab),
                bt,
            ),
        ),
        Slip(
            "the variance is returned as a standard deviation (sqrt of beta_tilde_t).",
            _posterior_slip(c0, ct, lambda b, a, ab, abp: bt(b, a, ab, abp).sqrt()),
        ),
        Slip(
            "the formula is evaluated one step too late (t + 1): is your alpha_bar array missing "
            "alpha_bar_0 = 1, or do you index betas with t + 1?",
            _shifted(_q_posterior_ref, 1),
        ),
        Slip(
            "the formula is evaluated one step too early (t - 1): betas[t] is beta_t already.",
            _shifted(_q_posterior_ref, -1),
        ),
    ]
    cases = _pair_cases(3, (2, 1, 3, 3), "x0 and x_t")
    hint = ("complete the square in x_{t-1}: the precision is alpha_t/beta_t + "
            "1/(1 - abar_{t-1}); abar = cumprod(1 - betas) has abar[0] = 1.")  # fmt: skip
    return run_check_with_slips("q_posterior", fn, _q_posterior_ref, cases, hint, slips)


# ------------------------------------------------------------------------- mu_tilde_from_eps
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

    .. math:: \tilde\mu_t = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}
        \,\epsilon\Big)

    ``x_t``, ``eps`` float64 ``[B, ...]``, ``t`` int in ``[1, T]``."""
    one_over_sqrt_a = lambda b, a, ab, abp: 1 / a.sqrt()  # noqa: E731
    eps_c = lambda b, a, ab, abp: b / (1 - ab).sqrt()  # noqa: E731
    slips = [
        Slip(
            "the front factor is 1/sqrt(abar_t); one reverse step undoes one forward step, so "
            "it is 1/sqrt(alpha_t).",
            _mu_eps_slip(lambda b, a, ab, abp: 1 / ab.sqrt(), eps_c),
        ),
        Slip(
            "the noise coefficient is beta_t/(1 - abar_t): the square root is missing.",
            _mu_eps_slip(one_over_sqrt_a, lambda b, a, ab, abp: b / (1 - ab)),
        ),
        Slip(
            "the noise is added instead of subtracted.", _mu_eps_slip(one_over_sqrt_a, eps_c, 1.0)
        ),
        Slip(
            "this is the estimate of x0, (x_t - sqrt(1 - abar_t) eps)/sqrt(abar_t), not the "
            "posterior mean of x_{t-1}.",
            _mu_eps_slip(
                lambda b, a, ab, abp: 1 / ab.sqrt(), lambda b, a, ab, abp: (1 - ab).sqrt()
            ),
        ),
        Slip("the formula is evaluated at t + 1 (index off by one).", _shifted(_mu_eps_ref, 1)),
        Slip("the formula is evaluated at t - 1 (index off by one).", _shifted(_mu_eps_ref, -1)),
    ]
    cases = _pair_cases(5, (3, 1, 4, 4), "x_t and eps")
    hint = ("substitute x0 = (x_t - sqrt(1 - abar_t) eps)/sqrt(abar_t) into the x0-form of the "
            "mean and collect the x_t terms: their coefficient simplifies to 1/sqrt(alpha_t).")  # fmt: skip
    return run_check_with_slips("mu_tilde_from_eps", fn, _mu_eps_ref, cases, hint, slips)


# ------------------------------------------------------------------------------- beta_tilde
def _beta_tilde_ref(betas):
    return Diffusion(betas).beta_tildes


def check_beta_tilde(fn: Callable[..., Any]) -> CheckResult:
    r"""Check ``fn(betas) -> beta_tildes``: float64 ``[T + 1]`` with ``beta_tildes[0] = 0`` (a
    placeholder: there is no posterior step before :math:`x_0`) and, for ``t = 1..T``,

    .. math:: \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t
        \quad\text{(Ho et al. 2020, Eq. 7)},\qquad \tilde\beta_1 = 0."""

    def ratio_inverted(betas):
        ab = torch.cumprod(1 - betas, 0)
        out = torch.zeros_like(betas)
        out[1:] = (1 - ab[1:]) / (1 - ab[:-1]) * betas[1:]
        return out

    slips = [
        Slip(
            "the ratio is upside down: it is (1 - abar_{t-1})/(1 - abar_t), below 1.",
            ratio_inverted,
        ),
        Slip(
            "this is beta_t itself: abar_t is used where the formula has abar_{t-1}, so the "
            "ratio cancels.",
            lambda betas: betas.clone(),
        ),
    ]
    cases = [Case((betas,), label) for label, betas in _schedules()]
    hint = ("beta_tildes[0] must be 0 (a placeholder), and beta_tildes[1] = 0 too since "
            "abar_0 = 1; compute abar = cumprod(1 - betas) over the whole [T + 1] tensor.")  # fmt: skip
    result = run_check_with_slips("beta_tilde", fn, _beta_tilde_ref, cases, hint, slips)
    if result.passed or "Likely slip" in result.message:
        return result
    try:  # right from t = 1 on, wrong only at the placeholder?
        betas = cases[0].args[0]
        got, want = fn(betas.clone()), _beta_tilde_ref(betas)
        if got.shape == want.shape and torch.allclose(got[1:].to(want.dtype), want[1:]):
            return CheckResult(False, f"{result.message}\nLikely slip: entries 1..T are right, "
                               "but index 0 must hold 0 (not nan or a value).")  # fmt: skip
    except Exception:
        pass
    return result
