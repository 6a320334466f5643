"""Chapter 4 self-checks: right answers pass in every form the text allows; each typical wrong
answer fails, names its kind of mistake, and reveals no piece of the answer."""

import math

import pytest
import torch

from ddpm_lib.exercises import Kind
from ddpm_lib.exercises.elbo import (
    check_lambda_t,
    check_most_bits_prediction,
    check_normal_kl,
    check_p_sample_step,
    most_bits_steps,
)

from .exercise_helpers import ANSWER_FRAGMENTS, assert_reveals_nothing

ANSWER_FRAGMENTS.update(
    {
        "normal_kl": ("(var1 + (mean1 - mean2)**2) / var2 - 1", "torch.log(var2 / var1)"),
        "lambda_t": ("beta_t**2 / (2 * sigma_t**2 * alpha_t * (1 - abar_t))",
                     "2 * sigma2s[t] * (1 - betas[t]) * (1 - ab[t])"),
        "p_sample_step": ("beta_t / sqrt(1 - abar_t) * eps", "sigma2s[t].sqrt() * z if t > 1"),
        "most_bits_prediction": ("t = 1: the decoder term",),
    }
)  # fmt: skip


# ------------------------------------------------------------------------------ normal_kl
def kl_right(m1, v1, m2, v2):
    return 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)


def kl_stds(m1, v1, m2, v2):  # via standard deviations, as many textbooks write it
    s1, s2 = v1.sqrt(), v2.sqrt()
    return torch.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


def kl_float32(m1, v1, m2, v2):
    return kl_right(m1.float(), v1.float(), m2.float(), v2.float())


@pytest.mark.parametrize("fn", [kl_right, kl_stds, kl_float32])
def test_normal_kl_right_answers_pass(fn):
    result = check_normal_kl(fn)
    assert result.passed, result.message


@pytest.mark.parametrize(
    "wrong, kind",
    [
        (lambda m1, v1, m2, v2: kl_right(m2, v2, m1, v1), Kind.SWAPPED),
        (lambda m1, v1, m2, v2: 2 * kl_right(m1, v1, m2, v2), Kind.MISSING_FACTOR),
        (lambda m1, v1, m2, v2: 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2),
         Kind.MISSING_FACTOR),
        (lambda m1, v1, m2, v2: 0.5 * (torch.log(v2 / v1) + v1 / v2 - 1), Kind.MISSING_FACTOR),
        (lambda m1, v1, m2, v2: torch.log(v2 / v1) + 0.5 * ((v1 + (m1 - m2) ** 2) / v2 - 1),
         Kind.VAR_VS_STD),
        (lambda m1, v1, m2, v2: 0.5 * (torch.log(v1 / v2) + (v1 + (m1 - m2) ** 2) / v2 - 1),
         Kind.WRONG_SIGN),
        (lambda m1, v1, m2, v2: 0.5 * (torch.log(v2 / v1) + v1 / v2 + (m1 - m2) ** 2 / v1 - 1),
         Kind.WRONG_QUANTITY),
    ],
)  # fmt: skip
def test_normal_kl_names_the_kind_of_mistake(wrong, kind):
    result = check_normal_kl(wrong)
    assert not result.passed and result.kind == kind, result.message
    assert_reveals_nothing(result, "normal_kl")


def test_normal_kl_kl_formula_matches_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    m1, v1, m2, v2 = 0.2, 0.7, -0.4, 1.3
    x = m1 + math.sqrt(v1) * torch.randn(400_000, generator=gen, dtype=torch.float64)
    p1, p2 = torch.distributions.Normal(m1, v1**0.5), torch.distributions.Normal(m2, v2**0.5)
    log_ratio = p1.log_prob(x) - p2.log_prob(x)
    exact = float(kl_right(*(torch.tensor(v, dtype=torch.float64) for v in (m1, v1, m2, v2))))
    se = float(log_ratio.std()) / math.sqrt(x.numel())
    assert abs(float(log_ratio.mean()) - exact) < 5 * se


# ------------------------------------------------------------------------------- lambda_t
def lambda_right(t, betas, sigma2s):
    ab = torch.cumprod(1 - betas, 0)
    return betas[t] ** 2 / (2 * sigma2s[t] * (1 - betas[t]) * (1 - ab[t]))


def lambda_float(t, betas, sigma2s):
    return float(lambda_right(t, betas, sigma2s))


@pytest.mark.parametrize("fn", [lambda_right, lambda_float])
def test_lambda_t_right_answers_pass(fn):
    result = check_lambda_t(fn)
    assert result.passed, result.message


def _lam(f):
    def fn(t, betas, sigma2s):
        ab = torch.cumprod(1 - betas, 0)
        return f(betas[t], 1 - betas[t], ab[t], ab[t - 1], sigma2s[t])

    return fn


@pytest.mark.parametrize(
    "wrong, kind",
    [
        (_lam(lambda b, a, ab, abp, s2: b**2 / (s2 * a * (1 - ab))), Kind.MISSING_FACTOR),
        (_lam(lambda b, a, ab, abp, s2: b**2 / (2 * s2 * (1 - ab))), Kind.MISSING_FACTOR),
        (_lam(lambda b, a, ab, abp, s2: b**2 / (2 * s2 * a * (1 - abp))), Kind.OFF_BY_ONE),
        (_lam(lambda b, a, ab, abp, s2: b**2 / (2 * s2.sqrt() * a * (1 - ab))), Kind.VAR_VS_STD),
        (_lam(lambda b, a, ab, abp, s2: b / (2 * s2 * a * (1 - ab))), Kind.MISSING_SQRT),
    ],
)  # fmt: skip
def test_lambda_t_names_the_kind_of_mistake(wrong, kind):
    result = check_lambda_t(wrong)
    assert not result.passed and result.kind == kind, result.message
    assert_reveals_nothing(result, "lambda_t")


# ------------------------------------------------------------------------- p_sample_step
def step_right(x_t, t, eps, z, betas, sigma2s):
    ab = torch.cumprod(1 - betas, 0)
    mean = (x_t - betas[t] / (1 - ab[t]).sqrt() * eps) / (1 - betas[t]).sqrt()
    return mean + sigma2s[t].sqrt() * z if t > 1 else mean


def step_float32(x_t, t, eps, z, betas, sigma2s):
    return step_right(x_t.float(), t, eps.float(), z.float(), betas, sigma2s)


@pytest.mark.parametrize("fn", [step_right, step_float32])
def test_p_sample_step_right_answers_pass(fn):
    result = check_p_sample_step(fn)
    assert result.passed, result.message


def _step(f, noise_at_1=False):
    def fn(x_t, t, eps, z, betas, sigma2s):
        ab = torch.cumprod(1 - betas, 0)
        zz = z if (t > 1 or noise_at_1) else torch.zeros_like(z)
        return f(x_t, eps, zz, betas[t], 1 - betas[t], ab[t], sigma2s[t].sqrt())

    return fn


@pytest.mark.parametrize(
    "wrong, kind",
    [
        (_step(lambda x, e, z, b, a, ab, s: (x - b / (1 - ab).sqrt() * e) / a.sqrt() + s * z, True),
         Kind.MISSING_FACTOR),  # seed 004: noise added at t = 1 too
        (_step(lambda x, e, z, b, a, ab, s: (x - b / (1 - ab).sqrt() * e + s * z) / a.sqrt()),
         Kind.WRONG_QUANTITY),  # seed 002: sigma z inside the bracket
        (_step(lambda x, e, z, b, a, ab, s: (x - b / (1 - ab).sqrt() * e) / a.sqrt() + s**2 * z),
         Kind.VAR_VS_STD),
        (_step(lambda x, e, z, b, a, ab, s: (x + b / (1 - ab).sqrt() * e) / a.sqrt() + s * z),
         Kind.WRONG_SIGN),
        (_step(lambda x, e, z, b, a, ab, s: (x - b / (1 - ab) * e) / a.sqrt() + s * z),
         Kind.MISSING_SQRT),
    ],
)  # fmt: skip
def test_p_sample_step_names_the_kind_of_mistake(wrong, kind):
    result = check_p_sample_step(wrong)
    assert not result.passed and result.kind == kind, result.message
    assert_reveals_nothing(result, "p_sample_step")


# ============================================================== predict, then run
def test_most_bits_blank_asks_for_a_number_without_measuring():
    result = check_most_bits_prediction(..., None, None)
    assert not result.passed and "first" in result.message


class _Memo:
    """The model, evaluated once per distinct input: every check below measures the same terms
    (8 fixed digits, a seeded generator), so the U-Net runs for the first check only."""

    def __init__(self, model):
        self.model, self.seen = model, {}

    def __call__(self, x, t):
        key = (x.dtype, tuple(x.shape), x.numpy().tobytes(), torch.as_tensor(t).numpy().tobytes())
        if key not in self.seen:
            self.seen[key] = self.model(x, t)
        return self.seen[key].clone()


def test_most_bits_right_and_wrong_predictions(shipped):
    model, d = shipped
    model = _Memo(model)
    assert check_most_bits_prediction(1, model, d).passed
    for wrong, kind in ((1000, Kind.WRONG_QUANTITY), (2, Kind.OFF_BY_ONE), (0, Kind.INDEX_ZERO)):
        result = check_most_bits_prediction(wrong, model, d)
        assert not result.passed and result.kind == kind, result.message
        assert_reveals_nothing(result, "most_bits_prediction", exact=1)
    result = check_most_bits_prediction(500, model, d)
    assert not result.passed and "too large" in result.message
    assert_reveals_nothing(result, "most_bits_prediction", exact=1)
    assert len(model.seen) == len(most_bits_steps())  # each check measured the same inputs
