"""Chapter 6 self-checks: right answers pass in the forms the text allows and agree with the
library (VPSDE.simulate, VPSDE.ode_drift_from_eps, sample.reverse_sde); each typical wrong answer
fails, names its kind of mistake, and reveals no piece of the answer; a blank (``...``, None,
NotImplementedError) is "not yet"."""

import math

import pytest
import torch

from ddpm_lib import Diffusion, exercises, sample, schedule, toy
from ddpm_lib.exercises import Kind, solution
from ddpm_lib.exercises import sde as E

from .exercise_helpers import ANSWER_FRAGMENTS, assert_reveals_nothing, assert_same_slip

pytestmark = pytest.mark.one_thread

ANSWER_FRAGMENTS.update({
    "euler_maruyama_step": ("x + f(x, tau) h + g(tau) sqrt(h) z", "g * h ** 0.5 * z"),
    "pf_ode_drift": ("-(1/2) beta (x - eps / sqrt(1 - abar))",
                     "-0.5 * beta * (x - eps / (1 - alpha_bar) ** 0.5)"),
    "step_count_prediction": ("The answer is 100",),
})  # fmt: skip


def test_exported():
    for name in ("check_euler_maruyama_step", "check_pf_ode_drift",
                 "check_step_count_prediction", "step_count_given"):  # fmt: skip
        assert getattr(exercises, name) is getattr(E, name)


# ------------------------------------------------------------------------ euler_maruyama_step
def em_right(x, drift, g, h, z):
    return x + drift * h + g * math.sqrt(h) * z


def test_euler_maruyama_right_answers_pass_and_match_the_library():
    assert E.check_euler_maruyama_step(em_right).passed
    assert E.check_euler_maruyama_step(lambda x, f, g, h, z: x + h * f + g * h**0.5 * z).passed
    assert E.check_euler_maruyama_step(lambda x, f, g, h, z: (x + f * h + g * h**0.5 * z).numpy())
    result = E.check_euler_maruyama_step(em_right)
    assert "all 6 test cases" in result.message
    # the reference is one step of VPSDE.simulate (from tau = 0, whose noise is torch.randn)
    sde, x = E._book_sde(), toy.two_d_mixture().sample(5, torch.Generator().manual_seed(1))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=x.dtype)
    lib = sde.simulate(x, 0.01, steps=1, generator=torch.Generator().manual_seed(2))
    ref = E._em_ref(x, sde.drift(x, 0.0), float(sde.g(0.0)), 0.01, z)
    assert torch.allclose(lib, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "wrong, kind",
    [
        (lambda x, f, g, h, z: x + f * h + g * h * z, Kind.MISSING_SQRT),
        (lambda x, f, g, h, z: x + f * h + math.sqrt(g * h) * z, Kind.VAR_VS_STD),
        (lambda x, f, g, h, z: x + f * h + g * g * h**0.5 * z, Kind.VAR_VS_STD),
        (lambda x, f, g, h, z: x + f * h**0.5 + g * h**0.5 * z, Kind.WRONG_PARAMETERS),
        (lambda x, f, g, h, z: x + f * h**0.5 + g * h * z, Kind.SWAPPED),
        (lambda x, f, g, h, z: x + f * h, Kind.MISSING_FACTOR),
        (lambda x, f, g, h, z: x - f * h + g * h**0.5 * z, Kind.WRONG_SIGN),
        (lambda x, f, g, h, z: f * h + g * h**0.5 * z, Kind.MISSING_FACTOR),
        (lambda x, f, g, h, z: em_right(x, f, g, h, torch.randn_like(z)), Kind.OWN_NOISE),
        (lambda x, f, g, h, z: None, Kind.NO_RETURN),
    ],
)
def test_euler_maruyama_names_the_kind(wrong, kind):
    result = E.check_euler_maruyama_step(wrong)
    assert not result.passed and result.kind == kind, result.message
    assert_reveals_nothing(result, "euler_maruyama_step")


def test_euler_maruyama_not_yet_and_unknown_mistake():
    def todo(x, drift, g, h, z):
        raise NotImplementedError

    assert "not implemented" in E.check_euler_maruyama_step(todo).message
    other = E.check_euler_maruyama_step(lambda x, f, g, h, z: x + 2 * f * h)
    assert not other.passed and other.kind is None


def test_euler_maruyama_noise_dropped_is_told_apart_from_a_small_kick():
    """The dropped noise has a diagnosis of its own: not the small kick's, nor that of the other
    missing term of its kind (the step that returns only the change of x)."""
    assert_same_slip(E.check_euler_maruyama_step,
                     lambda x, f, g, h, z: x + f * h, lambda x, f, g, h, z: h * f + x,
                     lambda x, f, g, h, z: x + f * h + g * h * z,
                     lambda x, f, g, h, z: f * h + g * h**0.5 * z)  # fmt: skip


# ----------------------------------------------------------------------------- pf_ode_drift
def pf_right(x, beta, alpha_bar, eps):
    return -0.5 * beta * (x - eps / (1 - alpha_bar).sqrt())


def test_pf_ode_drift_right_answers_pass_and_match_the_library():
    assert E.check_pf_ode_drift(pf_right).passed
    assert E.check_pf_ode_drift(
        lambda x, b, ab, e: -b / 2 * x + b / 2 * e / math.sqrt(1 - float(ab))
    ).passed
    assert E.check_pf_ode_drift(lambda x, b, ab, e: (-0.5 * b * (x - e / (1 - ab) ** 0.5)).float())
    sde = E._book_sde()
    for case in E._pf_cases()[:5]:
        x, beta, ab, eps = case.args
        tau = float(case.description.split("tau = ")[1].split(",")[0])
        lib = sde.ode_drift_from_eps(x, tau, eps)
        assert float(sde.beta(tau)) == float(beta) and float(sde.alpha_bar(tau)) == float(ab)
        assert torch.allclose(pf_right(x, beta, ab, eps), lib, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "wrong, kind",
    [
        (lambda x, b, ab, e: -0.5 * b * x + b * e / (1 - ab).sqrt(), Kind.WRONG_QUANTITY),
        (lambda x, b, ab, e: -0.5 * b * (x + e / (1 - ab).sqrt()), Kind.WRONG_SIGN),
        (lambda x, b, ab, e: -0.5 * b * (x - e / ab.sqrt()), Kind.SWAPPED),
        (lambda x, b, ab, e: -0.5 * b * (x - e / (1 - ab)), Kind.VAR_VS_STD),
        (lambda x, b, ab, e: -b * (x - e / (1 - ab).sqrt()), Kind.MISSING_FACTOR),
        (lambda x, b, ab, e: -0.5 * b * x, Kind.MISSING_FACTOR),
        (lambda x, b, ab, e: -pf_right(x, b, ab, e), Kind.WRONG_SIGN),
        (lambda x, b, ab, e: pf_right(x, b, ab, e) + 1e-3 * torch.randn_like(x), Kind.OWN_NOISE),
    ],
)
def test_pf_ode_drift_names_the_kind(wrong, kind):
    result = E.check_pf_ode_drift(wrong)
    assert not result.passed and result.kind == kind, result.message
    assert_reveals_nothing(result, "pf_ode_drift")


def test_pf_ode_drift_reverse_sde_drift_is_named_as_such():
    """The reverse SDE's drift has a diagnosis of its own, however it is written."""
    assert_same_slip(E.check_pf_ode_drift,
                     lambda x, b, ab, e: -0.5 * b * x + b * e / (1 - ab).sqrt(),
                     lambda x, b, ab, e: b * (e / (1 - ab) ** 0.5 - x / 2),
                     lambda x, b, ab, e: -0.5 * b * x, lambda x, b, ab, e: -b * (x - e / (1 - ab).sqrt()))  # fmt: skip
    assert "not implemented" in E.check_pf_ode_drift(lambda *a: (_ for _ in ()).throw(
        NotImplementedError)).message  # fmt: skip


# --------------------------------------------------------------------- step_count_prediction
def test_step_count_answer_is_measured_and_the_test_has_power():
    """Run independently of the check: 30 steps fail by far, 100 pass, and the solution names
    the number the check computes."""
    p, mix = E.step_count_given(), toy.two_d_mixture()
    d = Diffusion(schedule.linear_betas(1000, 1e-4, 0.02))
    model, pvals = mix.eps_model(d), {}
    for steps in (30, 100):
        gen = torch.Generator().manual_seed(p["seed"])
        x1 = torch.randn(p["n"], 2, generator=gen, dtype=torch.float64)
        x = sample.reverse_sde(model, d, x_T=x1, steps=steps, generator=gen, clip_samples=False)
        pvals[steps] = min(toy.ks_per_coordinate(x, mix))
    assert pvals[30] < 1e-3 < p["p_min"] < pvals[100]
    assert E._smallest_passing_steps() == 100
    assert "The answer is 100" in str(solution("step_count_prediction"))


def test_step_count_prediction_checks():
    assert E.check_step_count_prediction(100).passed
    assert E.check_step_count_prediction(torch.tensor(100)).passed
    for answer, kind in ((1000, Kind.WRONG_QUANTITY), (10, Kind.APPROXIMATION), (30, None),
                         (300, None)):  # fmt: skip
        result = E.check_step_count_prediction(answer)
        assert not result.passed and result.kind == kind, result.message
        assert_reveals_nothing(result, "step_count_prediction", 100.0)
    assert "first" in E.check_step_count_prediction(...).message
    assert "first" in E.check_step_count_prediction(None).message
    off_list = E.check_step_count_prediction(50)
    assert not off_list.passed and "choose one of" in off_list.message
