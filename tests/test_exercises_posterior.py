"""Chapter 3 self-checks: a right answer passes; typical wrong answers fail and are named."""

import pytest
import torch

from ddpm_lib.exercises.posterior import (
    check_beta_tilde,
    check_mu_tilde_from_eps,
    check_q_posterior,
)


def _parts(betas, t):
    ab = torch.cumprod(1 - betas, 0)
    return betas[t], 1 - betas[t], ab[t], ab[t - 1]


# ------------------------------------------------------------------------------ q_posterior
def q_posterior_right(x0, x_t, t, betas):
    b, a, ab, abp = _parts(betas, t)
    mean = abp.sqrt() * b / (1 - ab) * x0 + a.sqrt() * (1 - abp) / (1 - ab) * x_t
    return mean, (1 - abp) / (1 - ab) * b


def q_posterior_swapped(x0, x_t, t, betas):
    b, a, ab, abp = _parts(betas, t)
    mean = abp.sqrt() * b / (1 - ab) * x_t + a.sqrt() * (1 - abp) / (1 - ab) * x0
    return mean, (1 - abp) / (1 - ab) * b


def q_posterior_abar_t(x0, x_t, t, betas):
    b, a, ab, _ = _parts(betas, t)
    mean = ab.sqrt() * b / (1 - ab) * x0 + a.sqrt() * (1 - ab) / (1 - ab) * x_t
    return mean, b


def q_posterior_no_sqrt(x0, x_t, t, betas):
    b, a, ab, abp = _parts(betas, t)
    mean = abp * b / (1 - ab) * x0 + a * (1 - abp) / (1 - ab) * x_t
    return mean, (1 - abp) / (1 - ab) * b


def q_posterior_std(x0, x_t, t, betas):
    mean, var = q_posterior_right(x0, x_t, t, betas)
    return mean, var.sqrt()


def q_posterior_no_abar0(x0, x_t, t, betas):
    ab = torch.cumprod(1 - betas[1:], 0)  # ab[t] is abar_{t+1}: the classic off-by-one
    b, a = betas[t], 1 - betas[t]
    if t == betas.shape[0] - 1:
        ab = torch.cat([ab, ab[-1:]])
    abp, abt = ab[t - 1], ab[t]
    mean = abp.sqrt() * b / (1 - abt) * x0 + a.sqrt() * (1 - abp) / (1 - abt) * x_t
    return mean, (1 - abp) / (1 - abt) * b


def q_posterior_unnormalised_only_mean(x0, x_t, t, betas):
    return q_posterior_right(x0, x_t, t, betas)[0]


def test_q_posterior_right_answer_passes():
    result = check_q_posterior(q_posterior_right)
    assert result.passed and "all 15 test cases" in result.message


def test_q_posterior_accepts_a_variance_shaped_like_the_mean():
    def expanded(x0, x_t, t, betas):
        mean, var = q_posterior_right(x0, x_t, t, betas)
        return mean, var.expand_as(mean)

    assert check_q_posterior(expanded).passed


@pytest.mark.parametrize(
    ("wrong", "names"),
    [
        (q_posterior_swapped, "swapped"),
        (q_posterior_abar_t, "abar_t is used where the formula has abar_{t-1}"),
        (q_posterior_no_sqrt, "square root is missing"),
        (q_posterior_std, "standard deviation"),
    ],
)
def test_q_posterior_names_the_slip(wrong, names):
    result = check_q_posterior(wrong)
    assert not result.passed
    assert "Likely slip" in result.message and names in result.message
    assert "Hint: complete the square" in result.message


def test_q_posterior_off_by_one_fails_with_the_case():
    result = check_q_posterior(q_posterior_no_abar0)
    assert not result.passed and "t = 1" in result.message


def test_q_posterior_reports_a_missing_tuple_and_an_exception():
    result = check_q_posterior(q_posterior_unnormalised_only_mean)
    assert not result.passed and "expected a tuple of 2 values" in result.message

    def todo(x0, x_t, t, betas):
        raise NotImplementedError

    assert "not implemented" in check_q_posterior(todo).message
    crash = check_q_posterior(lambda x0, x_t, t, betas: betas[t + 5000])
    assert not crash.passed and "raised" in crash.message and "IndexError" in crash.message


# ------------------------------------------------------------------------- mu_tilde_from_eps
def mu_eps_right(x_t, eps, t, betas):
    b, a, ab, _ = _parts(betas, t)
    return (x_t - b / (1 - ab).sqrt() * eps) / a.sqrt()


def mu_eps_abar(x_t, eps, t, betas):
    b, _, ab, _ = _parts(betas, t)
    return (x_t - b / (1 - ab).sqrt() * eps) / ab.sqrt()


def mu_eps_no_sqrt(x_t, eps, t, betas):
    b, a, ab, _ = _parts(betas, t)
    return (x_t - b / (1 - ab) * eps) / a.sqrt()


def mu_eps_plus(x_t, eps, t, betas):
    b, a, ab, _ = _parts(betas, t)
    return (x_t + b / (1 - ab).sqrt() * eps) / a.sqrt()


def x0_hat(x_t, eps, t, betas):
    _, _, ab, _ = _parts(betas, t)
    return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()


def mu_eps_late(x_t, eps, t, betas):
    return mu_eps_right(x_t, eps, min(t + 1, betas.shape[0] - 1), betas)


def test_mu_tilde_from_eps_right_answer_passes():
    assert check_mu_tilde_from_eps(mu_eps_right).passed


@pytest.mark.parametrize(
    ("wrong", "names"),
    [
        (mu_eps_abar, "1/sqrt(abar_t)"),
        (mu_eps_no_sqrt, "square root is missing"),
        (mu_eps_plus, "added instead of subtracted"),
        (x0_hat, "estimate of x0"),
        (mu_eps_late, "t + 1"),
    ],
)
def test_mu_tilde_from_eps_names_the_slip(wrong, names):
    result = check_mu_tilde_from_eps(wrong)
    assert not result.passed and "Likely slip" in result.message and names in result.message


def test_mu_tilde_from_eps_unrecognised_error_still_gets_the_hint():
    result = check_mu_tilde_from_eps(lambda x_t, eps, t, betas: 0.9 * x_t)
    assert not result.passed and "Likely slip" not in result.message
    assert "Hint: substitute x0" in result.message and "largest difference" in result.message


# ------------------------------------------------------------------------------- beta_tilde
def beta_tilde_right(betas):
    ab = torch.cumprod(1 - betas, 0)
    out = torch.zeros_like(betas)
    out[1:] = (1 - ab[:-1]) / (1 - ab[1:]) * betas[1:]
    return out


def beta_tilde_inverted(betas):
    ab = torch.cumprod(1 - betas, 0)
    out = torch.zeros_like(betas)
    out[1:] = (1 - ab[1:]) / (1 - ab[:-1]) * betas[1:]
    return out


def beta_tilde_nan_at_0(betas):
    out = beta_tilde_right(betas)
    out[0] = float("nan")
    return out


def test_beta_tilde_right_answer_passes():
    assert check_beta_tilde(beta_tilde_right).passed


@pytest.mark.parametrize(
    ("wrong", "names"),
    [
        (beta_tilde_inverted, "upside down"),
        (lambda betas: betas.clone(), "beta_t itself"),
        (beta_tilde_nan_at_0, "index 0 must hold 0"),
    ],
)
def test_beta_tilde_names_the_slip(wrong, names):
    result = check_beta_tilde(wrong)
    assert not result.passed and "Likely slip" in result.message and names in result.message


def test_beta_tilde_without_the_placeholder_is_a_shape_error():
    result = check_beta_tilde(lambda betas: beta_tilde_right(betas)[1:])
    assert not result.passed and "expected shape [1001], got [1000]" in result.message


def test_checks_never_raise_on_garbage():
    for check in (check_q_posterior, check_mu_tilde_from_eps, check_beta_tilde):
        assert not check("not a function").passed
        assert not check(lambda *args: None).passed
