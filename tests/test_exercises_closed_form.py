"""Chapter 2 self-checks: right answers pass, typical wrong answers fail with a useful message."""

import pytest
import torch

from ddpm_lib.exercises import CheckResult
from ddpm_lib.exercises.closed_form import check_alpha_bars, check_q_sample, check_snr_crossing


def todo(*args):
    raise NotImplementedError


# ------------------------------------------------------------------------------- check_alpha_bars
def test_alpha_bars_right_answers_pass():
    assert check_alpha_bars(lambda b: torch.cumprod(1 - b, 0)).passed
    assert check_alpha_bars(lambda b: torch.exp(torch.cumsum(torch.log1p(-b), 0))).passed


@pytest.mark.parametrize(
    "wrong, says",
    [
        (lambda b: torch.cumprod(b, 0), "multiplied the betas"),
        (lambda b: torch.cumprod(1 - b[1:], 0), "dropped index 0"),
        (lambda b: torch.cat([torch.ones(1, dtype=b.dtype), torch.cumprod(1 - b, 0)[:-1]]),
         "off by one"),
        (lambda b: 1 - torch.cumsum(b, 0), "summed the betas"),
    ],
)  # fmt: skip
def test_alpha_bars_typical_mistakes_are_named(wrong, says):
    result = check_alpha_bars(wrong)
    assert not result and isinstance(result, CheckResult)
    assert says in result.message and "Hint:" in result.message and "Likely slip" in result.message


def test_alpha_bars_unknown_mistake_gets_the_hint_only():
    result = check_alpha_bars(lambda b: torch.cumprod(1 - b, 0) * 0.9)
    assert not result and "Hint:" in result.message and "Likely slip" not in result.message


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


def test_q_sample_right_answer_passes():
    assert check_q_sample(right_q_sample).passed
    # a float32 learner is fine too
    assert check_q_sample(lambda x0, t, eps, ab: right_q_sample(x0.float(), t, eps.float(), ab))


@pytest.mark.parametrize(
    "wrong, says",
    [
        (lambda x0, t, e, ab: _coef(ab, t, x0) * x0 + (1 - _coef(ab, t, x0)) * e, "square root is missing"),
        (lambda x0, t, e, ab: (1 - _coef(ab, t, x0)).sqrt() * x0 + _coef(ab, t, x0).sqrt() * e, "swapped"),
        (lambda x0, t, e, ab: right_q_sample(x0, (t - 1).clamp(min=0), e, ab), "alpha_bars[t - 1]"),
        (lambda x0, t, e, ab: _coef(ab, t, x0).sqrt() * x0 + e, "not scaled"),
    ],
)  # fmt: skip
def test_q_sample_typical_mistakes_are_named(wrong, says):
    result = check_q_sample(wrong)
    assert not result and says in result.message


def test_q_sample_missing_broadcast_is_reported_with_the_hint():
    result = check_q_sample(lambda x0, t, e, ab: ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * e)
    assert not result and "raised" in result.message and "[B, 1, 1, 1]" in result.message


def test_q_sample_checks_t_zero_and_per_example_steps():
    """A learner that uses only t[0] for the whole batch is caught."""
    result = check_q_sample(lambda x0, t, e, ab: right_q_sample(x0, t[:1].expand_as(t), e, ab))
    assert not result and "wrong on" in result.message
    assert "not implemented" in check_q_sample(todo).message


# ----------------------------------------------------------------------------- check_snr_crossing
def right_crossing(ab):
    return int(torch.nonzero(ab[1:] / (1 - ab[1:]) < 1)[0]) + 1


def test_snr_crossing_right_answers_pass():
    assert check_snr_crossing(right_crossing).passed
    assert check_snr_crossing(lambda ab: torch.nonzero(ab < 0.5)[0]).passed  # a tensor is accepted


@pytest.mark.parametrize(
    "wrong, says",
    [
        (lambda ab: right_crossing(ab) - 1, "0-based"),
        (lambda ab: int(torch.nonzero(ab[1:].sqrt() < 0.5)[0]) + 1, "standard deviation sqrt"),
        (lambda ab: int(torch.nonzero(ab[1:].sqrt() / (1 - ab[1:]) < 1)[0]) + 1, "ratio of variances"),
    ],
)  # fmt: skip
def test_snr_crossing_typical_mistakes_are_named(wrong, says):
    result = check_snr_crossing(wrong)
    assert not result and says in result.message and "expected 260" in result.message


def test_snr_crossing_does_not_raise():
    assert "not implemented" in check_snr_crossing(todo).message
    assert "expected a function" in check_snr_crossing(None).message
    assert "raised" in check_snr_crossing(lambda ab: ab[5000]).message
    result = check_snr_crossing(lambda ab: ab)  # a whole tensor instead of an int
    assert not result and "expected one step t" in result.message
