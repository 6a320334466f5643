"""Chapter 7 self-checks: right answers pass in the forms the text allows and agree with the
library (the samplers' classifier-guided prediction, sample.guided_eps); each typical wrong
answer fails, names its kind of mistake, and reveals no piece of the answer; a blank (``...``,
None, NotImplementedError) is "not yet"."""

import math

import pytest
import torch

from ddpm_lib import exercises, sample, toy
from ddpm_lib.exercises import Kind, solution
from ddpm_lib.exercises import guidance as E
from ddpm_lib.sample.guidance import make_guide

from .exercise_helpers import ANSWER_FRAGMENTS, assert_reveals_nothing, assert_same_slip

pytestmark = pytest.mark.one_thread

ANSWER_FRAGMENTS.update({
    "classifier_guided_eps": ("eps - sqrt(1 - abar_t) * gamma * grad",
                              "eps - (1 - alpha_bar) ** 0.5 * gamma * grad_log_p"),
    "cfg_eps": ("eps_uncond + s (eps_cond - eps_uncond)",
                "eps_uncond + s * (eps_cond - eps_uncond)"),
    "gamma_zero_prediction": ("weight in the mixture, 0.20", "gives 0.197"),
})  # fmt: skip


def test_exported():
    for name in ("check_classifier_guided_eps", "check_cfg_eps", "check_gamma_zero_prediction",
                 "gamma_zero_given"):  # fmt: skip
        assert getattr(exercises, name) is getattr(E, name)


# ----------------------------------------------------------------------- classifier_guided_eps
def cg_right(eps, grad_log_p, alpha_bar, gamma):
    return eps - (1 - alpha_bar).sqrt() * gamma * grad_log_p


def test_classifier_guided_eps_right_answers_pass_and_match_the_samplers():
    assert E.check_classifier_guided_eps(cg_right).passed
    assert E.check_classifier_guided_eps(
        lambda e, g, ab, gm: e - gm * math.sqrt(1 - float(ab)) * g
    ).passed
    assert E.check_classifier_guided_eps(lambda e, g, ab, gm: cg_right(e, g, ab, gm).numpy())
    assert "all 6 test cases" in E.check_classifier_guided_eps(cg_right).message
    # the reference is what every sampler steps with (the library's Guide)
    d, mix = E._book_diffusion(), toy.two_d_mixture()
    model, clf = mix.eps_model(d), toy.MixtureClassifier(mix, d)
    x = E._toy_points(d, 250, torch.Generator().manual_seed(3))
    y = torch.full((6,), 2)
    guide = make_guide(
        model, 6, diffusion=d, labels=y, guidance_scale=0.0, classifier=clf, classifier_scale=3.0
    )
    t = torch.full((6,), 250)
    lib = guide(x, t, float((1 - d.alpha_bars[250]).sqrt()))
    grad = sample.classifier_gradient(clf, x, 250, y)
    ref = E._cg_ref(model(x, 250), grad, d.alpha_bars[250], 3.0)
    assert torch.allclose(lib, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "wrong, kind",
    [
        (lambda e, g, ab, gm: e + (1 - ab).sqrt() * gm * g, Kind.WRONG_SIGN),
        (lambda e, g, ab, gm: e - ab.sqrt() * gm * g, Kind.SWAPPED),
        (lambda e, g, ab, gm: e - (1 - ab) * gm * g, Kind.MISSING_SQRT),
        (lambda e, g, ab, gm: e - (1 - ab).sqrt() * g, Kind.MISSING_FACTOR),
        (lambda e, g, ab, gm: e - gm * g / (1 - ab).sqrt(), Kind.WRONG_QUANTITY),
        (lambda e, g, ab, gm: -e / (1 - ab).sqrt() + gm * g, Kind.WRONG_QUANTITY),
        (lambda e, g, ab, gm: -(1 - ab).sqrt() * gm * g, Kind.MISSING_FACTOR),
        (lambda e, g, ab, gm: cg_right(e, g, ab, gm) + 1e-3 * torch.randn_like(e), Kind.OWN_NOISE),
        (lambda e, g, ab, gm: None, Kind.NO_RETURN),
    ],
)
def test_classifier_guided_eps_names_the_kind(wrong, kind):
    result = E.check_classifier_guided_eps(wrong)
    assert not result.passed and result.kind == kind, result.message
    assert_reveals_nothing(result, "classifier_guided_eps")


def test_classifier_guided_eps_not_yet_and_unknown_mistake():
    def todo(eps, grad_log_p, alpha_bar, gamma):
        raise NotImplementedError

    assert "not implemented" in E.check_classifier_guided_eps(todo).message
    other = E.check_classifier_guided_eps(lambda e, g, ab, gm: e - 2 * gm * g)
    assert not other.passed and other.kind is None
    # the guided score, not eps: a diagnosis of its own, not the other quantity of its kind
    assert_same_slip(E.check_classifier_guided_eps,
                     lambda e, g, ab, gm: -e / (1 - ab).sqrt() + gm * g,
                     lambda e, g, ab, gm: gm * g - e / (1 - ab) ** 0.5,
                     lambda e, g, ab, gm: e - gm * g / (1 - ab).sqrt())  # fmt: skip


# ------------------------------------------------------------------------------------- cfg_eps
def cfg_right(eps_cond, eps_uncond, s):
    return eps_uncond + s * (eps_cond - eps_uncond)


def test_cfg_eps_right_answers_pass_and_match_the_library():
    assert E.check_cfg_eps(cfg_right).passed
    assert E.check_cfg_eps(lambda c, u, s: s * c + (1 - s) * u).passed  # seed 003's form
    assert E.check_cfg_eps(lambda c, u, s: (1 + (s - 1)) * c - (s - 1) * u).passed  # w = s - 1
    d, mix = E._book_diffusion(), toy.two_d_mixture()
    model = mix.eps_model(d)
    x = E._toy_points(d, 600, torch.Generator().manual_seed(4))
    y, t = torch.full((6,), 1), torch.full((6,), 600)
    lib = sample.guided_eps(model, x, t, y, 3.0)
    ref = E._cfg_ref(model(x, t, y), model(x, t, mix.K), 3.0)
    assert torch.allclose(lib, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "wrong, kind",
    [
        (lambda c, u, s: c + s * (u - c), Kind.SWAPPED),
        (lambda c, u, s: c + s * (c - u), Kind.WRONG_PARAMETERS),
        (lambda c, u, s: u + (1 + s) * (c - u), Kind.WRONG_PARAMETERS),  # the same, rewritten
        (lambda c, u, s: (1 + s) * c - s * u, Kind.WRONG_PARAMETERS),  # Ho & Salimans, w = s
        (lambda c, u, s: u - s * (c - u), Kind.WRONG_SIGN),
        (lambda c, u, s: s * (c - u), Kind.MISSING_FACTOR),
        (lambda c, u, s: s * c, Kind.MISSING_FACTOR),
        (lambda c, u, s: cfg_right(c, u, s) + 1e-3 * torch.randn_like(c), Kind.OWN_NOISE),
    ],
)
def test_cfg_eps_names_the_kind(wrong, kind):
    result = E.check_cfg_eps(wrong)
    assert not result.passed and result.kind == kind, result.message
    assert_reveals_nothing(result, "cfg_eps")


def test_cfg_eps_w_form_is_named_as_such():
    """Ho & Salimans' form with w = s has a diagnosis of its own, however it is written."""
    assert_same_slip(E.check_cfg_eps, lambda c, u, s: (1 + s) * c - s * u,
                     lambda c, u, s: c + s * (c - u), lambda c, u, s: c + s * (u - c),
                     lambda c, u, s: u - s * (c - u), lambda c, u, s: s * c)  # fmt: skip
    assert "not implemented" in E.check_cfg_eps(lambda *a: (_ for _ in ()).throw(
        NotImplementedError)).message  # fmt: skip


# ------------------------------------------------------------------------ gamma_zero_prediction
def test_gamma_zero_answer_is_measured_and_the_test_has_power():
    """Run independently of the check: with gamma = 0 the share of class 3 is the class's weight
    (within the tolerance), while with gamma = 1 (plain conditioning) it is far higher; the
    solution names the number the check computes."""
    p, mix = E.gamma_zero_given(), toy.two_d_mixture()
    d = E._book_diffusion()
    fractions = {}
    for gamma in (0.0, 1.0):
        gen = torch.Generator().manual_seed(p["seed"])
        x_T = torch.randn(p["n"], 2, generator=gen, dtype=torch.float64)
        x = sample.ddim(mix.eps_model(d), d, x_T=x_T, steps=p["steps"], labels=p["label"],
                        guidance_scale=0.0, classifier=toy.MixtureClassifier(mix, d),
                        classifier_scale=gamma, clip_samples=False, threshold="none")  # fmt: skip
        fractions[gamma] = float(
            (mix.class_log_prob(x, 1.0).argmax(1) == p["label"]).double().mean()
        )
    assert fractions[0.0] == E._gamma_zero_fraction()
    assert abs(fractions[0.0] - float(mix.weights[p["label"]])) < 0.015
    assert fractions[1.0] > 0.7
    assert f"gives {E._gamma_zero_fraction():.3f}" in str(solution("gamma_zero_prediction"))


def test_gamma_zero_prediction_checks():
    exact = E._gamma_zero_fraction()
    for answer in (0.2, torch.tensor(0.2), exact, 0.18):
        assert E.check_gamma_zero_prediction(answer).passed, answer
    for answer, kind in ((1.0, Kind.WRONG_QUANTITY), (0, Kind.WRONG_SIGN),
                         (0.25, Kind.APPROXIMATION), (0.5, None)):  # fmt: skip
        result = E.check_gamma_zero_prediction(answer)
        assert not result.passed and result.kind == kind, result.message
        assert_reveals_nothing(result, "gamma_zero_prediction", exact)
    assert "first" in E.check_gamma_zero_prediction(...).message
    assert "first" in E.check_gamma_zero_prediction(None).message
    impossible = E.check_gamma_zero_prediction(1.5)
    assert not impossible.passed and "between 0 and 1" in impossible.message
