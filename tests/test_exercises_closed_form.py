"""Chapter 2 self-checks: right answers pass in every form the text allows; each typical wrong
answer fails, names its kind of mistake, and reveals no piece of the answer."""

import math

import numpy as np
import pytest
import torch

from ddpm_lib import Diffusion, schedule
from ddpm_lib.exercises import CheckResult, Kind
from ddpm_lib.exercises.closed_form import (
    check_alpha_bar_T,
    check_alpha_bars,
    check_q_sample,
    check_snr_crossing,
    check_snr_crossing_prediction,
)

from .exercise_helpers import assert_diagnosed, assert_reveals_nothing, diagnosis


def todo(*args):
    raise NotImplementedError


# ------------------------------------------------------------------------------- check_alpha_bars
@pytest.mark.parametrize(
    "fn",
    [
        lambda b: torch.cumprod(1 - b, 0),
        lambda b: torch.exp(torch.cumsum(torch.log1p(-b), 0)),
        lambda b: torch.cumprod(1 - b.float(), 0),  # float32
        lambda b: np.cumprod(1 - b.numpy()),  # a NumPy array
        lambda b: [math.prod(1 - v for v in b[: t + 1].tolist()) for t in range(len(b))],  # a list
    ],
)
def test_alpha_bars_right_answers_pass_in_every_form(fn):
    result = check_alpha_bars(fn)
    assert result.passed, result.message


@pytest.mark.parametrize(
    "wrong, kind",
    [
        (lambda b: torch.cumprod(b, 0), Kind.WRONG_QUANTITY),
        (lambda b: torch.cumprod(1 - b[1:], 0), Kind.INDEX_ZERO),
        (lambda b: torch.cat([torch.ones(1, dtype=b.dtype), torch.cumprod(1 - b, 0)[:-1]]),
         Kind.OFF_BY_ONE),
        (lambda b: 1 - torch.cumsum(b, 0), Kind.APPROXIMATION),
        (lambda b: torch.exp(-torch.cumsum(b, 0)), Kind.APPROXIMATION),
        (lambda b: torch.cumprod(1 - b, 0).sqrt(), Kind.MISSING_SQRT),
    ],
)  # fmt: skip
def test_alpha_bars_typical_mistakes_are_named(wrong, kind):
    result = check_alpha_bars(wrong)
    assert not result and isinstance(result, CheckResult)
    assert_diagnosed(result, "alpha_bars", kind)
    assert_reveals_nothing(result, "alpha_bars")


def test_alpha_bars_unknown_mistake_gets_no_kind_but_the_way_to_a_hint():
    result = check_alpha_bars(lambda b: torch.cumprod(1 - b, 0) * 0.9)
    assert not result and result.kind is None and diagnosis(result) == ""
    assert 'hint("alpha_bars")' in result.message


def test_alpha_bars_does_not_raise_for_stub_or_non_function():
    assert "not implemented" in check_alpha_bars(todo).message
    assert "expected a function" in check_alpha_bars(42).message
    assert "raised" in check_alpha_bars(lambda b: b[100]).message


def test_alpha_bars_mutating_learner_does_not_corrupt_the_check():
    def mutating(b):
        b[1:] = 0.5  # wrong, and it writes into its input
        return torch.cumprod(1 - b, 0)

    assert not check_alpha_bars(mutating)
    assert check_alpha_bars(lambda b: torch.cumprod(1 - b, 0))  # cases are rebuilt each call


# --------------------------------------------------------------------------------- check_q_sample
def _coef(ab, t, x0):
    return ab[t].to(x0.dtype).reshape(-1, 1, 1, 1)


def right_q_sample(x0, t, eps, ab):
    a = _coef(ab, t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


@pytest.mark.parametrize(
    "fn",
    [
        right_q_sample,
        lambda x0, t, eps, ab: right_q_sample(x0.float(), t, eps.float(), ab),  # float32
        lambda x0, t, eps, ab: right_q_sample(x0, t, eps, ab).numpy(),  # NumPy
        lambda x0, t, eps, ab: (
            ab[t].sqrt()[:, None, None, None] * x0 + (1 - ab[t]).sqrt()[:, None, None, None] * eps
        ),  # indexing instead of reshape
    ],
)
def test_q_sample_right_answers_pass(fn):
    result = check_q_sample(fn)
    assert result.passed, result.message


@pytest.mark.parametrize(
    "wrong, kind",
    [
        (lambda x0, t, e, ab: _coef(ab, t, x0) * x0 + (1 - _coef(ab, t, x0)) * e, Kind.MISSING_SQRT),
        (lambda x0, t, e, ab: _coef(ab, t, x0) * x0 + (1 - _coef(ab, t, x0)).sqrt() * e, Kind.MISSING_SQRT),
        (lambda x0, t, e, ab: (1 - _coef(ab, t, x0)).sqrt() * x0 + _coef(ab, t, x0).sqrt() * e, Kind.SWAPPED),
        (lambda x0, t, e, ab: right_q_sample(x0, (t - 1).clamp(min=0), e, ab), Kind.OFF_BY_ONE),
        (lambda x0, t, e, ab: _coef(ab, t, x0).sqrt() * x0 + e, Kind.MISSING_FACTOR),
        (lambda x0, t, e, ab: right_q_sample(x0, t, -e, ab), Kind.WRONG_SIGN),
        (lambda x0, t, e, ab: right_q_sample(x0, t, torch.randn_like(e), ab), Kind.OWN_NOISE),
        (lambda x0, t, e, ab: ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * e, Kind.SHAPE),
        (lambda x0, t, e, ab: right_q_sample(x0.half(), t, e.half(), ab.half()), Kind.PRECISION),
    ],
)  # fmt: skip
def test_q_sample_typical_mistakes_are_named(wrong, kind):
    result = check_q_sample(wrong)
    assert not result and result.kind == kind, result.message
    assert_reveals_nothing(result, "q_sample")


def test_q_sample_checks_t_zero_and_per_example_steps():
    """A learner that uses only t[0] for the whole batch is caught."""
    result = check_q_sample(lambda x0, t, e, ab: right_q_sample(x0, t[:1].expand_as(t), e, ab))
    assert not result and "not right yet on" in result.message
    assert "not implemented" in check_q_sample(todo).message


# ----------------------------------------------------------------------------- check_snr_crossing
def right_crossing(ab):
    return int(torch.nonzero(ab[1:] / (1 - ab[1:]) < 1)[0]) + 1


@pytest.mark.parametrize(
    "fn",
    [
        right_crossing,
        lambda ab: torch.nonzero(ab < 0.5)[0],  # a one-element tensor
        lambda ab: np.int64(right_crossing(ab)),  # a NumPy integer
        lambda ab: float(right_crossing(ab)),  # a whole float
    ],
)
def test_snr_crossing_right_answers_pass(fn):
    assert check_snr_crossing(fn).passed


@pytest.mark.parametrize(
    "wrong, kind",
    [
        (lambda ab: right_crossing(ab) - 1, Kind.OFF_BY_ONE),
        (lambda ab: int(torch.nonzero(ab[1:].sqrt() < 0.5)[0]) + 1, Kind.VAR_VS_STD),
        (lambda ab: int(torch.nonzero(ab[1:].sqrt() / (1 - ab[1:]) < 1)[0]) + 1, Kind.VAR_VS_STD),
        (lambda ab: int(torch.nonzero((1 - ab[1:]) / ab[1:] < 1)[0]) + 1, Kind.SWAPPED),
    ],
)  # fmt: skip
def test_snr_crossing_typical_mistakes_are_named(wrong, kind):
    result = check_snr_crossing(wrong)
    assert not result and result.kind == kind and "expected 260" in result.message
    assert_reveals_nothing(result, "snr_crossing")


def test_snr_crossing_does_not_raise():
    assert "not implemented" in check_snr_crossing(todo).message
    assert "expected a function" in check_snr_crossing(None).message
    assert "raised" in check_snr_crossing(lambda ab: ab[5000]).message
    result = check_snr_crossing(lambda ab: ab)  # a whole tensor instead of an int
    assert not result and "expected a single number" in result.message
    assert "whole number" in check_snr_crossing(lambda ab: 259.5).message


# ============================================================== numbers the student writes
ALPHA_BAR_200 = float(torch.prod(1 - schedule.linear_betas(200, 1e-4, 0.02)[1:]))


def test_alpha_bar_T_is_the_product_over_the_books_linear_betas():
    betas = schedule.linear_betas(200, 1e-4, 0.02)
    assert float(betas[1]) == 1e-4 and float(betas[200]) == 0.02  # not rescaled by 1000/T
    for form in (ALPHA_BAR_200, round(ALPHA_BAR_200, 3), torch.tensor(ALPHA_BAR_200).float(),
                 np.float64(ALPHA_BAR_200)):  # fmt: skip
        assert check_alpha_bar_T(form).passed


def _sum200() -> float:
    return float(schedule.linear_betas(200, 1e-4, 0.02).sum())


@pytest.mark.parametrize(
    "answer, kind",
    [
        (math.exp(-_sum200()), Kind.APPROXIMATION),
        (1 - _sum200(), Kind.APPROXIMATION),
        (float(torch.prod(1 - schedule.linear_betas(200, 1e-4, 0.02)[1:200])), Kind.OFF_BY_ONE),
        (math.sqrt(ALPHA_BAR_200), Kind.MISSING_SQRT),
        (1 - ALPHA_BAR_200, Kind.WRONG_QUANTITY),
        (float(Diffusion(schedule.linear_betas(1000)).alpha_bars[200]), Kind.WRONG_PARAMETERS),
        (float(Diffusion(schedule.linear_betas(1000)).alpha_bars[1000]), Kind.WRONG_PARAMETERS),
        (float(Diffusion(schedule.linear_betas(200, 5e-4, 0.1)).alpha_bars[200]),
         Kind.WRONG_PARAMETERS),
    ],
)  # fmt: skip
def test_alpha_bar_T_names_the_mistake_and_reveals_nothing(answer, kind):
    result = check_alpha_bar_T(float(f"{answer:.4g}"))
    assert result.kind == kind, result.message
    assert_reveals_nothing(result, "alpha_bar_T", exact=ALPHA_BAR_200)


def test_alpha_bar_T_bounds_and_direction():
    assert "between 0 and 1" in check_alpha_bar_T(1.5).message
    assert "too large" in check_alpha_bar_T(0.2).message


def test_snr_crossing_prediction():
    exact = Diffusion(schedule.cosine_betas(1000)).first_t_snr_below(1.0)
    for form in (exact, exact - 1, exact + 1, float(exact), torch.tensor(exact), np.int32(exact)):
        assert check_snr_crossing_prediction(form).passed
    assert check_snr_crossing_prediction(260, schedule_name="linear").passed


@pytest.mark.parametrize(
    "answer, kind",
    [
        (500, Kind.WRONG_PARAMETERS),  # t/T = 1/2, the offset s ignored
        (260, Kind.WRONG_PARAMETERS),  # the linear schedule's crossing
        (665, Kind.VAR_VS_STD),  # sqrt(alpha_bar) < 1/2
    ],
)
def test_snr_crossing_prediction_names_the_mistake(answer, kind):
    exact = Diffusion(schedule.cosine_betas(1000)).first_t_snr_below(1.0)
    result = check_snr_crossing_prediction(answer)
    assert result.kind == kind, result.message
    assert_reveals_nothing(result, "snr_crossing_prediction", exact=exact)


def test_snr_crossing_prediction_bounds():
    assert "between 1 and T" in check_snr_crossing_prediction(1200).message
    with pytest.raises(ValueError, match="schedule_name"):
        check_snr_crossing_prediction(10, schedule_name="quadratic")
