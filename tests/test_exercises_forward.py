"""Chapter 1 self-checks: right answers pass, typical wrong answers fail with a useful message."""

import math

import pytest
import torch

from ddpm_lib.exercises.forward import (
    check_marginal_pdf,
    check_q_step,
    check_variance_trajectory,
)

# ------------------------------------------------------------------------------------ q_step


def q_step_right(x_prev, t, noise, betas):
    beta_t = betas[t].to(x_prev.dtype)
    return (1 - beta_t).sqrt() * x_prev + beta_t.sqrt() * noise


def q_step_right_floats(x_prev, t, noise, betas):  # Python floats and math.sqrt are fine too
    beta_t = float(betas[t])
    return math.sqrt(1 - beta_t) * x_prev + math.sqrt(beta_t) * noise


def q_step_no_sqrt_on_mean(x_prev, t, noise, betas):
    return (1 - betas[t]) * x_prev + betas[t].sqrt() * noise


def q_step_std_as_variance(x_prev, t, noise, betas):
    return (1 - betas[t]).sqrt() * x_prev + betas[t] * noise


def q_step_off_by_one(x_prev, t, noise, betas):
    return (1 - betas[t - 1]).sqrt() * x_prev + betas[t - 1].sqrt() * noise


def q_step_swapped(x_prev, t, noise, betas):
    return betas[t].sqrt() * x_prev + (1 - betas[t]).sqrt() * noise


def q_step_alpha_bar(x_prev, t, noise, betas):  # the closed form q(x_t | x_0), not one step
    ab = torch.cumprod(1 - betas, 0)[t]
    return ab.sqrt() * x_prev + (1 - ab).sqrt() * noise


def q_step_own_noise(x_prev, t, noise, betas):
    return (1 - betas[t]).sqrt() * x_prev + betas[t].sqrt() * torch.randn_like(x_prev)


@pytest.mark.parametrize("fn", [q_step_right, q_step_right_floats])
def test_q_step_right_answers_pass(fn):
    result = check_q_step(fn)
    assert result.passed and "all 9 test cases" in result.message


@pytest.mark.parametrize(
    "fn",
    [
        q_step_no_sqrt_on_mean,
        q_step_std_as_variance,
        q_step_off_by_one,
        q_step_swapped,
        q_step_alpha_bar,
        q_step_own_noise,
    ],
)
def test_q_step_wrong_answers_fail_with_a_hint(fn):
    result = check_q_step(fn)
    assert not result.passed
    assert "q_step is wrong on t = " in result.message and "Hint" in result.message
    assert "largest difference" in result.message


# -------------------------------------------------------------------------- variance trajectory


def trajectory_loop(var0, betas):
    v = torch.empty_like(betas)
    v[0] = var0
    for t in range(1, len(betas)):
        v[t] = (1 - betas[t]) * v[t - 1] + betas[t]
    return v


def trajectory_closed_form(var0, betas):
    return 1 - torch.cumprod(1 - betas, 0) * (1 - var0)


def trajectory_float32(var0, betas):  # single precision is accurate enough
    return trajectory_loop(var0, betas.float())


def trajectory_no_index_0(var0, betas):
    return trajectory_loop(var0, betas)[1:]


def trajectory_shifted(var0, betas):  # index 0 already holds Var x_1
    v = trajectory_loop(var0, betas)
    return torch.cat([v[1:], v[-1:]])


def trajectory_no_shrink(var0, betas):
    return var0 + torch.cumsum(betas, 0)


def trajectory_sqrt_shrink(var0, betas):  # multiplied by the coefficient instead of its square
    v = torch.empty_like(betas)
    v[0] = var0
    for t in range(1, len(betas)):
        v[t] = (1 - betas[t]).sqrt() * v[t - 1] + betas[t]
    return v


def trajectory_ignores_var0(var0, betas):
    return 1 - torch.cumprod(1 - betas, 0)


@pytest.mark.parametrize("fn", [trajectory_loop, trajectory_closed_form, trajectory_float32])
def test_variance_trajectory_right_answers_pass(fn):
    assert check_variance_trajectory(fn).passed


@pytest.mark.parametrize(
    "fn, words",
    [
        (trajectory_no_index_0, "expected shape"),
        (trajectory_shifted, "largest difference"),
        (trajectory_no_shrink, "largest difference"),
        (trajectory_sqrt_shrink, "largest difference"),
        (trajectory_ignores_var0, "var0 = 0.3"),
    ],
)
def test_variance_trajectory_wrong_answers_fail_with_a_hint(fn, words):
    result = check_variance_trajectory(fn)
    assert not result.passed and words in result.message and "Hint" in result.message


# ---------------------------------------------------------------------------- marginal pdf


def pdf_right(x, alpha_bar_t, weights, means, stds):
    var = alpha_bar_t * stds**2 + 1 - alpha_bar_t
    z2 = (x[:, None] - alpha_bar_t.sqrt() * means) ** 2 / var
    return (torch.exp(-0.5 * z2) / torch.sqrt(2 * math.pi * var)) @ weights


def pdf_right_distributions(x, alpha_bar_t, weights, means, stds):
    scale = (alpha_bar_t * stds**2 + 1 - alpha_bar_t).sqrt()
    comp = torch.distributions.Normal(alpha_bar_t.sqrt() * means, scale)
    return (comp.log_prob(x[:, None]).exp() * weights).sum(-1)


def _pdf(x, weights, mean, var):
    z2 = (x[:, None] - mean) ** 2 / var
    return (torch.exp(-0.5 * z2) / torch.sqrt(2 * math.pi * var)) @ weights


def pdf_forgets_data_spread(x, ab, weights, means, stds):
    return _pdf(x, weights, ab.sqrt() * means, (1 - ab) + 0 * stds)


def pdf_mean_not_sqrt(x, ab, weights, means, stds):
    return _pdf(x, weights, ab * means, ab * stds**2 + 1 - ab)


def pdf_std_not_variance(x, ab, weights, means, stds):
    return _pdf(x, weights, ab.sqrt() * means, (ab * stds**2 + 1 - ab) ** 2)


def pdf_unshrunk_spread(x, ab, weights, means, stds):
    return _pdf(x, weights, ab.sqrt() * means, stds**2 + 1 - ab)


def pdf_equal_weights(x, ab, weights, means, stds):
    return _pdf(
        x, torch.full_like(weights, 1 / len(weights)), ab.sqrt() * means, ab * stds**2 + 1 - ab
    )


@pytest.mark.parametrize("fn", [pdf_right, pdf_right_distributions])
def test_marginal_pdf_right_answers_pass(fn):
    assert check_marginal_pdf(fn).passed


@pytest.mark.parametrize(
    "fn",
    [
        pdf_forgets_data_spread,
        pdf_mean_not_sqrt,
        pdf_std_not_variance,
        pdf_unshrunk_spread,
        pdf_equal_weights,
    ],
)
def test_marginal_pdf_wrong_answers_fail_with_a_hint(fn):
    result = check_marginal_pdf(fn)
    assert not result.passed
    assert "marginal_pdf is wrong on K = " in result.message and "VARIANCE" in result.message


# ----------------------------------------------------------------------- harness behaviour


@pytest.mark.parametrize("check", [check_q_step, check_variance_trajectory, check_marginal_pdf])
def test_unimplemented_and_broken_learners_never_raise(check):
    def stub(*args):
        raise NotImplementedError  # your code here

    def broken(*args):
        return args[0].no_such_method()

    result = check(stub)
    assert not result.passed and "not implemented yet" in result.message
    result = check(broken)
    assert not result.passed and "raised" in result.message and "AttributeError" in result.message
    assert not check("not a function").passed
    assert "NOT YET" in repr(result) and "✘" in result._repr_html_()
