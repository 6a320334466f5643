r"""Self-checks for chapter 5: Tweedie's formula, the score and Langevin dynamics.

Functions the student writes:

* :func:`check_tweedie_denoiser`: ``fn(x_t, alpha_bar, score) -> x0_hat``, Tweedie's denoiser
  :math:`\mathbb E[\mathbf x_0\mid\mathbf x_t] = (\mathbf x_t + (1-\bar\alpha)\,\nabla\log
  q_t(\mathbf x_t))/\sqrt{\bar\alpha}`;
* :func:`check_langevin_step`: ``fn(x, score, step_size, z) -> x_next``, one step of Langevin
  dynamics :math:`\mathbf x + c\,\nabla\log p(\mathbf x) + \sqrt{2c}\,\mathbf z`.

Numbers the student writes: :func:`check_tweedie_gaussian_value` (derivation: Tweedie's formula by
hand for Gaussian data, the numbers from :func:`tweedie_gaussian_given`) and
:func:`check_noiseless_langevin_prediction` (predict, then run: how many distinct end points
Langevin chains without the noise term reach; the set-up in :func:`noiseless_langevin_given`).

A check never raises for a wrong answer; it names the kind of mistake, and ``hint(name)`` /
``solution(name)`` give the next tiers."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch

from .. import sample, toy
from ._check import Case, CheckResult, Kind, Slip, register, run_check
from ._check import hint as hint
from ._check import solution as solution
from ._question import Tolerance, Wrong, check_number

_ALPHA_BARS = (0.999, 0.9, 0.5, 0.1, 0.01)


# ------------------------------------------------------------------------- tweedie_denoiser
register(
    "tweedie_denoiser",
    "Start from the noise model x_t = sqrt(abar) x0 + sqrt(1 - abar) eps. Tweedie's formula says "
    "that the posterior mean of the *clean signal inside x_t* (that is, of sqrt(abar) x0) is x_t "
    "moved along the score by the noise variance. Which number is the noise variance here, and "
    "what is left to do to turn the mean of sqrt(abar) x0 into the mean of x0?",
    "x0_hat = (x_t + (1 - abar) * score) / sqrt(abar)   (Efron 2011, Eq. 2.8, with Ho et al. "
    "2020, Eq. 4)\n"
    "In code:  return (x_t + (1 - alpha_bar) * score) / alpha_bar ** 0.5",
)


def _tweedie_cases() -> list[Case]:
    """The exact score of chapter 5's mixture at points of :math:`q_t` (the meaningful case), and
    unrelated random tensors of image shape (any shape must work)."""
    g, gen, cases = toy.two_d_mixture(), torch.Generator().manual_seed(15), []
    for ab in _ALPHA_BARS:
        q_t = g.noised(ab)
        x_t = q_t.sample(6, gen)
        alpha_bar = torch.tensor(ab, dtype=torch.float64)
        cases.append(Case((x_t, alpha_bar, q_t.score(x_t)),
                          f"alpha_bar = {ab}, x_t [6, 2] from chapter 5's mixture"))  # fmt: skip
    for ab in (0.7, 0.02):
        x_t, score = (torch.randn(2, 1, 3, 3, generator=gen, dtype=torch.float64) for _ in "ab")
        alpha_bar = torch.tensor(ab, dtype=torch.float64)
        cases.append(Case((x_t, alpha_bar, score), f"alpha_bar = {ab}, x_t [2, 1, 3, 3]"))
    return cases


def check_tweedie_denoiser(fn: Callable[..., Any]) -> CheckResult:
    r"""Check ``fn(x_t, alpha_bar, score) -> x0_hat`` against Tweedie's formula
    (:func:`ddpm_lib.toy.tweedie_x0`):

    .. math:: \hat{\mathbf x}_0 = \mathbb E[\mathbf x_0\mid\mathbf x_t]
        = \frac{\mathbf x_t + (1-\bar\alpha)\,\nabla\log q_t(\mathbf x_t)}{\sqrt{\bar\alpha}}

    ``x_t`` and ``score`` float64 ``[B, ...]``; ``alpha_bar`` a float64 tensor holding one number
    (``math.sqrt``, ``** 0.5`` and ``.sqrt()`` all work on it). Tested with the exact score of
    :func:`ddpm_lib.toy.two_d_mixture` at five noise levels and on random image-shaped tensors."""
    slips = [
        Slip(Kind.MISSING_FACTOR, "what you return is the posterior mean of sqrt(alpha_bar) x0, "
             "the clean signal as it sits inside x_t; one more step turns it into x0.",
             (lambda x, ab, s: x + (1 - ab) * s)),
        Slip(Kind.VAR_VS_STD, "the score is scaled by the noise's standard deviation; Tweedie's "
             "formula scales it by the noise variance.",
             (lambda x, ab, s: (x + (1 - ab).sqrt() * s) / ab.sqrt())),
        Slip(Kind.WRONG_SIGN, "the step along the score goes the wrong way: the score points "
             "towards likelier points, and the denoiser moves towards them.",
             (lambda x, ab, s: (x - (1 - ab) * s) / ab.sqrt())),
        Slip(Kind.MISSING_SQRT, "the last step divides by alpha_bar where its square root "
             "belongs.",
             (lambda x, ab, s: (x + (1 - ab) * s) / ab)),
        Slip(Kind.WRONG_QUANTITY, "the last step multiplies where it should undo the scaling of "
             "x0 inside x_t.", (lambda x, ab, s: ab.sqrt() * (x + (1 - ab) * s))),
    ]  # fmt: skip
    return run_check("tweedie_denoiser", fn, toy.tweedie_x0, _tweedie_cases(), slips=slips)


# ---------------------------------------------------------------------------- langevin_step
register(
    "langevin_step",
    "A Langevin step has two parts: a deterministic move uphill on log p, proportional to the "
    "step size c, and a fresh Gaussian kick scaled by a function of c. To find that scale, take "
    "p = N(0, 1) (its score is -x) and x ~ N(0, 1): the variance of x after one step must still "
    "be 1, up to terms of order c^2. Use the z you are given; draw nothing.",
    "x_next = x + c * score + sqrt(2 c) * z   (Song & Ermon 2019, Eq. 4; as in "
    "ddpm_lib.sample.langevin)\n"
    "In code:  return x + step_size * score + (2 * step_size) ** 0.5 * z",
)


def _langevin_ref(x, score, step_size, z):
    return x + step_size * score + math.sqrt(2.0 * step_size) * z


def _langevin_cases() -> list[Case]:
    g, gen, cases = toy.two_d_mixture(), torch.Generator().manual_seed(5), []
    for c in (0.3, 0.05, 0.001):
        x = 1.5 * torch.randn(8, 2, generator=gen, dtype=torch.float64)
        z = torch.randn(8, 2, generator=gen, dtype=torch.float64)
        cases.append(Case((x, g.score(x), c, z), f"step_size = {c}, chapter 5's mixture, x [8, 2]"))
    x, score, z = (torch.randn(2, 1, 4, 4, generator=gen, dtype=torch.float64) for _ in "abc")
    cases.append(Case((x, score, 0.02, z), "step_size = 0.02, x [2, 1, 4, 4]"))
    return cases


def check_langevin_step(fn: Callable[..., Any]) -> CheckResult:
    r"""Check ``fn(x, score, step_size, z) -> x_next``, one step of (unadjusted) Langevin
    dynamics as :func:`ddpm_lib.sample.langevin` takes it (Song & Ermon 2019, Eq. 4):

    .. math:: \mathbf x_{i+1} = \mathbf x_i + c\,\nabla\log p(\mathbf x_i) + \sqrt{2c}\,\mathbf z_i

    ``x``, ``score`` (:math:`\nabla\log p(\mathbf x)`) and ``z`` float64 ``[B, ...]``;
    ``step_size`` :math:`c` a Python float."""
    slips = [
        Slip(Kind.MISSING_FACTOR, "the kick is too small by a constant factor: with it the "
             "chain samples a sharper density than p.",
             lambda x, s, c, z: x + c * s + math.sqrt(c) * z),
        Slip(Kind.MISSING_FACTOR, "the noise term is missing: without it the update is gradient "
             "ascent on log p, which climbs to a peak and stays there.",
             lambda x, s, c, z: x + c * s),
        Slip(Kind.WRONG_PARAMETERS, "the drift is half of what goes with this kick: two "
             "conventions are mixed (one halves the drift and shrinks the kick with it).",
             lambda x, s, c, z: x + 0.5 * c * s + math.sqrt(2 * c) * z),
        Slip(Kind.WRONG_PARAMETERS, "this is a correct Langevin step, but of step size c / 2 in "
             "the book's convention: scale both terms for step size c.",
             lambda x, s, c, z: x + 0.5 * c * s + math.sqrt(c) * z),
        Slip(Kind.WRONG_SIGN, "the move goes against the score, i.e. downhill on log p, away "
             "from the likely points.", lambda x, s, c, z: x - c * s + math.sqrt(2 * c) * z),
    ]  # fmt: skip
    return run_check("langevin_step", fn, _langevin_ref, _langevin_cases(), slips=slips)


# ============================================================ numbers: derive, then predict
register(
    "tweedie_gaussian_value",
    "Here x0 ~ N(m, s^2), so x_t = sqrt(abar) x0 + sqrt(1 - abar) eps is Gaussian too: find its "
    "mean and variance, hence its score at the given x_t (the score of N(mu, V) at x is "
    "-(x - mu) / V). Then apply Tweedie's formula, and do not forget that it gives the mean of "
    "the scaled signal first.",
    "mean of x_t: sqrt(abar) m;  V = abar s^2 + 1 - abar;  score = -(x_t - sqrt(abar) m) / V;\n"
    "E[x0 | x_t] = (x_t + (1 - abar) * score) / sqrt(abar)\n"
    "In code:  v = ab * s**2 + 1 - ab; score = -(x_t - ab**0.5 * m) / v\n"
    "          return (x_t + (1 - ab) * score) / ab**0.5",
)


def tweedie_gaussian_given() -> dict[str, float]:
    r"""The numbers of :func:`check_tweedie_gaussian_value`: data :math:`x_0 \sim \mathcal N(m,
    s^2)` with ``m`` = 0.5 and ``s`` = 0.4, noise level ``alpha_bar`` = 0.64 and the observed
    ``x_t`` = 1.2 (1-D)."""
    return {"m": 0.5, "s": 0.4, "alpha_bar": 0.64, "x_t": 1.2}


def check_tweedie_gaussian_value(answer: Any, *, rtol: float = 5e-3) -> CheckResult:
    r"""Derivation: :math:`\mathbb E[x_0\mid x_t]` for the numbers of
    :func:`tweedie_gaussian_given`, within a relative ``rtol`` (0.5 %: three significant figures
    pass). The exact value is the library's posterior mean of the one-component
    :class:`~ddpm_lib.toy.GaussianMixture` (computed by conditioning a jointly Gaussian pair,
    not by Tweedie's formula)."""
    p = tweedie_gaussian_given()
    m, s, ab, x = p["m"], p["s"], p["alpha_bar"], p["x_t"]
    g = toy.GaussianMixture([1.0], [[m]], [s])
    exact = float(g.posterior_mean_x0(torch.tensor([[x]], dtype=torch.float64), ab))
    v = ab * s**2 + 1 - ab
    score = -(x - math.sqrt(ab) * m) / v
    wrong = [
        Wrong(Kind.WRONG_QUANTITY, "that is the prior mean of x0 alone: the observation x_t "
              "must pull the estimate towards it (or the variance of x_t is taken as the noise "
              "variance alone, which cancels x_t).", m),
        Wrong(Kind.MISSING_FACTOR, "that is the posterior mean of sqrt(alpha_bar) x0, the "
              "scaled signal; one more step gives x0.", x + (1 - ab) * score),
        Wrong(Kind.MISSING_SQRT, "the last step divides by alpha_bar where its square root "
              "belongs.", (x + (1 - ab) * score) / ab),
        Wrong(Kind.WRONG_SIGN, "the step along the score goes the wrong way.",
              (x - (1 - ab) * score) / math.sqrt(ab)),
        Wrong(Kind.MISSING_FACTOR, "that is x_t rescaled: the score term is missing.",
              x / math.sqrt(ab)),
        Wrong(Kind.VAR_VS_STD, "the score is scaled by the noise's standard deviation instead "
              "of its variance.", (x + math.sqrt(1 - ab) * score) / math.sqrt(ab)),
        Wrong(Kind.WRONG_QUANTITY, "the variance of x_t misses the data's own spread scaled by "
              "alpha_bar (or uses s^2 unscaled).",
              (x - (1 - ab) * (x - math.sqrt(ab) * m) / (s**2 + 1 - ab)) / math.sqrt(ab)),
    ]  # fmt: skip
    return check_number("tweedie_gaussian_value", answer, exact, Tolerance(rtol=rtol), wrong=wrong)


# ------------------------------------------------------------------ noiseless Langevin
register(
    "noiseless_langevin_prediction",
    "Without the kick, each update moves x uphill on log p by a step proportional to the slope. "
    "Where does such a motion stop, and does it matter where a chain started? Look at the "
    "contour plot of the mixture and count the places where a ball rolling uphill comes to rest.",
    "Gradient ascent stops where the score vanishes and the density has a local maximum: every "
    "chain ends at the mode of the basin it started in. two_d_mixture() has four modes (one near "
    "each component's mean), so four distinct end points remain; the share of chains at each is "
    "the share of starting points in its basin, not the component's weight.\n"
    "In code:  noiseless_langevin_given() gives the set-up; run sample.langevin(g.score, x, step_size=c, "
    "steps=n, add_noise=False) and group the end points.",
)


def noiseless_langevin_given() -> dict[str, Any]:
    """The set-up of :func:`check_noiseless_langevin_prediction`: ``n_chains`` starting points
    drawn uniformly on ``[-1.5, 1.5]^2`` from ``torch.Generator().manual_seed(seed)``, then
    ``steps`` Langevin steps of ``step_size`` on :func:`ddpm_lib.toy.two_d_mixture` with the exact
    score and ``add_noise=False``; end points closer than ``radius`` count as one, and a group
    needs at least ``min_share`` of the chains."""
    return {"n_chains": 500, "step_size": 0.01, "steps": 3000, "seed": 0, "radius": 0.05,
            "min_share": 0.01}  # fmt: skip


def count_clusters(points: torch.Tensor, radius: float, min_share: float) -> int:
    """Greedy grouping of ``points`` ``[n, D]``: each point joins the first group whose first
    point is within ``radius``; the groups holding at least ``min_share`` of the points count."""
    centres: list[torch.Tensor] = []
    sizes: list[int] = []
    for p in points:
        for k, c in enumerate(centres):
            if float((p - c).norm()) < radius:
                sizes[k] += 1
                break
        else:
            centres.append(p)
            sizes.append(1)
    return sum(size >= min_share * len(points) for size in sizes)


@functools.lru_cache(maxsize=1)
def _noiseless_ends() -> int:
    p = noiseless_langevin_given()
    g = toy.two_d_mixture()
    gen = torch.Generator().manual_seed(p["seed"])
    x = 3.0 * torch.rand(p["n_chains"], 2, generator=gen, dtype=torch.float64) - 1.5
    ends = sample.langevin(g.score, x, step_size=p["step_size"], steps=p["steps"], add_noise=False)
    return count_clusters(ends, p["radius"], p["min_share"])


def check_noiseless_langevin_prediction(prediction: Any) -> CheckResult:
    r"""Predict, then run: how many distinct end points (groups of chains) remain after Langevin
    dynamics *without* the :math:`\sqrt{2c}\,\mathbf z_i` term on chapter 5's mixture (the set-up
    of :func:`noiseless_langevin_given`)? The exact answer is computed by running
    :func:`ddpm_lib.sample.langevin` with ``add_noise=False`` (about a second, once per session)
    and counting the groups with :func:`count_clusters`; only that integer passes."""
    p = noiseless_langevin_given()
    exact = _noiseless_ends()
    wrong = [
        Wrong(Kind.WRONG_QUANTITY, "one end point would need a density with a single peak that "
              "every chain climbs to; a chain without noise cannot cross a valley.", 1.0),
        Wrong(Kind.WRONG_QUANTITY, "that is one end point per chain: the chains do not stay "
              "apart, many climb to the same place.", float(p["n_chains"])),
    ]  # fmt: skip
    return check_number(
        "noiseless_langevin_prediction", prediction, exact, Tolerance(atol=0.0), wrong=wrong,
        what="prediction",
    )  # fmt: skip
