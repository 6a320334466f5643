"""Chapter 1 self-checks: right answers pass in every form the text allows; each typical wrong
answer fails, names its kind of mistake, and reveals no piece of the answer."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpm_lib import Diffusion, schedule
from ddpm_lib.exercises import Kind, forward, hint, solution
from ddpm_lib.exercises.forward import (
    check_marginal_pdf,
    check_merged_variance,
    check_q_step,
    check_variance_prediction,
    check_variance_step,
    check_variance_trajectory,
)

from .exercise_helpers import assert_diagnosed, assert_reveals_nothing

# ------------------------------------------------------------------------------------ q_step


def q_step_right(x_prev, t, noise, betas):
    beta_t = betas[t].to(x_prev.dtype)
    return (1 - beta_t).sqrt() * x_prev + beta_t.sqrt() * noise


def q_step_right_floats(x_prev, t, noise, betas):  # Python floats and math.sqrt are fine too
    beta_t = float(betas[t])
    return math.sqrt(1 - beta_t) * x_prev + math.sqrt(beta_t) * noise


def q_step_right_float64(x_prev, t, noise, betas):  # the answer in the schedule's float64
    return (1 - betas[t]).sqrt() * x_prev.double() + betas[t].sqrt() * noise.double()


def q_step_right_half(x_prev, t, noise, betas):  # float16: judged at float16's precision
    return q_step_right(x_prev.half(), t, noise.half(), betas)


def q_step_right_numpy(x_prev, t, noise, betas):
    b = float(betas[t])
    return np.sqrt(1 - b) * x_prev.numpy() + np.sqrt(b) * noise.numpy()


def _step(cx, cn, shift=0):
    def fn(x_prev, t, noise, betas):
        b = betas[t + shift]
        ab = torch.cumprod(1 - betas, 0)[t]
        return cx(b, ab) * x_prev + cn(b, ab) * noise

    return fn


WRONG_Q_STEP = [
    (_step(lambda b, ab: 1 - b, lambda b, ab: b.sqrt()), Kind.MISSING_SQRT),
    (_step(lambda b, ab: (1 - b).sqrt(), lambda b, ab: b), Kind.MISSING_SQRT),
    (_step(lambda b, ab: 1 - b, lambda b, ab: b), Kind.MISSING_SQRT),
    (_step(lambda b, ab: (1 - b).sqrt(), lambda b, ab: b.sqrt(), shift=-1), Kind.OFF_BY_ONE),
    (_step(lambda b, ab: (1 - b).sqrt(), lambda b, ab: b.sqrt(), shift=1), Kind.OFF_BY_ONE),
    (_step(lambda b, ab: b.sqrt(), lambda b, ab: (1 - b).sqrt()), Kind.SWAPPED),
    (_step(lambda b, ab: ab.sqrt(), lambda b, ab: (1 - ab).sqrt()), Kind.WRONG_QUANTITY),
    (_step(lambda b, ab: (1 - b).sqrt(), lambda b, ab: -b.sqrt()), Kind.WRONG_SIGN),
    (_step(lambda b, ab: 1.0, lambda b, ab: b.sqrt()), Kind.MISSING_FACTOR),
    (_step(lambda b, ab: (1 - b).sqrt(), lambda b, ab: 1.0), Kind.MISSING_FACTOR),
    (lambda x, t, n, b: q_step_right(x, t, torch.randn_like(n), b), Kind.OWN_NOISE),
    (lambda x, t, n, b: None, Kind.NO_RETURN),
]


@pytest.mark.parametrize(
    "fn",
    [
        q_step_right,
        q_step_right_floats,
        q_step_right_float64,
        q_step_right_half,
        q_step_right_numpy,
    ],
)
def test_q_step_right_answers_pass_in_every_form(fn):
    result = check_q_step(fn)
    assert result.passed and "all 9 test cases" in result.message, result.message


@pytest.mark.parametrize("fn, kind", WRONG_Q_STEP)
def test_q_step_wrong_answers_name_their_kind_and_reveal_nothing(fn, kind):
    result = check_q_step(fn)
    assert_diagnosed(result, "q_step", kind)
    assert "q_step is not right yet on t = " in result.message
    assert_reveals_nothing(result, "q_step")


@pytest.mark.parametrize("fn, kind", WRONG_Q_STEP[:10])
def test_q_step_wrong_answers_fail_in_half_precision_too(fn, kind):
    def half(x, t, n, b):
        return fn(x.half(), t, n.half(), b).half()

    assert not check_q_step(half).passed


def test_q_step_float8_is_too_coarse_to_pass():
    result = check_q_step(lambda x, t, n, b: q_step_right(x, t, n, b).to(torch.float8_e4m3fn))
    assert not result.passed


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


def trajectory_list(var0, betas):  # a Python list of floats, as a plain loop builds it
    v = [var0]
    for b in betas[1:].tolist():
        v.append((1 - b) * v[-1] + b)
    return v


def trajectory_numpy(var0, betas):
    return 1 - np.cumprod(1 - betas.numpy()) * (1 - var0)


def _recursion(step, shift=0):
    def fn(var0, betas):
        v = torch.empty_like(betas)
        v[0] = var0
        for t in range(1, len(betas)):
            v[t] = step(v[t - 1], betas[t + shift])
        return v

    return fn


WRONG_TRAJECTORY = [
    (lambda v0, b: trajectory_loop(v0, b)[1:], Kind.INDEX_ZERO),
    (lambda v0, b: torch.cat([trajectory_loop(v0, b)[1:], trajectory_loop(v0, b)[-1:]]),
     Kind.OFF_BY_ONE),
    (_recursion(lambda v, b: (1 - b) * v + b, shift=-1), Kind.OFF_BY_ONE),
    (_recursion(lambda v, b: (1 - b).sqrt() * v + b), Kind.VAR_VS_STD),
    (_recursion(lambda v, b: (1 - b) * v + b.sqrt()), Kind.VAR_VS_STD),
    (lambda v0, b: trajectory_loop(v0, b).sqrt(), Kind.VAR_VS_STD),
    (_recursion(lambda v, b: ((1 - b).sqrt() * v.sqrt() + b.sqrt()) ** 2), Kind.ADDED_STDS),
    (lambda v0, b: v0 + torch.cumsum(b, 0), Kind.MISSING_FACTOR),
    (_recursion(lambda v, b: (1 - b) * v), Kind.MISSING_FACTOR),
    (lambda v0, b: 1 - torch.cumprod(1 - b, 0), Kind.MISSING_FACTOR),
]  # fmt: skip


@pytest.mark.parametrize(
    "fn", [trajectory_loop, trajectory_closed_form, trajectory_float32, trajectory_list,
           trajectory_numpy],
)  # fmt: skip
def test_variance_trajectory_right_answers_pass_in_every_form(fn):
    result = check_variance_trajectory(fn)
    assert result.passed, result.message


@pytest.mark.parametrize("fn, kind", WRONG_TRAJECTORY)
def test_variance_trajectory_wrong_answers_name_their_kind(fn, kind):
    result = check_variance_trajectory(fn)
    assert result.kind == kind, result.message
    assert_reveals_nothing(result, "variance_trajectory")


def test_variance_trajectory_ignoring_var0_fails_on_a_nonzero_var0():
    result = check_variance_trajectory(lambda v0, b: 1 - torch.cumprod(1 - b, 0))
    assert "var0 = 0.3" in result.message and "var0 is ignored" in result.message


# ---------------------------------------------------------------------------- marginal pdf


def _pdf(x, weights, mean, var):
    z2 = (x[:, None] - mean) ** 2 / var
    return (torch.exp(-0.5 * z2) / torch.sqrt(2 * math.pi * var)) @ weights


def pdf_right(x, alpha_bar_t, weights, means, stds):
    return _pdf(x, weights, alpha_bar_t.sqrt() * means, alpha_bar_t * stds**2 + 1 - alpha_bar_t)


def pdf_right_distributions(x, alpha_bar_t, weights, means, stds):
    scale = (alpha_bar_t * stds**2 + 1 - alpha_bar_t).sqrt()
    comp = torch.distributions.Normal(alpha_bar_t.sqrt() * means, scale)
    return (comp.log_prob(x[:, None]).exp() * weights).sum(-1)


def pdf_right_scipy(x, alpha_bar_t, weights, means, stds):  # a NumPy array comes back
    from scipy import stats

    ab = float(alpha_bar_t)
    scale = np.sqrt(ab * stds.numpy() ** 2 + 1 - ab)
    return stats.norm.pdf(x.numpy()[:, None], np.sqrt(ab) * means.numpy(), scale) @ weights.numpy()


def pdf_right_float32(x, alpha_bar_t, weights, means, stds):
    return pdf_right(x.float(), alpha_bar_t.float(), weights.float(), means.float(), stds.float())


def _wrong_pdf(mean, var, equal=False, norm=True, log=False):
    def fn(x, ab, weights, means, stds):
        w = torch.full_like(weights, 1 / len(weights)) if equal else weights
        v = var(ab, stds)
        dens = torch.exp(-0.5 * (x[:, None] - mean(ab, means)) ** 2 / v)
        out = (dens / torch.sqrt(2 * math.pi * v) if norm else dens) @ w
        return out.log() if log else out

    return fn


_M = lambda ab, m: ab.sqrt() * m  # noqa: E731
_V = lambda ab, s: ab * s**2 + 1 - ab  # noqa: E731
WRONG_PDF = [
    (_wrong_pdf(_M, lambda ab, s: (1 - ab) + 0 * s), Kind.MISSING_FACTOR),
    (_wrong_pdf(lambda ab, m: ab * m, _V), Kind.MISSING_SQRT),
    (_wrong_pdf(_M, lambda ab, s: _V(ab, s) ** 2), Kind.VAR_VS_STD),
    (_wrong_pdf(_M, lambda ab, s: _V(ab, s).sqrt()), Kind.VAR_VS_STD),
    (_wrong_pdf(_M, lambda ab, s: s**2 + 1 - ab), Kind.MISSING_FACTOR),
    (_wrong_pdf(_M, lambda ab, s: ab.sqrt() * s**2 + 1 - ab), Kind.VAR_VS_STD),
    (_wrong_pdf(_M, lambda ab, s: (ab.sqrt() * s + (1 - ab).sqrt()) ** 2), Kind.ADDED_STDS),
    (_wrong_pdf(_M, _V, equal=True), Kind.MISSING_FACTOR),
    (_wrong_pdf(_M, _V, norm=False), Kind.MISSING_FACTOR),
    (_wrong_pdf(_M, _V, log=True), Kind.WRONG_QUANTITY),
]


@pytest.mark.parametrize(
    "fn", [pdf_right, pdf_right_distributions, pdf_right_scipy, pdf_right_float32]
)
def test_marginal_pdf_right_answers_pass_in_every_form(fn):
    result = check_marginal_pdf(fn)
    assert result.passed, result.message


@pytest.mark.parametrize("fn, kind", WRONG_PDF)
def test_marginal_pdf_wrong_answers_name_their_kind(fn, kind):
    result = check_marginal_pdf(fn)
    assert result.kind == kind and "marginal_pdf is not right yet on K = " in result.message
    assert_reveals_nothing(result, "marginal_pdf")


# ----------------------------------------------------------------------- harness behaviour


@pytest.mark.parametrize("check", [check_q_step, check_variance_trajectory, check_marginal_pdf])
def test_unimplemented_and_broken_learners_never_raise(check):
    def stub(*args):
        raise NotImplementedError  # your code here

    def broken(*args):
        return args[0].no_such_method()

    result = check(stub)
    assert not result.passed and "not implemented yet" in result.message
    assert "Stuck? hint(" in result.message  # the static book shows where help is
    result = check(broken)
    assert not result.passed and "raised" in result.message and "AttributeError" in result.message
    assert not check("not a function").passed
    assert "NOT YET" in repr(result) and "✘" in result._repr_html_()


# ============================================================== numbers the student writes
LINEAR = Diffusion(schedule.linear_betas(1000, 1e-4, 0.02))
COSINE = Diffusion(schedule.cosine_betas(1000))


def test_variance_prediction_accepts_every_number_form():
    exact = float(LINEAR.variance_trajectory(0.25)[200])
    for form in (exact, round(exact, 2), np.float32(exact), torch.tensor(exact),
                 torch.tensor([exact], dtype=torch.float16), torch.tensor(exact).bfloat16(),
                 np.array([exact])):  # fmt: skip
        result = check_variance_prediction(form)
        assert result.passed, (form, result.message)


def _v(t, v0=0.25):
    ab = float(LINEAR.alpha_bars[t])
    return ab, 1 - ab * (1 - v0)


@pytest.mark.parametrize(
    "answer, kind",
    [
        (math.sqrt(_v(200)[1]), Kind.VAR_VS_STD),  # a standard deviation
        (1 - _v(200)[0], Kind.MISSING_FACTOR),  # the data's variance forgotten
        (_v(200)[0] * 0.25, Kind.MISSING_FACTOR),  # the noise forgotten
        (_v(200)[0] * 0.25**2 + 1 - _v(200)[0], Kind.VAR_VS_STD),  # v0 squared
        (math.sqrt(_v(200)[0]) * 0.25 + 1 - _v(200)[0], Kind.VAR_VS_STD),
        (0.25 + float(LINEAR.betas[:201].sum()), Kind.MISSING_FACTOR),  # never shrunk
        (1.0, Kind.WRONG_QUANTITY),
        (float(COSINE.variance_trajectory(0.25)[200]), Kind.WRONG_PARAMETERS),
    ],
)
def test_variance_prediction_names_the_mistake_and_reveals_nothing(answer, kind):
    result = check_variance_prediction(round(answer, 3))
    assert result.kind == kind, result.message
    assert_reveals_nothing(result, "variance_prediction", exact=_v(200)[1])


def test_variance_prediction_off_by_one_is_named_where_it_shows():
    """At t = 200 the values at t - 1 and t are closer than the tolerance (nothing to name); with
    a tolerance below one step's change they are not."""
    v = LINEAR.variance_trajectory(0.25)
    assert abs(float(v[200] - v[199])) < 0.01
    result = check_variance_prediction(float(v[4]), t=5, atol=5e-5)
    assert result.kind == Kind.OFF_BY_ONE and "t - 1" in result.message


def test_variance_prediction_without_a_match_says_which_way():
    assert "too large" in check_variance_prediction(0.8).message
    assert "too small" in check_variance_prediction(0.45).message
    assert "cannot be negative" in check_variance_prediction(-0.2).message
    assert "write your prediction" in check_variance_prediction(...).message
    assert "write your prediction" in check_variance_prediction(None).message
    assert "expected a number" in check_variance_prediction("0.5").message
    assert "not a finite number" in check_variance_prediction(float("nan")).message
    assert not check_variance_prediction(True).passed


def test_variance_prediction_refuses_a_step_outside_the_chain():
    with pytest.raises(ValueError, match="t"):
        check_variance_prediction(0.5, t=1001)


@pytest.mark.parametrize(
    "answer, kind",
    [
        (math.sqrt(0.7) * 0.5 + 0.3, Kind.VAR_VS_STD),
        (0.7 * 0.5 + math.sqrt(0.3), Kind.VAR_VS_STD),
        (math.sqrt(0.65), Kind.VAR_VS_STD),
        (0.8, Kind.MISSING_FACTOR),
        (0.35, Kind.MISSING_FACTOR),
        ((math.sqrt(0.35) + math.sqrt(0.3)) ** 2, Kind.ADDED_STDS),
        (1.0, Kind.WRONG_QUANTITY),
    ],
)
def test_variance_step(answer, kind):
    assert check_variance_step(0.65) and check_variance_step(torch.tensor(0.6504))
    result = check_variance_step(answer)
    assert result.kind == kind, result.message
    assert_reveals_nothing(result, "variance_step", exact=0.65)


@pytest.mark.parametrize(
    "answer, kind",
    [
        (0.3, Kind.MISSING_FACTOR),  # the betas added
        ((math.sqrt(0.8 * 0.1) + math.sqrt(0.2)) ** 2, Kind.ADDED_STDS),
        (math.sqrt(0.28), Kind.VAR_VS_STD),
        (math.sqrt(0.8) * 0.1 + 0.2, Kind.VAR_VS_STD),
        (0.72, Kind.WRONG_QUANTITY),
        (0.08, Kind.MISSING_FACTOR),
        (0.02, Kind.WRONG_QUANTITY),
    ],
)
def test_merged_variance(answer, kind):
    assert check_merged_variance(0.28) and check_merged_variance(np.float64(0.2805))
    result = check_merged_variance(answer)
    assert result.kind == kind, result.message
    assert_reveals_nothing(result, "merged_variance", exact=0.28)


def test_merged_variance_follows_its_parameters():
    # beta_{t-1} = 0.3, beta_t = 0.5: 1 - 0.7 * 0.5 = 0.65
    assert check_merged_variance(0.65, beta_prev=0.3, beta_t=0.5)
    assert check_merged_variance(0.8, beta_prev=0.3, beta_t=0.5).kind == Kind.MISSING_FACTOR


def test_every_chapter_1_hint_and_solution_is_there():
    for name in ("q_step", "variance_trajectory", "marginal_pdf", "variance_prediction",
                 "variance_step", "merged_variance"):  # fmt: skip
        assert str(hint(name)).startswith(f"Hint for {name}:")
        assert str(solution(name)).startswith(f"Solution of {name}:")


# ================================================ the chapter's own question cells (book/01)
CHAPTER_1 = Path(__file__).resolve().parent.parent / "book" / "01_forward_chain.ipynb"
# each number check the chapter asks in its text, with the numbers that text states
QUESTIONS = {
    "check_variance_step": ("0.5", "0.3"),
    "check_variance_prediction": ("0.25", "200"),
    "check_merged_variance": ("0.1", "0.2"),
}


def _chapter_cells():
    """(cell, inside a solution block, the Markdown just before it) for every cell."""
    in_solution, last_md = False, ""
    for cell in json.loads(CHAPTER_1.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            if "{solution-start}" in source:
                in_solution = True
            if "{solution-end}" in source:
                in_solution = False
            if not in_solution:
                last_md = source
        yield cell, source, in_solution, last_md


@pytest.mark.parametrize("check", sorted(QUESTIONS))
def test_chapter_1_asks_each_question_with_a_blank_answer_and_the_default_numbers(check):
    asked = [
        (source, md)
        for cell, source, in_solution, md in _chapter_cells()
        if cell["cell_type"] == "code" and not in_solution and f"{check}(" in source
    ]
    assert len(asked) == 1, f"{check} is asked {len(asked)} times outside solutions"
    source, md = asked[0]
    call = re.search(rf"{check}\((\w+)\)", source)
    assert call, "the check is called with the answer alone, so its defaults are the text's"
    name = call.group(1)
    # shipped blank, never pre-filled with the answer
    assert re.search(rf"^{name} = \.\.\.", source, re.M), source
    blank = getattr(forward, check)(...)
    assert not blank.passed and "first" in blank.message
    for number in QUESTIONS[check]:  # the text states the parameters the defaults use
        assert number in md, (check, number)
