"""The harness behind every self-check: the three tiers of help, the forms of an answer it accepts,
and the numeric questions (predict, then run; a derivation with a numeric answer)."""

import math

import numpy as np
import pytest
import torch

from ddpm_lib.exercises import (
    Bounds,
    Kind,
    Reveal,
    Tolerance,
    Wrong,
    check_alpha_bars,
    check_number,
    check_q_step,
    hint,
    solution,
)
from ddpm_lib.exercises._check import Case, Slip, as_number, compare, run_check

from .exercise_helpers import ANSWER_FRAGMENTS, _flat


# ----------------------------------------------------------------------------- the three tiers
def test_tiers_failure_then_hint_then_solution():
    result = check_alpha_bars(lambda b: torch.cumprod(b, 0))
    assert not result and result.kind == Kind.WRONG_QUANTITY
    assert result.message.endswith(
        'Stuck? hint("alpha_bars") gives a hint; solution("alpha_bars") shows the formula.'
    )
    assert isinstance(result.hint(), Reveal) and result.hint() == hint("alpha_bars")
    assert result.solution() == solution("alpha_bars")
    assert "torch.cumprod(1 - betas, dim=0)" in str(result.solution())
    assert "cumprod(1 - betas" not in str(result.hint())


def test_hint_and_solution_default_to_the_exercise_checked_last():
    check_q_step(lambda *args: None)
    assert hint().title == "Hint for q_step:" and solution().title == "Solution of q_step:"
    check_alpha_bars(lambda b: b)
    assert hint().title == "Hint for alpha_bars:"
    with pytest.raises(ValueError, match="unknown exercise"):
        hint("no_such_exercise")


def test_every_hint_reveals_no_piece_of_its_answer():
    for name, fragments in ANSWER_FRAGMENTS.items():
        shown, answer = _flat(str(hint(name))), _flat(str(solution(name)))
        for fragment in fragments:
            assert _flat(fragment) in answer, (name, fragment)
            assert _flat(fragment) not in shown, (name, fragment)


def test_results_hints_and_solutions_display_in_a_notebook():
    result = check_alpha_bars(lambda b: torch.cumprod(b, 0))
    assert (
        result._repr_html_().startswith('<div style="color:#b35900') and "✘" in result._repr_html_()
    )
    assert repr(result).startswith("NOT YET: ")
    good = check_alpha_bars(lambda b: torch.cumprod(1 - b, 0))
    assert repr(good).startswith("PASSED: ") and "✔" in good._repr_html_()
    html = hint("alpha_bars")._repr_html_()
    assert "<b>Hint for alpha_bars:</b>" in html and "<script" not in html
    assert str(hint("alpha_bars")).startswith("Hint for alpha_bars:\n")


# ------------------------------------------------------------------------------ the harness
def test_run_check_reports_wrong_and_unimplemented_functions():
    cases = [Case((torch.arange(4.0),), "a ramp")]
    slips = [Slip(Kind.WRONG_QUANTITY, "you added two", lambda x: x + 2)]
    assert run_check("double", lambda x: 2 * x, lambda x: 2 * x, cases).passed
    wrong = run_check("double", lambda x: x + 2, lambda x: 2 * x, cases, slips=slips)
    assert not wrong and "a ramp" in wrong.message and wrong.kind == Kind.WRONG_QUANTITY
    assert "Likely mistake (a different quantity): you added two" in wrong.message
    unknown = run_check("double", lambda x: x + 3, lambda x: 2 * x, cases, slips=slips)
    assert unknown.kind is None and "Likely mistake" not in unknown.message

    def todo(x):
        raise NotImplementedError

    assert "not implemented" in run_check("double", todo, lambda x: 2 * x, cases).message
    assert "raised" in run_check("double", lambda x: x[9], lambda x: 2 * x, cases).message
    shape = run_check("double", lambda x: x[:2], lambda x: 2 * x, cases)
    assert not shape and "shape" in shape.message


def test_run_check_compares_plain_numbers():
    cases = [Case((3,), "three")]
    assert run_check("sq", lambda n: torch.tensor(n * n), lambda n: n * n, cases).passed
    bad = run_check("sq", lambda n: torch.ones(2), lambda n: n * n, cases)
    assert not bad and "single number" in bad.message
    assert not run_check("half", lambda n: n / 3, lambda n: n / 2, cases)


def test_a_random_answer_is_named_as_own_noise():
    cases = [Case((torch.zeros(50),), "zeros")]
    result = run_check("noisy", lambda x: x + torch.randn_like(x), lambda x: x + 1, cases)
    assert result.kind == Kind.OWN_NOISE


@pytest.mark.parametrize(
    "form",
    [0.5, 1 / 2, np.float32(0.5), np.float64(0.5), torch.tensor(0.5), torch.tensor([0.5]),
     torch.tensor(0.5, dtype=torch.float16), torch.tensor(0.5, dtype=torch.bfloat16),
     np.array([[0.5]]), torch.tensor(0.5, requires_grad=True)],
)  # fmt: skip
def test_as_number_accepts_every_form_of_one_number(form):
    assert as_number(form) == 0.5


@pytest.mark.parametrize("form", [True, None, "0.5", [0.5, 0.5], torch.ones(2), np.ones(3)])
def test_as_number_refuses_what_is_not_one_number(form):
    assert as_number(form) is None


def test_compare_accepts_the_forms_a_tensor_answer_may_take():
    want = torch.tensor([1.0, 2.0], dtype=torch.float64)
    for got in (
        want.float(),
        want.half(),
        want.numpy(),
        [1.0, 2.0],
        [torch.tensor(1.0), torch.tensor(2.0)],
    ):
        assert compare(got, want) is None
    assert "shape" in compare(torch.ones(3), want)
    assert "expected a torch.Tensor" in compare("12", want)
    assert compare(0.25, torch.tensor(0.25, dtype=torch.float64)) is None  # a float variance
    assert compare(torch.tensor(0.25), torch.full((2, 3), 0.25, dtype=torch.float64)) is None


# ------------------------------------------------------------------------- numeric questions
def _ask(answer, **kw):
    return check_number(
        "toy_question", answer, exact=torch.tensor(0.5, dtype=torch.float64),
        tolerance=Tolerance(atol=0.01),
        wrong=[Wrong(Kind.VAR_VS_STD, "a standard deviation", math.sqrt(0.5)),
               Wrong(Kind.OFF_BY_ONE, "as close to right as the tolerance", 0.505),
               Wrong(Kind.WRONG_QUANTITY, "named first", 0.9),
               Wrong(Kind.MISSING_FACTOR, "named second, same number", 0.901)],
        hint="think", solution="0.5 = 1/2", **kw,
    )  # fmt: skip


def test_check_number_passes_within_the_tolerance_and_shows_the_exact_value_only_then():
    good = _ask(0.509)
    assert good.passed and "0.5" in good.message and "±0.01" in good.message
    bad = _ask(0.3)
    assert not bad.passed and "too small" in bad.message and " 0.5 " not in bad.message


def test_check_number_names_the_nearest_distinct_mistake():
    assert _ask(0.71).kind == Kind.VAR_VS_STD
    assert _ask(0.9).kind == Kind.WRONG_QUANTITY  # two mistakes, one number: the first listed
    assert _ask(0.52).kind is None  # 0.505 is within the tolerance of 0.5: never named
    assert hint("toy_question").text == "think" and solution("toy_question").text == "0.5 = 1/2"


def test_check_number_blank_and_garbage_answers():
    assert "write your answer" in _ask(...).message
    assert "write your prediction" in _ask(None, what="prediction").message
    assert "expected a number" in _ask([1, 2]).message
    assert "between" in _ask(-3.0, bounds=Bounds(0, 1, "between 0 and 1")).message


def test_check_number_needs_an_exact_value_and_texts():
    with pytest.raises(ValueError, match="finite number"):
        check_number("q", 1.0, float("nan"), Tolerance(atol=1), hint="h", solution="s")
    with pytest.raises(ValueError, match="no hint and solution registered"):
        check_number("never_registered", 1.0, 1.0, Tolerance(atol=1))


def test_tolerance_in_words():
    assert str(Tolerance(atol=0.01)) == "±0.01"
    assert str(Tolerance(rtol=0.005)) == "±0.5 %"
    assert str(Tolerance(atol=1e-9, rtol=0.05)) == "±5 % (±1e-09 near 0)"
    assert Tolerance(rtol=0.1).allows(1.05, 1.0) and not Tolerance(rtol=0.01).allows(1.05, 1.0)
