r"""Self-checks for chapter 6: the SDE form (VP-SDE, reverse-time SDE, probability-flow ODE).

Functions the student writes:

* :func:`check_euler_maruyama_step`: ``fn(x, drift, g, h, z) -> x_next``, one Euler–Maruyama step
  of :math:`d\mathbf x = f(\mathbf x, \tau)\,d\tau + g(\tau)\,d\mathbf w` forward in time;
* :func:`check_pf_ode_drift`: ``fn(x, beta, alpha_bar, eps) -> dx/dtau``, the drift of the
  probability-flow ODE written with the ε-prediction.

Number the student writes: :func:`check_step_count_prediction` (predict, then run: the fewest
reverse-SDE steps, out of a list, whose samples of the exact 2-D toy pass a Kolmogorov–Smirnov
test; the set-up in :func:`step_count_given`).

A check never raises for a wrong answer; it names the kind of mistake, and ``hint(name)`` /
``solution(name)`` give the next tiers."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch

from .. import sample, schedule, toy
from ..diffusion import Diffusion
from ..sde import VPSDE
from ._check import Case, CheckResult, Kind, Slip, as_number, failed, register, run_check
from ._check import hint as hint
from ._check import solution as solution
from ._question import Tolerance, Wrong, check_number

_TAUS = (0.02, 0.1, 0.35, 0.7, 0.95)


def _book_sde() -> VPSDE:
    """The book's schedule (linear, T = 1000, beta from 1e-4 to 0.02) in continuous time."""
    return VPSDE(Diffusion(schedule.linear_betas(1000, 1e-4, 0.02)))


# ----------------------------------------------------------------------- euler_maruyama_step
register(
    "euler_maruyama_step",
    "Over a short time h the drift acts like a velocity: it moves x by velocity times time. The "
    "noise is different: the Wiener increment dw over a time h is a Gaussian whose *variance* "
    "grows in proportion to h, and g multiplies that increment as it is. Build the increment "
    "from the standard normal z you are given; draw nothing.",
    "x_next = x + f(x, tau) h + g(tau) sqrt(h) z   (Euler-Maruyama; Kloeden & Platen 1992, as in "
    "VPSDE.simulate)\n"
    "In code:  return x + drift * h + g * h ** 0.5 * z",
)


def _em_ref(x, drift, g, h, z):
    return x + drift * h + g * math.sqrt(h) * z


def _em_cases() -> list[Case]:
    """The VP-SDE's drift and g at several times, on points of chapter 5's mixture (step sizes
    from 1e-3 to 0.05), and unrelated image-shaped tensors (any shape must work)."""
    sde, mix, gen, cases = _book_sde(), toy.two_d_mixture(), torch.Generator().manual_seed(16), []
    for tau, h in zip(_TAUS, (0.05, 0.01, 0.001, 0.02, 0.004), strict=True):
        x = mix.noised(sde.alpha_bar(tau)).sample(6, gen)
        z = torch.randn(6, 2, generator=gen, dtype=torch.float64)
        cases.append(Case((x, sde.drift(x, tau), float(sde.g(tau)), h, z),
                          f"tau = {tau}, h = {h}, x [6, 2] (the VP-SDE on chapter 5's mixture)"))  # fmt: skip
    x, drift, z = (torch.randn(2, 1, 3, 3, generator=gen, dtype=torch.float64) for _ in "abc")
    cases.append(Case((x, drift, 2.5, 0.03, z), "g = 2.5, h = 0.03, x [2, 1, 3, 3]"))
    return cases


def check_euler_maruyama_step(fn: Callable[..., Any]) -> CheckResult:
    r"""Check ``fn(x, drift, g, h, z) -> x_next``, one Euler–Maruyama step of
    :math:`d\mathbf x = f(\mathbf x,\tau)\,d\tau + g(\tau)\,d\mathbf w` from :math:`\tau` to
    :math:`\tau + h` (as :meth:`ddpm_lib.sde.VPSDE.simulate` takes it):

    .. math:: \mathbf x_{\tau+h} = \mathbf x_\tau + f(\mathbf x_\tau, \tau)\,h
        + g(\tau)\sqrt h\,\mathbf z,\qquad \mathbf z \sim \mathcal N(\mathbf 0, \mathbf I)

    ``x``, ``drift`` (:math:`f(\mathbf x_\tau, \tau)`, already evaluated) and ``z`` float64
    ``[B, ...]``; ``g`` and ``h`` Python floats."""
    slips = [
        Slip(Kind.MISSING_SQRT, "the noise term is scaled like the drift, in proportion to h: "
             "over a short step that kick is far too small (the Wiener increment's variance, not "
             "its size, is proportional to h).", lambda x, f, g, h, z: x + f * h + g * h * z),
        Slip(Kind.VAR_VS_STD, "g already multiplies dw (for the VP-SDE it is the square root of "
             "beta): its square root is taken once too often.",
             lambda x, f, g, h, z: x + f * h + math.sqrt(g) * math.sqrt(h) * z),
        Slip(Kind.VAR_VS_STD, "g squared is the variance rate of the noise; the kick multiplies "
             "z by a standard deviation.",
             lambda x, f, g, h, z: x + f * h + g**2 * math.sqrt(h) * z),
        Slip(Kind.WRONG_PARAMETERS, "the drift is a velocity: over a time h it moves x by the "
             "velocity times h, not times a root of h.",
             lambda x, f, g, h, z: x + f * math.sqrt(h) + g * math.sqrt(h) * z),
        Slip(Kind.SWAPPED, "the scalings of the drift and of the noise are swapped.",
             lambda x, f, g, h, z: x + f * math.sqrt(h) + g * h * z),
        Slip(Kind.MISSING_FACTOR, "the noise term is missing: this is Euler's method for the "
             "ODE dx = f dtau, which forgets the diffusion.", lambda x, f, g, h, z: x + f * h),
        Slip(Kind.WRONG_SIGN, "the drift is subtracted: this step goes forward in time, so the "
             "drift enters as it is.", lambda x, f, g, h, z: x - f * h + g * math.sqrt(h) * z),
        Slip(Kind.MISSING_FACTOR, "the step returns only the change of x, not the new state.",
             lambda x, f, g, h, z: f * h + g * math.sqrt(h) * z),
    ]  # fmt: skip
    return run_check("euler_maruyama_step", fn, _em_ref, _em_cases(), slips=slips)


# ----------------------------------------------------------------------------- pf_ode_drift
register(
    "pf_ode_drift",
    "The probability-flow ODE keeps the forward drift f = -beta x / 2 and subtracts a share of "
    "g^2 times the score, with g^2 = beta. Which share keeps the marginals of the SDE once the "
    "noise is gone (compare the reverse SDE's drift, which keeps its noise)? Then write the score "
    "with the network's eps, as in chapter 5: which standard deviation divides eps, and with "
    "which sign?",
    "dx/dtau = f - (1/2) g^2 score = -(1/2) beta (x - eps / sqrt(1 - abar))   (Song et al. 2021, "
    "Eq. 13, with score = -eps / sqrt(1 - abar))\n"
    "In code:  return -0.5 * beta * (x - eps / (1 - alpha_bar) ** 0.5)",
)


def _pf_ref(x, beta, alpha_bar, eps):
    return -0.5 * beta * (x - eps / (1.0 - alpha_bar).sqrt())


def _pf_cases() -> list[Case]:
    """The exact ε of chapter 5's mixture at points of :math:`q_\tau` for five times (the
    meaningful case), and unrelated image-shaped tensors."""
    sde, mix, gen, cases = _book_sde(), toy.two_d_mixture(), torch.Generator().manual_seed(6), []
    for tau in _TAUS:
        ab = sde.alpha_bar(tau).double()
        q = mix.noised(ab)
        x = q.sample(6, gen)
        eps = -(1.0 - ab).sqrt() * q.score(x)
        beta = sde.beta(tau).double()
        cases.append(Case((x, beta, ab, eps), f"tau = {tau}, x [6, 2] from chapter 5's mixture"))
    x, eps = (torch.randn(2, 1, 3, 3, generator=gen, dtype=torch.float64) for _ in "ab")
    beta, ab = (torch.tensor(v, dtype=torch.float64) for v in (7.5, 0.3))
    cases.append(Case((x, beta, ab, eps), "beta = 7.5, alpha_bar = 0.3, x [2, 1, 3, 3]"))
    return cases


def check_pf_ode_drift(fn: Callable[..., Any]) -> CheckResult:
    r"""Check ``fn(x, beta, alpha_bar, eps) -> dx/dtau``, the probability-flow drift (Song et al.
    2021, Eq. 13) with the score from the ε-network (:meth:`ddpm_lib.sde.VPSDE.ode_drift_from_eps`):

    .. math:: \frac{d\mathbf x}{d\tau} = f(\mathbf x, \tau) - \tfrac12 g(\tau)^2\,
        \nabla\log q_\tau(\mathbf x) = -\tfrac12\beta(\tau)\Big(\mathbf x -
        \frac{\epsilon_\theta(\mathbf x, \tau T)}{\sqrt{1-\bar\alpha(\tau)}}\Big)

    ``x`` and ``eps`` float64 ``[B, ...]``; ``beta`` (:math:`\beta(\tau)`) and ``alpha_bar``
    (:math:`\bar\alpha(\tau)`) float64 tensors holding one number (``math.sqrt``, ``** 0.5`` and
    ``.sqrt()`` all work on them)."""
    slips = [
        Slip(Kind.WRONG_QUANTITY, "that is the drift of the reverse-time SDE, which is only "
             "right together with its noise term; the deterministic flow with the same "
             "marginals takes a smaller share of the score.",
             lambda x, b, ab, e: -0.5 * b * x + b * e / (1 - ab).sqrt()),
        Slip(Kind.WRONG_SIGN, "the score term has the wrong sign: eps points away from the data "
             "and the score towards it.", lambda x, b, ab, e: -0.5 * b * (x + e / (1 - ab).sqrt())),
        Slip(Kind.SWAPPED, "eps is divided by the signal's scale; the score is eps over the "
             "*noise* standard deviation.", lambda x, b, ab, e: -0.5 * b * (x - e / ab.sqrt())),
        Slip(Kind.VAR_VS_STD, "eps is divided by the noise variance; the score divides it by "
             "the noise standard deviation.", lambda x, b, ab, e: -0.5 * b * (x - e / (1 - ab))),
        Slip(Kind.MISSING_FACTOR, "a factor is missing: compare the term in x with the forward "
             "drift f(x, tau).", lambda x, b, ab, e: -b * (x - e / (1 - ab).sqrt())),
        Slip(Kind.MISSING_FACTOR, "the score term is missing: that is the forward drift alone, "
             "which only shrinks x.", lambda x, b, ab, e: -0.5 * b * x),
        Slip(Kind.WRONG_SIGN, "the whole drift has the wrong sign: write dx/dtau as the forward "
             "SDE's time runs (the solver integrates it from tau = 1 down to 0).",
             lambda x, b, ab, e: 0.5 * b * (x - e / (1 - ab).sqrt())),
    ]  # fmt: skip
    return run_check("pf_ode_drift", fn, _pf_ref, _pf_cases(), slips=slips)


# ========================================================= number: predict, then run
register(
    "step_count_prediction",
    "With the exact score the only error left is the discretisation of the reverse SDE. Ask how "
    "far the state moves in one step where the schedule changes fastest, compared with the width "
    "of the narrowest bump (std 0.15). Would the discrete chain of T steps be needed, or does a "
    "fraction of it already reproduce the bumps to the precision 2000 samples can see?",
    "Run step_count_given()'s set-up: reverse_sde with 10 and 30 steps fails the test by many "
    "orders of magnitude (its bumps are too wide and misplaced); with 100 steps both coordinates "
    "pass (p about 0.5 here), and so do 300 and 1000. The answer is 100: a tenth of the T = 1000 "
    "network calls of the discrete chain.\n"
    "In code:  see _smallest_passing_steps() in ddpm_lib/exercises/sde.py.",
)


def step_count_given() -> dict[str, Any]:
    r"""The set-up of :func:`check_step_count_prediction`: chapter 5's mixture
    (:func:`ddpm_lib.toy.two_d_mixture`) with its exact ε-model under the book's schedule (linear,
    T = 1000); for each number of steps in ``choices``, ``n`` samples of
    :func:`ddpm_lib.sample.reverse_sde` (:math:`\mathbf x(1)` and the noise from
    ``torch.Generator().manual_seed(seed)``); a sample passes when the Kolmogorov–Smirnov test of
    each coordinate against the mixture's exact marginal gives a p-value above ``p_min``."""
    return {"choices": (10, 30, 100, 300, 1000), "n": 2000, "seed": 0, "p_min": 0.01}


@functools.lru_cache(maxsize=1)
def _smallest_passing_steps() -> int:
    p = step_count_given()
    mix = toy.two_d_mixture()
    d = Diffusion(schedule.linear_betas(1000, 1e-4, 0.02))
    model = mix.eps_model(d)
    for steps in p["choices"]:
        gen = torch.Generator().manual_seed(p["seed"])
        x1 = torch.randn(p["n"], 2, generator=gen, dtype=torch.float64)
        x = sample.reverse_sde(model, d, x_T=x1, steps=steps, generator=gen, clip_samples=False)
        if min(toy.ks_per_coordinate(x, mix)) > p["p_min"]:
            return steps
    raise RuntimeError(f"no number of steps in {p['choices']} passes the test")


def check_step_count_prediction(prediction: Any) -> CheckResult:
    r"""Predict, then run: out of ``step_count_given()["choices"]`` (10, 30, 100, 300, 1000),
    what is the fewest Euler–Maruyama steps of :func:`ddpm_lib.sample.reverse_sde` whose 2000
    samples of the exact 2-D toy pass the Kolmogorov–Smirnov test of each coordinate at
    :math:`p > 0.01` (the set-up of :func:`step_count_given`)? The answer is computed by running
    the sampler (under a second, once per session); only that number passes."""
    exact = _smallest_passing_steps()
    choices = step_count_given()["choices"]
    wrong = [
        Wrong(Kind.WRONG_QUANTITY, "that is as many steps as the discrete chain has: the SDE's "
              "steps need not match the network's T; fewer already pass here.", 1000.0),
        Wrong(Kind.APPROXIMATION, "so few steps are far too coarse where the bumps form: the "
              "samples miss them by much more than 2000 samples can hide.", 10.0),
    ]  # fmt: skip
    number = as_number(prediction)
    if number is not None and math.isfinite(number) and number not in choices:
        return failed("step_count_prediction", f"step_count_prediction: choose one of "
                      f"{list(choices)}, got {prediction!r}.")  # fmt: skip
    return check_number(
        "step_count_prediction", prediction, exact, Tolerance(atol=0.0), wrong=wrong,
        what="prediction",
    )  # fmt: skip
