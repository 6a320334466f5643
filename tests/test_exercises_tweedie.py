"""Chapter 5 self-checks: right answers pass in the forms the text allows; each typical wrong
answer fails, names its kind of mistake, and reveals no piece of the answer; a blank (``...``,
None, NotImplementedError) is "not yet"."""

import math

import numpy as np
import pytest
import torch

from ddpm_lib import sample, toy
from ddpm_lib.diffusion import randn_like
from ddpm_lib.exercises import Kind, solution
from ddpm_lib.exercises import tweedie as T

from .exercise_helpers import ANSWER_FRAGMENTS, assert_reveals_nothing, assert_same_slip

pytestmark = pytest.mark.one_thread

ANSWER_FRAGMENTS.update({
    "tweedie_denoiser": ("(x_t + (1 - abar) * score) / sqrt(abar)",
                         "(x_t + (1 - alpha_bar) * score) / alpha_bar ** 0.5"),
    "langevin_step": ("x + c * score + sqrt(2 c) * z", "(2 * step_size) ** 0.5 * z"),
    "tweedie_gaussian_value": ("score = -(x_t - sqrt(abar) m) / V",
                               "(x_t + (1 - ab) * score) / ab**0.5"),
    "noiseless_langevin_prediction": ("four distinct end points",),
})  # fmt: skip


# --------------------------------------------------------------------------- tweedie_denoiser
def tweedie_right(x_t, alpha_bar, score):
    return (x_t + (1 - alpha_bar) * score) / alpha_bar.sqrt()


@pytest.mark.parametrize(
    "fn",
    [tweedie_right,
     lambda x_t, ab, s: (x_t + (1 - float(ab)) * s) / math.sqrt(ab),
     lambda x_t, ab, s: ((x_t + (1 - ab) * s) / ab**0.5).float(),
     lambda x_t, ab, s: ((x_t + (1 - ab) * s) / ab.sqrt()).numpy()],
)  # fmt: skip
def test_tweedie_denoiser_right_answers_pass(fn):
    result = T.check_tweedie_denoiser(fn)
    assert result.passed and "all 7 test cases" in result.message, result.message


@pytest.mark.parametrize(
    "wrong, kind",
    [
        (lambda x, ab, s: x + (1 - ab) * s, Kind.MISSING_FACTOR),
        (lambda x, ab, s: (x + (1 - ab).sqrt() * s) / ab.sqrt(), Kind.VAR_VS_STD),
        (lambda x, ab, s: (x - (1 - ab) * s) / ab.sqrt(), Kind.WRONG_SIGN),
        (lambda x, ab, s: (x + (1 - ab) * s) / ab, Kind.MISSING_SQRT),
        (lambda x, ab, s: ab.sqrt() * (x + (1 - ab) * s), Kind.WRONG_QUANTITY),
        (lambda x, ab, s: tweedie_right(x, ab, s) + 1e-3 * torch.randn_like(x), Kind.OWN_NOISE),
        (lambda x, ab, s: None, Kind.NO_RETURN),
    ],
)
def test_tweedie_denoiser_names_the_kind(wrong, kind):
    result = T.check_tweedie_denoiser(wrong)
    assert not result.passed and result.kind == kind, result.message
    assert_reveals_nothing(result, "tweedie_denoiser")


def test_tweedie_denoiser_not_yet_and_unknown_mistake():
    def todo(x_t, alpha_bar, score):
        raise NotImplementedError

    assert "not implemented" in T.check_tweedie_denoiser(todo).message
    other = T.check_tweedie_denoiser(lambda x, ab, s: x)
    assert not other.passed and other.kind is None


def test_the_tweedie_reference_is_the_mixtures_posterior_mean():
    """The check's cases use the exact score, so its reference is E[x0 | x_t] itself."""
    g = toy.two_d_mixture()
    for case in T._tweedie_cases()[:5]:
        x_t, ab, score = case.args
        assert torch.allclose(tweedie_right(x_t, ab, score), g.posterior_mean_x0(x_t, ab))


# ----------------------------------------------------------------------------- langevin_step
def langevin_right(x, score, step_size, z):
    return x + step_size * score + math.sqrt(2 * step_size) * z


def test_langevin_step_right_answers_pass_and_match_the_library():
    assert T.check_langevin_step(langevin_right).passed
    assert T.check_langevin_step(lambda x, s, c, z: (x + c * s + (2 * c) ** 0.5 * z).float())
    # the reference is one step of sample.langevin, whose noise is randn_like(x, generator)
    g, x = toy.two_d_mixture(), torch.randn(5, 2, dtype=torch.float64)
    z = randn_like(x, torch.Generator().manual_seed(9))
    lib = sample.langevin(
        g.score, x, step_size=0.07, steps=1, generator=torch.Generator().manual_seed(9)
    )
    assert torch.allclose(lib, T._langevin_ref(x, g.score(x), 0.07, z))


@pytest.mark.parametrize(
    "wrong, kind",
    [
        (lambda x, s, c, z: x + c * s + math.sqrt(c) * z, Kind.MISSING_FACTOR),
        (lambda x, s, c, z: x + c * s, Kind.MISSING_FACTOR),
        (lambda x, s, c, z: x + c / 2 * s + math.sqrt(2 * c) * z, Kind.WRONG_PARAMETERS),
        (lambda x, s, c, z: x + c / 2 * s + math.sqrt(c) * z, Kind.WRONG_PARAMETERS),
        (lambda x, s, c, z: x - c * s + math.sqrt(2 * c) * z, Kind.WRONG_SIGN),
        (lambda x, s, c, z: langevin_right(x, s, c, torch.randn_like(z)), Kind.OWN_NOISE),
    ],
)
def test_langevin_step_names_the_kind(wrong, kind):
    result = T.check_langevin_step(wrong)
    assert not result.passed and result.kind == kind, result.message
    assert_reveals_nothing(result, "langevin_step")


def test_langevin_step_noise_dropped_is_told_apart_from_a_small_kick():
    """The dropped noise has a diagnosis of its own, not the small kick's (a slip of its kind)."""
    assert_same_slip(T.check_langevin_step, lambda x, s, c, z: x + c * s,
                     lambda x, s, c, z: s * c + x,
                     lambda x, s, c, z: x + c * s + math.sqrt(c) * z)  # fmt: skip


# ----------------------------------------------------------------------- tweedie_gaussian_value
def _gaussian_parts():
    p = T.tweedie_gaussian_given()
    m, s, ab, x = p["m"], p["s"], p["alpha_bar"], p["x_t"]
    score = -(x - math.sqrt(ab) * m) / (ab * s**2 + 1 - ab)
    return m, s, ab, x, score


def test_tweedie_gaussian_value_right_answers_pass():
    m, s, ab, x, score = _gaussian_parts()
    by_tweedie = (x + (1 - ab) * score) / math.sqrt(ab)
    # independently: the posterior mean of x0 given x_t for a jointly Gaussian pair
    cov, var_t = math.sqrt(ab) * s**2, ab * s**2 + 1 - ab
    by_conditioning = m + cov / var_t * (x - math.sqrt(ab) * m)
    assert math.isclose(by_tweedie, by_conditioning, rel_tol=1e-12)
    for answer in (
        by_tweedie,
        round(by_tweedie, 3),
        np.float32(by_tweedie),
        torch.tensor(by_tweedie),
    ):
        assert T.check_tweedie_gaussian_value(answer).passed


@pytest.mark.parametrize(
    "which, kind",
    [("prior", Kind.WRONG_QUANTITY), ("no_divide", Kind.MISSING_FACTOR),
     ("abar", Kind.MISSING_SQRT), ("sign", Kind.WRONG_SIGN), ("no_score", Kind.MISSING_FACTOR),
     ("std", Kind.VAR_VS_STD)],
)  # fmt: skip
def test_tweedie_gaussian_value_names_the_kind(which, kind):
    m, s, ab, x, score = _gaussian_parts()
    answer = {
        "prior": m,
        "no_divide": x + (1 - ab) * score,
        "abar": (x + (1 - ab) * score) / ab,
        "sign": (x - (1 - ab) * score) / math.sqrt(ab),
        "no_score": x / math.sqrt(ab),
        "std": (x + math.sqrt(1 - ab) * score) / math.sqrt(ab),
    }[which]
    result = T.check_tweedie_gaussian_value(answer)
    assert not result.passed and result.kind == kind, result.message
    exact = (x + (1 - ab) * score) / math.sqrt(ab)
    assert_reveals_nothing(result, "tweedie_gaussian_value", exact)


def test_tweedie_gaussian_value_blank_is_not_yet():
    for blank in (..., None):
        result = T.check_tweedie_gaussian_value(blank)
        assert not result.passed and "first" in result.message


# ----------------------------------------------------------------- noiseless Langevin prediction
def test_noiseless_langevin_the_answer_is_the_number_of_modes():
    """Run independently of the check: the end points sit at the modes (score ~ 0), and the
    solution text names the count the check computes."""
    p, g = T.noiseless_langevin_given(), toy.two_d_mixture()
    gen = torch.Generator().manual_seed(p["seed"])
    x = 3.0 * torch.rand(p["n_chains"], 2, generator=gen, dtype=torch.float64) - 1.5
    ends = sample.langevin(g.score, x, step_size=p["step_size"], steps=p["steps"], add_noise=False)
    assert float(g.score(ends).norm(dim=1).max()) < 1e-3  # every chain came to rest
    modes = torch.unique((ends * 100).round(), dim=0)
    assert len(modes) == T._noiseless_ends() == g.K == 4
    assert "four" in str(solution("noiseless_langevin_prediction"))


def test_noiseless_langevin_prediction_checks():
    assert T.check_noiseless_langevin_prediction(4).passed
    assert T.check_noiseless_langevin_prediction(torch.tensor(4)).passed
    for answer, kind in ((1, Kind.WRONG_QUANTITY), (500, Kind.WRONG_QUANTITY), (3, None)):
        result = T.check_noiseless_langevin_prediction(answer)
        assert not result.passed and result.kind == kind, result.message
        assert_reveals_nothing(result, "noiseless_langevin_prediction", 4.0)
    assert "first" in T.check_noiseless_langevin_prediction(...).message


def test_count_clusters():
    pts = torch.tensor([[0.0, 0.0], [0.01, 0.0], [1.0, 1.0], [1.0, 1.02], [5.0, 5.0]])
    assert T.count_clusters(pts, 0.05, 0.0) == 3
    assert T.count_clusters(pts, 0.05, 0.3) == 2  # the lone point is below the share
