"""Chapter 3 self-checks: right answers pass in every form the text allows; each typical wrong
answer fails, names its kind of mistake, and reveals no piece of the answer."""

import math

import numpy as np
import pytest
import torch

from ddpm_lib import Diffusion, schedule
from ddpm_lib.exercises import Kind
from ddpm_lib.exercises.posterior import (
    beta_tilde_given,
    check_beta_tilde,
    check_beta_tilde_value,
    check_mu_tilde_from_eps,
    check_posterior_std_prediction,
    check_q_posterior,
)

from .exercise_helpers import assert_reveals_nothing


def _parts(betas, t):
    ab = torch.cumprod(1 - betas, 0)
    return betas[t], 1 - betas[t], ab[t], ab[t - 1]


# ------------------------------------------------------------------------------ q_posterior
def q_posterior_right(x0, x_t, t, betas):
    b, a, ab, abp = _parts(betas, t)
    mean = abp.sqrt() * b / (1 - ab) * x0 + a.sqrt() * (1 - abp) / (1 - ab) * x_t
    return mean, (1 - abp) / (1 - ab) * b


def q_posterior_float_variance(x0, x_t, t, betas):  # the text allows a Python float
    mean, var = q_posterior_right(x0, x_t, t, betas)
    return mean, float(var)


def q_posterior_math(x0, x_t, t, betas):  # all in Python floats and math.sqrt
    ab = torch.cumprod(1 - betas, 0).tolist()
    b, a = float(betas[t]), 1 - float(betas[t])
    c0 = math.sqrt(ab[t - 1]) * b / (1 - ab[t])
    ct = math.sqrt(a) * (1 - ab[t - 1]) / (1 - ab[t])
    return c0 * x0 + ct * x_t, (1 - ab[t - 1]) / (1 - ab[t]) * b


def q_posterior_float32(x0, x_t, t, betas):  # float32 data, the float64 schedule as given
    b, a, ab, abp = (float(v) for v in _parts(betas, t))
    c0, ct = math.sqrt(abp) * b / (1 - ab), math.sqrt(a) * (1 - abp) / (1 - ab)
    return c0 * x0.float() + ct * x_t.float(), torch.tensor((1 - abp) / (1 - ab) * b).float()


def q_posterior_expanded(x0, x_t, t, betas):
    mean, var = q_posterior_right(x0, x_t, t, betas)
    return mean, var.expand_as(mean)


def q_posterior_list(x0, x_t, t, betas):
    return list(q_posterior_right(x0, x_t, t, betas))


def q_posterior_numpy_variance(x0, x_t, t, betas):
    mean, var = q_posterior_right(x0, x_t, t, betas)
    return mean, np.float64(var)


@pytest.mark.parametrize(
    "fn",
    [q_posterior_right, q_posterior_float_variance, q_posterior_math, q_posterior_float32,
     q_posterior_expanded, q_posterior_list, q_posterior_numpy_variance],
)  # fmt: skip
def test_q_posterior_right_answers_pass_in_every_form(fn):
    result = check_q_posterior(fn)
    assert result.passed and "all 15 test cases" in result.message, result.message


def _with(mean_coefs, var):
    def fn(x0, x_t, t, betas):
        b, a, ab, abp = _parts(betas, t)
        c0, ct = mean_coefs(b, a, ab, abp)
        return c0 * x0 + ct * x_t, var(b, a, ab, abp)

    return fn


_C = lambda b, a, ab, abp: (abp.sqrt() * b / (1 - ab), a.sqrt() * (1 - abp) / (1 - ab))  # noqa: E731
_BT = lambda b, a, ab, abp: (1 - abp) / (1 - ab) * b  # noqa: E731


def q_posterior_no_abar0(x0, x_t, t, betas):
    ab = torch.cumprod(1 - betas[1:], 0)  # ab[t] is abar_{t+1}: the classic off-by-one
    b, a = betas[t], 1 - betas[t]
    if t == betas.shape[0] - 1:
        ab = torch.cat([ab, ab[-1:]])
    abp, abt = ab[t - 1], ab[t]
    mean = abp.sqrt() * b / (1 - abt) * x0 + a.sqrt() * (1 - abp) / (1 - abt) * x_t
    return mean, (1 - abp) / (1 - abt) * b


WRONG_POSTERIOR = [
    (_with(lambda *p: _C(*p)[::-1], _BT), Kind.SWAPPED),
    (_with(lambda b, a, ab, abp: (ab.sqrt() * b / (1 - ab), a.sqrt()), lambda b, a, ab, abp: b),
     Kind.OFF_BY_ONE),
    (_with(lambda b, a, ab, abp: (abp * b / (1 - ab), a * (1 - abp) / (1 - ab)), _BT),
     Kind.MISSING_SQRT),
    (_with(_C, lambda *p: _BT(*p).sqrt()), Kind.VAR_VS_STD),
    (_with(_C, lambda b, a, ab, abp: b), Kind.WRONG_QUANTITY),
    (lambda x0, x_t, t, betas: q_posterior_right(x0, x_t, t - 1, betas) if t > 1
     else q_posterior_right(x0, x_t, t, betas), Kind.OFF_BY_ONE),
    (lambda x0, x_t, t, betas: None, Kind.NO_RETURN),
]  # fmt: skip


@pytest.mark.parametrize("wrong, kind", WRONG_POSTERIOR)
def test_q_posterior_names_the_kind_of_mistake(wrong, kind):
    result = check_q_posterior(wrong)
    assert not result.passed and result.kind == kind, result.message
    assert_reveals_nothing(result, "q_posterior")


def test_q_posterior_with_the_schedule_cast_to_float32_is_a_precision_mistake():
    """1 - alpha_bar_1 = beta_1 = 1e-4 computed as 1 - (1 - 1e-4) in float32 loses 3 digits."""
    result = check_q_posterior(lambda x0, x_t, t, b: q_posterior_right(x0, x_t, t, b.float()))
    assert result.kind == Kind.PRECISION and "t = 1" in result.message, result.message


def test_q_posterior_forgotten_abar0_is_caught():
    result = check_q_posterior(q_posterior_no_abar0)
    assert not result.passed and "t = 1" in result.message


def test_q_posterior_reports_a_missing_tuple_and_an_exception():
    result = check_q_posterior(lambda x0, x_t, t, betas: q_posterior_right(x0, x_t, t, betas)[0])
    assert not result.passed and "expected a tuple of 2 values" in result.message

    def todo(x0, x_t, t, betas):
        raise NotImplementedError

    assert "not implemented" in check_q_posterior(todo).message
    crash = check_q_posterior(lambda x0, x_t, t, betas: betas[t + 5000])
    assert not crash.passed and "raised" in crash.message and "IndexError" in crash.message
    assert crash.kind == Kind.OFF_BY_ONE


# ------------------------------------------------------------------------- mu_tilde_from_eps
def mu_eps_right(x_t, eps, t, betas):
    b, a, ab, _ = _parts(betas, t)
    return (x_t - b / (1 - ab).sqrt() * eps) / a.sqrt()


def _mu(front, coef, sign=-1.0):
    def fn(x_t, eps, t, betas):
        b, a, ab, _ = _parts(betas, t)
        return front(a, ab) * (x_t + sign * coef(b, ab) * eps)

    return fn


@pytest.mark.parametrize(
    "fn",
    [mu_eps_right, lambda x_t, eps, t, betas: mu_eps_right(x_t.float(), eps.float(), t, betas),
     lambda x_t, eps, t, betas: mu_eps_right(x_t, eps, t, betas).numpy()],
)  # fmt: skip
def test_mu_tilde_from_eps_right_answers_pass(fn):
    assert check_mu_tilde_from_eps(fn).passed


@pytest.mark.parametrize(
    ("wrong", "kind"),
    [
        (_mu(lambda a, ab: 1 / ab.sqrt(), lambda b, ab: b / (1 - ab).sqrt()), Kind.WRONG_QUANTITY),
        (_mu(lambda a, ab: 1 / a.sqrt(), lambda b, ab: b / (1 - ab)), Kind.MISSING_SQRT),
        (_mu(lambda a, ab: 1 / a.sqrt(), lambda b, ab: b / (1 - ab).sqrt(), 1.0), Kind.WRONG_SIGN),
        (_mu(lambda a, ab: 1 / ab.sqrt(), lambda b, ab: (1 - ab).sqrt()), Kind.WRONG_QUANTITY),
        (_mu(lambda a, ab: 1.0, lambda b, ab: b / (1 - ab).sqrt()), Kind.MISSING_FACTOR),
        (lambda x_t, eps, t, betas: mu_eps_right(x_t, eps, min(t + 1, betas.shape[0] - 1), betas),
         Kind.OFF_BY_ONE),
    ],
)  # fmt: skip
def test_mu_tilde_from_eps_names_the_kind(wrong, kind):
    result = check_mu_tilde_from_eps(wrong)
    assert not result.passed and result.kind == kind, result.message
    assert_reveals_nothing(result, "mu_tilde_from_eps")


def test_mu_tilde_from_eps_unrecognised_error_gets_no_kind():
    result = check_mu_tilde_from_eps(lambda x_t, eps, t, betas: 0.9 * x_t)
    assert not result.passed and result.kind is None and "largest difference" in result.message
    assert 'hint("mu_tilde_from_eps")' in result.message


# ------------------------------------------------------------------------------- beta_tilde
def beta_tilde_right(betas):
    ab = torch.cumprod(1 - betas, 0)
    out = torch.zeros_like(betas)
    out[1:] = (1 - ab[:-1]) / (1 - ab[1:]) * betas[1:]
    return out


def _bt(ratio):
    def fn(betas):
        ab = torch.cumprod(1 - betas, 0)
        out = torch.zeros_like(betas)
        out[1:] = ratio(ab[1:], ab[:-1], betas[1:])
        return out

    return fn


def beta_tilde_nan_at_0(betas):
    out = beta_tilde_right(betas)
    out[0] = float("nan")
    return out


@pytest.mark.parametrize(
    "fn",
    [beta_tilde_right, lambda betas: beta_tilde_right(betas.float()),
     lambda betas: beta_tilde_right(betas).numpy(), lambda betas: beta_tilde_right(betas).tolist()],
)  # fmt: skip
def test_beta_tilde_right_answers_pass(fn):
    assert check_beta_tilde(fn).passed


@pytest.mark.parametrize(
    ("wrong", "kind"),
    [
        (_bt(lambda ab, abp, b: (1 - ab) / (1 - abp) * b), Kind.SWAPPED),
        (lambda betas: betas.clone(), Kind.WRONG_QUANTITY),
        (_bt(lambda ab, abp, b: (1 - abp) / (1 - ab)), Kind.MISSING_FACTOR),
        (lambda betas: beta_tilde_right(betas).sqrt(), Kind.VAR_VS_STD),
        (lambda betas: beta_tilde_right(betas)[1:], Kind.INDEX_ZERO),
        (beta_tilde_nan_at_0, Kind.INDEX_ZERO),
    ],
)
def test_beta_tilde_names_the_kind(wrong, kind):
    result = check_beta_tilde(wrong)
    assert not result.passed and result.kind == kind, result.message
    assert_reveals_nothing(result, "beta_tilde")


def test_beta_tilde_without_the_placeholder_is_a_shape_error():
    result = check_beta_tilde(lambda betas: beta_tilde_right(betas)[1:])
    assert not result.passed and "expected shape [1001], got [1000]" in result.message


def test_checks_never_raise_on_garbage():
    for check in (check_q_posterior, check_mu_tilde_from_eps, check_beta_tilde):
        assert not check("not a function").passed
        assert not check(lambda *args: None).passed


# ============================================================== numbers the student writes
def test_beta_tilde_value_numbers_come_from_the_library():
    given = beta_tilde_given()
    assert given["beta_t"] == 0.3 and math.isclose(given["alpha_bar_prev"], 0.72)
    assert math.isclose(given["alpha_bar_t"], 0.72 * 0.7)
    exact = (1 - 0.72) / (1 - 0.504) * 0.3
    for form in (exact, round(exact, 3), torch.tensor(exact).half(), np.float32(exact)):
        assert check_beta_tilde_value(form).passed
    assert exact < 0.3  # beta_tilde_t <= beta_t


EXACT_BT = (1 - 0.72) / (1 - 0.504) * 0.3


@pytest.mark.parametrize(
    "answer, kind",
    [
        ((1 - 0.504) / (1 - 0.72) * 0.3, Kind.SWAPPED),
        ((1 - 0.72) / (1 - 0.504), Kind.MISSING_FACTOR),  # the thesis' slip: beta_t missing
        (0.3, Kind.WRONG_QUANTITY),
        (math.sqrt(EXACT_BT), Kind.VAR_VS_STD),
        (0.7 / 0.3 + 1 / 0.28, Kind.WRONG_QUANTITY),  # the precision, not inverted
        (0.3 / 0.7 + 0.28, Kind.WRONG_QUANTITY),  # variances added
        (0.3 / 0.7, Kind.WRONG_QUANTITY),
    ],
)
def test_beta_tilde_value_names_the_mistake_and_reveals_nothing(answer, kind):
    result = check_beta_tilde_value(round(answer, 4))
    assert result.kind == kind, result.message
    assert_reveals_nothing(result, "beta_tilde_value", exact=EXACT_BT)


def test_beta_tilde_value_refuses_impossible_numbers():
    with pytest.raises(ValueError, match="beta_t"):
        check_beta_tilde_value(0.1, beta_t=1.5)


LINEAR = Diffusion(schedule.linear_betas(1000, 1e-4, 0.02))


@pytest.mark.parametrize("t", [1, 2, 10, 1000])
def test_posterior_std_prediction_passes_the_exact_value_in_every_form(t):
    exact = float(LINEAR.beta_tildes[t]) ** 0.5
    for form in (exact, exact * 1.04, torch.tensor(exact), np.float64(exact)):
        assert check_posterior_std_prediction(form, t).passed


@pytest.mark.parametrize(
    "t, answer, kind",
    [
        (2, float(LINEAR.betas[2]) ** 0.5, Kind.WRONG_QUANTITY),  # the forward step's std
        (2, float(LINEAR.beta_tildes[2]), Kind.VAR_VS_STD),
        (2, 0.0, Kind.OFF_BY_ONE),  # the value at t = 1
        (1, 0.01, Kind.WRONG_QUANTITY),  # sqrt(beta_1): at t = 1 x0 is given
        (1000, 0.02, Kind.VAR_VS_STD),
        (1000, (1 - float(LINEAR.alpha_bars[1000])) ** 0.5, Kind.WRONG_QUANTITY),
        (2, float(Diffusion(schedule.cosine_betas(1000)).beta_tildes[2]) ** 0.5,
         Kind.WRONG_PARAMETERS),
    ],
)  # fmt: skip
def test_posterior_std_prediction_names_the_mistake(t, answer, kind):
    result = check_posterior_std_prediction(answer, t)
    assert result.kind == kind, result.message
    exact = float(LINEAR.beta_tildes[t]) ** 0.5
    assert_reveals_nothing(result, "posterior_std_prediction", exact=exact)


def test_posterior_std_at_the_end_equals_sqrt_beta_T_within_the_tolerance():
    """At t = T the posterior is as wide as the forward step: sqrt(beta_T) is right there."""
    assert check_posterior_std_prediction(0.02**0.5, 1000).passed
    assert not check_posterior_std_prediction(float(LINEAR.betas[2]) ** 0.5, 2).passed


# ============================================================ the chapter's own answer cells
def _chapter_code_cells():
    """(source, inside_a_solution) for every code cell of book/03_posterior.ipynb."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "book" / "03_posterior.ipynb"
    cells, inside = [], False
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            if "{solution-start}" in source:
                inside = True
            if "{solution-end}" in source:
                inside = False
        else:
            cells.append((source, inside))
    return cells


def test_chapter_answer_cells_ship_unanswered_and_never_print_a_solution():
    """The learner's cells of chapter 3 run (the book builds) without giving the answer away:
    number questions ship with the `...` placeholder, no visible cell calls solution()."""
    questions = 0
    for source, in_solution in _chapter_code_cells():
        if in_solution:
            continue
        assert "solution(" not in source, source
        for check in ("check_beta_tilde_value(", "check_posterior_std_prediction("):
            if check in source:
                questions += 1
                answer_lines = [ln for ln in source.splitlines() if ln.startswith("my_")]
                assert answer_lines and all(" = ...  #" in ln for ln in answer_lines), source
    assert questions == 2  # the derivation (beta_tilde_value) and the prediction (std at t = T)


def test_the_chapter_placeholder_is_reported_as_not_answered():
    for result in (check_beta_tilde_value(...), check_posterior_std_prediction(..., t=1000)):
        assert not result.passed and result.kind is None
        assert "first" in result.message
