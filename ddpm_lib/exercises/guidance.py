r"""Self-checks for chapter 7: guidance.

Functions the student writes:

* :func:`check_classifier_guided_eps`: ``fn(eps, grad_log_p, alpha_bar, gamma) -> eps_hat``, the
  prediction a sampler steps with under classifier guidance (Dhariwal & Nichol 2021);
* :func:`check_cfg_eps`: ``fn(eps_cond, eps_uncond, s) -> eps_hat``, the classifier-free
  combination (Ho & Salimans 2022) with the library's scale :math:`s`.

Number the student writes: :func:`check_gamma_zero_prediction` (predict, then run: on the exact
2-D toy, guided towards class 3 by the exact classifier with :math:`\gamma = 0`, which fraction
of the samples does the exact classifier of clean points put in class 3? The set-up in
:func:`gamma_zero_given`).

A check never raises for a wrong answer; it names the kind of mistake, and ``hint(name)`` /
``solution(name)`` give the next tiers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from .. import sample, schedule, toy
from ..diffusion import Diffusion
from ._check import Case, CheckResult, Kind, Slip, register, run_check
from ._check import hint as hint
from ._check import solution as solution
from ._question import Bounds, Tolerance, Wrong, check_number

_TS = (5, 60, 250, 600, 950)


def _book_diffusion() -> Diffusion:
    """The book's schedule: linear, T = 1000, beta from 1e-4 to 0.02."""
    return Diffusion(schedule.linear_betas(1000, 1e-4, 0.02))


def _toy_points(d: Diffusion, t: int, gen: torch.Generator, n: int = 6) -> torch.Tensor:
    """``n`` points of the noised 2-D toy :math:`q_t` (chapter 5's mixture)."""
    return toy.two_d_mixture().noised(d.alpha_bars[t]).sample(n, gen)


# ------------------------------------------------------------------ classifier_guided_eps
register(
    "classifier_guided_eps",
    "Start from Bayes: the score of q_t(x | y) is the score of q_t(x) plus the gradient of "
    "log p(y | x_t), and gamma scales that gradient. Then go back from scores to eps: which "
    "standard deviation links the network's eps to the score of q_t, and with which sign?",
    "eps_hat = eps - sqrt(1 - abar_t) * gamma * grad log p(y | x_t)   (Dhariwal & Nichol 2021, "
    "Algorithm 2; eps = -sqrt(1 - abar_t) * score)\n"
    "In code:  return eps - (1 - alpha_bar) ** 0.5 * gamma * grad_log_p",
)


def _cg_ref(eps, grad, alpha_bar, gamma):
    return eps - (1.0 - alpha_bar).sqrt() * gamma * grad


def _cg_cases() -> list[Case]:
    """The exact ε of chapter 5's mixture and the exact classifier's gradient (class 0..3) at
    points of :math:`q_t` for five steps, several :math:`\\gamma`; and image-shaped tensors."""
    d, gen = _book_diffusion(), torch.Generator().manual_seed(17)
    mix = toy.two_d_mixture()
    model, clf = mix.eps_model(d), toy.MixtureClassifier(mix, d)
    cases = []
    for t, gamma, y in zip(_TS, (2.0, 0.5, 3.0, 7.5, 4.0), (0, 3, 1, 2, 3), strict=True):
        x = _toy_points(d, t, gen)
        grad = sample.classifier_gradient(clf, x, t, torch.full((6,), y))
        ab = d.alpha_bars[t].clone()
        cases.append(Case((model(x, t), grad, ab, gamma),
                          f"t = {t}, gamma = {gamma}, class {y}, x [6, 2] (the 2-D toy)"))  # fmt: skip
    eps, grad = (torch.randn(2, 1, 3, 3, generator=gen, dtype=torch.float64) for _ in "ab")
    cases.append(Case((eps, grad, torch.tensor(0.3, dtype=torch.float64), 2.5),
                      "alpha_bar = 0.3, gamma = 2.5, x [2, 1, 3, 3]"))  # fmt: skip
    return cases


def check_classifier_guided_eps(fn: Callable[..., Any]) -> CheckResult:
    r"""Check ``fn(eps, grad_log_p, alpha_bar, gamma) -> eps_hat``, the classifier-guided
    prediction (Dhariwal & Nichol 2021, Algorithm 2; :class:`ddpm_lib.sample.guidance.Guide`):

    .. math:: \hat\epsilon = \epsilon_\theta(\mathbf x_t, t) - \sqrt{1-\bar\alpha_t}\;\gamma\,
        \nabla_{\mathbf x_t}\log p_\phi(y\mid\mathbf x_t, t)

    ``eps`` and ``grad_log_p`` float64 ``[B, ...]``; ``alpha_bar`` (:math:`\bar\alpha_t`) a
    float64 tensor holding one number; ``gamma`` a Python float."""
    slips = [
        Slip(Kind.WRONG_SIGN, "the gradient is added: the gradient of log p(y | x_t) points "
             "towards the class, while eps points away from the data, so the two enter with "
             "opposite signs.", lambda e, g, ab, gm: e + (1 - ab).sqrt() * gm * g),
        Slip(Kind.SWAPPED, "the gradient is scaled by the signal's scale; eps and the score are "
             "linked by the noise's standard deviation.",
             lambda e, g, ab, gm: e - ab.sqrt() * gm * g),
        Slip(Kind.MISSING_SQRT, "the gradient is scaled by the noise variance; eps and the "
             "score are linked by a standard deviation.",
             lambda e, g, ab, gm: e - (1 - ab) * gm * g),
        Slip(Kind.MISSING_FACTOR, "the guidance scale gamma is missing: this is plain "
             "conditioning by Bayes' rule, whatever the scale.",
             lambda e, g, ab, gm: e - (1 - ab).sqrt() * g),
        Slip(Kind.WRONG_QUANTITY, "the gradient is divided by the noise's standard deviation: "
             "that converts an eps into a score, the opposite of what is needed here.",
             lambda e, g, ab, gm: e - gm * g / (1 - ab).sqrt()),
        Slip(Kind.WRONG_QUANTITY, "that is the guided score, not the guided eps: a sampler "
             "steps with the eps-prediction.",
             lambda e, g, ab, gm: -e / (1 - ab).sqrt() + gm * g),
        Slip(Kind.MISSING_FACTOR, "only the correction is returned: the network's eps is "
             "missing.", lambda e, g, ab, gm: -(1 - ab).sqrt() * gm * g),
    ]  # fmt: skip
    return run_check("classifier_guided_eps", fn, _cg_ref, _cg_cases(), slips=slips)


# -------------------------------------------------------------------------------- cfg_eps
register(
    "cfg_eps",
    "The library's scale s is chosen so that s = 0 gives the unconditional prediction and "
    "s = 1 the plain conditional one. Start from the unconditional prediction and move along "
    "the difference between the two; how far must s take you? (Ho & Salimans write the same "
    "thing with a weight w; check which value of w corresponds to the plain conditional model.)",
    "eps_hat = eps_uncond + s (eps_cond - eps_uncond)   (Ho & Salimans 2022, Eq. 6 with "
    "s = 1 + w; seed 003's gamma score_cond + (1 - gamma) score_uncond is the same with gamma = s)\n"
    "In code:  return eps_uncond + s * (eps_cond - eps_uncond)",
)


def _cfg_ref(eps_cond, eps_uncond, s):
    return eps_uncond + s * (eps_cond - eps_uncond)


def _cfg_cases() -> list[Case]:
    """The exact toy's conditional (class 0..3) and unconditional (null label) ε at points of
    :math:`q_t` for five steps and several scales; and image-shaped tensors."""
    d, gen = _book_diffusion(), torch.Generator().manual_seed(7)
    mix = toy.two_d_mixture()
    model = mix.eps_model(d)
    cases = []
    for t, s, y in zip(_TS, (3.0, 0.5, 2.0, 7.5, 1.5), (1, 0, 3, 2, 0), strict=True):
        x = _toy_points(d, t, gen)
        cases.append(Case((model(x, t, y), model(x, t, mix.K), s),
                          f"t = {t}, s = {s}, class {y}, x [6, 2] (the 2-D toy)"))  # fmt: skip
    cond, uncond = (torch.randn(2, 1, 3, 3, generator=gen, dtype=torch.float64) for _ in "ab")
    cases.append(Case((cond, uncond, 4.0), "s = 4.0, x [2, 1, 3, 3]"))
    return cases


def check_cfg_eps(fn: Callable[..., Any]) -> CheckResult:
    r"""Check ``fn(eps_cond, eps_uncond, s) -> eps_hat``, classifier-free guidance with the
    library's scale (``guidance_scale``; :func:`ddpm_lib.sample.guided_eps`):

    .. math:: \tilde\epsilon = \epsilon_\theta(\mathbf x_t, t, \varnothing)
        + s\,\big(\epsilon_\theta(\mathbf x_t, t, y) - \epsilon_\theta(\mathbf x_t, t,
        \varnothing)\big)

    ``eps_cond`` and ``eps_uncond`` float64 ``[B, ...]``; ``s`` a Python float."""
    slips = [
        Slip(Kind.SWAPPED, "the conditional and the unconditional predictions have swapped "
             "roles: at s = 0 your answer is the conditional model.",
             lambda c, u, s: c + s * (u - c)),
        Slip(Kind.WRONG_PARAMETERS, "that is Ho & Salimans' form with their weight w set to s: "
             "the library's scale is s = 1 + w, so your scale is off by one (at s = 1 it does "
             "not give the plain conditional model).", lambda c, u, s: c + s * (c - u)),
        Slip(Kind.WRONG_SIGN, "the difference is subtracted: guidance moves away from the "
             "unconditional prediction, towards the conditional one and beyond.",
             lambda c, u, s: u - s * (c - u)),
        Slip(Kind.MISSING_FACTOR, "only the scaled difference is returned: the prediction it "
             "starts from is missing.", lambda c, u, s: s * (c - u)),
        Slip(Kind.MISSING_FACTOR, "the unconditional prediction is missing: that only rescales "
             "the conditional one.", lambda c, u, s: s * c),
    ]  # fmt: skip
    return run_check("cfg_eps", fn, _cfg_ref, _cfg_cases(), slips=slips)


# ========================================================= number: predict, then run
register(
    "gamma_zero_prediction",
    "Look at where gamma enters the guided eps. With gamma = 0, what is left of the classifier, "
    "and of the label you asked for? Which distribution do the samples then follow, and how "
    "often does that distribution produce points of class 3 (see the table of "
    "toy.two_d_mixture)? The exact classifier of clean points misses a little where the bumps "
    "overlap, but only a little.",
    "With gamma = 0 the classifier's term vanishes and the label does nothing: the samples "
    "follow the unguided data distribution p(x), so the share of class 3 is about that class's "
    "weight in the mixture, 0.20 (running gamma_zero_given()'s set-up gives 0.197 on the "
    "2-core CPU of this project).\n"
    "In code:  see _gamma_zero_fraction() in ddpm_lib/exercises/guidance.py.",
)


def gamma_zero_given() -> dict[str, Any]:
    r"""The set-up of :func:`check_gamma_zero_prediction`: chapter 5's mixture
    (:func:`ddpm_lib.toy.two_d_mixture`, four components = four classes) with its exact
    unconditional ε-model under the book's schedule (linear, T = 1000); ``n`` samples of
    :func:`ddpm_lib.sample.ddim` (``steps`` steps, :math:`\eta = 0`, :math:`\mathbf x_T` from
    ``torch.Generator().manual_seed(seed)``) guided towards ``label`` by the exact noisy
    classifier :class:`ddpm_lib.toy.MixtureClassifier` with ``classifier_scale = gamma``; a
    sample counts for ``label`` when the exact classifier of clean points,
    :math:`\arg\max_k q(y = k\mid\mathbf x_0)` (``class_log_prob`` at :math:`\bar\alpha = 1`),
    says so."""
    return {"label": 3, "gamma": 0.0, "n": 4000, "steps": 200, "seed": 0}


@functools.lru_cache(maxsize=1)
def _gamma_zero_fraction() -> float:
    p = gamma_zero_given()
    mix, d = toy.two_d_mixture(), _book_diffusion()
    gen = torch.Generator().manual_seed(p["seed"])
    x_T = torch.randn(p["n"], 2, generator=gen, dtype=torch.float64)
    x = sample.ddim(mix.eps_model(d), d, x_T=x_T, steps=p["steps"], labels=p["label"],
                    guidance_scale=0.0, classifier=toy.MixtureClassifier(mix, d),
                    classifier_scale=p["gamma"], clip_samples=False, threshold="none")  # fmt: skip
    labels = mix.class_log_prob(x, 1.0).argmax(1)
    return float((labels == p["label"]).double().mean())


def check_gamma_zero_prediction(prediction: Any) -> CheckResult:
    r"""Predict, then run: with the set-up of :func:`gamma_zero_given` (the exact 2-D toy,
    classifier guidance towards class 3 with :math:`\gamma = 0`), what fraction of the samples
    does the exact classifier of clean points put in class 3? The reference is computed by
    running the sampler (a second, once per session); an answer within 0.03 of it passes."""
    exact = _gamma_zero_fraction()
    k = toy.two_d_mixture().K
    wrong = [
        Wrong(Kind.WRONG_QUANTITY, "that is what a label would do if it still acted: with "
              "gamma = 0 the classifier's push is gone, and the label with it.", 1.0),
        Wrong(Kind.WRONG_SIGN, "gamma = 0 does not push the samples away from the class; it "
              "only stops pushing them towards it.", 0.0),
        Wrong(Kind.APPROXIMATION, "the classes are not equally frequent in this mixture: the "
              "samples keep the data's own proportions.", 1.0 / k),
    ]  # fmt: skip
    return check_number(
        "gamma_zero_prediction", prediction, exact, Tolerance(atol=0.03), wrong=wrong,
        what="prediction", bounds=Bounds(0.0, 1.0, "A fraction lies between 0 and 1."),
    )  # fmt: skip
