"""The self-check harness behind every exercise, and its three tiers of help.

A checker runs the learner's function and the library's reference on the same inputs and returns a
:class:`CheckResult`. It never raises for a wrong answer (a notebook must keep running). Help comes
in three tiers, so that a student is never shown the answer before asking for it:

1. the failure itself says *where* the answer is wrong and names the **kind** of mistake it matches
   (a missing square root, ``t`` off by one, the learner's own noise drawn, ...) -- never the formula;
2. ``hint(name)`` (or ``result.hint()``) gives a hint: what to think about, still not the formula;
3. ``solution(name)`` (or ``result.solution()``) shows the formula and a line of code.

``bool(result)`` is ``result.passed``; a result, a hint and a solution display themselves in Jupyter.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from html import escape
from typing import Any, NamedTuple

import torch

from .. import schedule
from ._compare import as_number as as_number
from ._compare import compare


class Kind:
    """The kinds of mistake a check names (the first tier of help). Each is a short label; the
    explanation that follows it in a failure message is specific to the exercise."""

    MISSING_SQRT = "missing square root"
    VAR_VS_STD = "variance vs standard deviation"
    OFF_BY_ONE = "t off by one"
    OWN_NOISE = "own noise drawn instead of the given one"
    WRONG_SIGN = "wrong sign"
    SWAPPED = "swapped coefficients"
    MISSING_FACTOR = "missing factor or term"
    ADDED_STDS = "standard deviations added instead of variances"
    WRONG_QUANTITY = "a different quantity"
    INDEX_ZERO = "index 0 (the clean data) missing"
    SHAPE = "shapes do not broadcast"
    NO_RETURN = "no return value"
    PRECISION = "too little floating-point precision"
    APPROXIMATION = "an approximation, not the exact value"
    WRONG_PARAMETERS = "wrong parameters"


class Case(NamedTuple):
    """One test input: positional ``args`` for both functions and a short description."""

    args: tuple[Any, ...]
    description: str


class Slip(NamedTuple):
    """A typical wrong answer: ``wrong(*case.args)`` computes it; ``kind`` (a :class:`Kind` label)
    names it and ``says`` explains it, without giving the right formula away."""

    kind: str
    says: str
    wrong: Callable[..., Any]


class Crash(NamedTuple):
    """A typical exception: ``matches(err)`` recognises it; ``kind``/``says`` as for :class:`Slip`."""

    kind: str
    says: str
    matches: Callable[[BaseException], bool]


class Reveal(NamedTuple):
    """A hint or a solution: ``str()`` is the text; it displays itself in Jupyter."""

    title: str
    text: str

    def __str__(self) -> str:
        return f"{self.title}\n{self.text}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        body = escape(self.text, quote=False).replace("\n", "<br>")
        return (
            f'<div style="border-left:3px solid #0969da;padding:0.2em 0.8em">'
            f"<b>{escape(self.title, quote=False)}</b><br><span style='font-family:monospace'>{body}</span></div>"
        )


class Exercise(NamedTuple):
    """What :func:`hint` and :func:`solution` show for the exercise ``name``."""

    name: str
    hint: str
    solution: str


_EXERCISES: dict[str, Exercise] = {}
_LAST: list[str] = []  # [the name of the exercise checked last]


def register(name: str, hint_text: str, solution_text: str) -> Exercise:
    """Make ``hint(name)`` and ``solution(name)`` show these texts (a later call replaces them)."""
    exercise = Exercise(name, hint_text, solution_text)
    _EXERCISES[name] = exercise
    return exercise


def registered(name: str) -> bool:
    """Whether :func:`register` has given ``name`` a hint and a solution."""
    return name in _EXERCISES


def _lookup(name: str | None) -> Exercise:
    if name is None:
        if not _LAST:
            raise ValueError("no exercise has been checked yet: pass its name, e.g. hint('q_step')")
        name = _LAST[-1]
    if name not in _EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; known: {sorted(_EXERCISES)}")
    return _EXERCISES[name]


def hint(name: str | None = None) -> Reveal:
    """The hint for exercise ``name`` (default: the exercise checked last). It says what to think
    about and never gives the formula: that is :func:`solution`."""
    exercise = _lookup(name)
    return Reveal(f"Hint for {exercise.name}:", exercise.hint)


def solution(name: str | None = None) -> Reveal:
    """The formula (and a line of code) for exercise ``name`` (default: the one checked last)."""
    exercise = _lookup(name)
    return Reveal(f"Solution of {exercise.name}:", exercise.solution)


class CheckResult(NamedTuple):
    """Outcome of a self-check: ``passed``, a human-readable ``message`` (the first tier of help:
    what is wrong and the kind of mistake), the exercise ``name`` and the ``kind`` of mistake found
    (a :class:`Kind` label, or ``None``). ``hint()`` and ``solution()`` give the next tiers."""

    passed: bool
    message: str
    name: str = ""
    kind: str | None = None

    def __bool__(self) -> bool:
        return self.passed

    def hint(self) -> Reveal:
        """The second tier: a hint, still without the formula."""
        return hint(self.name)

    def solution(self) -> Reveal:
        """The third tier: the formula."""
        return solution(self.name)

    def _repr_html_(self) -> str:
        colour, mark = ("#1a7f37", "✔") if self.passed else ("#b35900", "✘")
        body = escape(self.message, quote=False).replace("\n", "<br>")
        return f'<div style="color:{colour};font-family:monospace">{mark} {body}</div>'

    def __repr__(self) -> str:
        return ("PASSED: " if self.passed else "NOT YET: ") + self.message


def stuck(name: str) -> str:
    """The line every failure ends with: how to ask for the next tiers."""
    return f'Stuck? hint("{name}") gives a hint; solution("{name}") shows the formula.'


def failed(name: str, text: str, kind: str | None = None, says: str = "") -> CheckResult:
    """A failed :class:`CheckResult` whose message ends with the named mistake and :func:`stuck`."""
    _LAST[:] = [name]
    lines = [text]
    if kind is not None:
        lines.append(f"Likely mistake ({kind}): {says}")
    lines.append(stuck(name))
    return CheckResult(False, "\n".join(lines), name, kind)


def passed(name: str, text: str) -> CheckResult:
    _LAST[:] = [name]
    return CheckResult(True, text, name, None)


# ------------------------------------------------------------------------------- the harness
_DEFAULT_CRASHES = (
    Crash(
        Kind.OFF_BY_ONE,
        "an index ran past the end of a tensor: is a step index shifted by one (t + 1 where the "
        "schedule already counts from index 0 = clean data)?",
        lambda err: isinstance(err, IndexError) and "out of bounds" in str(err),
    ),
    Crash(
        Kind.SHAPE,
        "two tensors of different shapes were combined: a per-step number (one per image, shape "
        "[B]) must be reshaped so that it broadcasts against the images.",
        lambda err: isinstance(err, RuntimeError) and "must match the size" in str(err),
    ),
)


def run_check(
    name: str,
    learner: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Iterable[Case],
    *,
    slips: Iterable[Slip] = (),
    crashes: Iterable[Crash] = (),
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> CheckResult:
    """Compare ``learner(*case.args)`` with ``reference(*case.args)`` on every case.

    Tensors are compared with a tolerance ``rtol``/``atol`` (loosened to the precision of a
    lower-precision answer), tuples element by element; a number may come back as a Python number,
    a one-element tensor or a NumPy scalar, a tensor as a NumPy array or a list. On a wrong answer
    the message names the first case that fails and the kind of mistake: the learner's function is
    random (it draws its own noise), it returns nothing, it lost precision, or it reproduces one of
    ``slips`` on every case where that slip is defined; an exception is matched against
    ``crashes`` and a few common ones."""
    if not callable(learner):
        return failed(name, f"{name}: expected a function, got {type(learner).__name__}")
    cases = list(cases)
    for case in cases:
        try:
            got = learner(*_cloned(case.args))
        except NotImplementedError:
            return failed(
                name, f"{name}: not implemented yet — replace the `raise` with your code."
            )
        except Exception as err:  # the learner's bug, reported rather than raised
            last = traceback.format_exception_only(type(err), err)[-1].strip()
            crash = next((c for c in (*crashes, *_DEFAULT_CRASHES) if _safe(c.matches, err)), None)
            text = f"{name} raised on {case.description}: {last}"
            return failed(name, text, *((crash.kind, crash.says) if crash else ()))
        want = reference(*case.args)
        problem = compare(got, want, rtol, atol)
        if problem:
            text = f"{name} is not right yet on {case.description}: {problem}."
            return failed(
                name, text, *_diagnose(learner, case, got, want, cases, slips, rtol, atol)
            )
    return passed(name, f"{name} matches the reference on all {len(cases)} test cases.")


def _safe(predicate: Callable[..., bool], *args: Any) -> bool:
    try:
        return bool(predicate(*args))
    except Exception:
        return False


def _diagnose(learner, case, got, want, cases, slips, rtol, atol) -> tuple[str, str] | tuple[()]:
    """The kind of mistake behind a wrong answer ``got`` on ``case``, as ``(kind, says)``."""
    if got is None or (isinstance(got, tuple | list) and any(g is None for g in got)):
        return Kind.NO_RETURN, "your function returns None: is a `return` statement missing?"
    try:
        again = learner(*_cloned(case.args))
    except Exception:
        again = None
    if again is not None and compare(again, got, 1e-6, 1e-7, equal_nan=True) is not None:
        return Kind.OWN_NOISE, (
            "your function returns different values for the same inputs, so it draws random "
            "numbers of its own. Use the noise passed in as an argument, and draw nothing."
        )
    slip = _matching_slip(learner, cases, slips, rtol, atol)
    if slip is not None:
        return slip.kind, slip.says
    if _low_precision(got):
        return Kind.PRECISION, (
            "your answer is computed in a 16-bit (or coarser) float type, which cannot resolve it: "
            "compute in float32 or float64 (schedules are float64 for a reason: 1 - beta_t for a "
            "small beta_t rounds to 1 in float16)."
        )
    if _single_precision(got) and compare(got, want, 1e-2, 1e-3) is None:
        return Kind.PRECISION, (
            "your answer is close but computed in float32, which loses digits where a small "
            "number is the difference of two numbers near 1 (1 - alpha_bar_t at small t): keep "
            "the schedule in float64, as it is given."
        )
    return ()


def _single_precision(x: Any) -> bool:
    if isinstance(x, tuple | list):
        return any(_single_precision(v) for v in x)
    return isinstance(x, torch.Tensor) and x.dtype == torch.float32


def _low_precision(x: Any) -> bool:
    if isinstance(x, tuple | list):
        return any(_low_precision(v) for v in x)
    return isinstance(x, torch.Tensor) and x.is_floating_point() and torch.finfo(x.dtype).bits <= 16


def _matching_slip(learner, cases: list[Case], slips: Iterable[Slip], rtol: float, atol: float):
    """The first slip that reproduces the learner's answer on every case where both are defined
    (the slip may raise, e.g. at ``t + 1 > T``; the learner may raise too); at least one case."""
    answers = []
    for case in cases:
        try:
            answers.append(learner(*_cloned(case.args)))
        except Exception:
            answers.append(_RAISED)
    for slip in slips:
        compared = 0
        for case, got in zip(cases, answers, strict=True):
            if got is _RAISED:
                continue
            try:
                want = slip.wrong(*case.args)
            except Exception:  # the slip is undefined here: skip the case
                continue
            if compare(got, want, rtol, atol, equal_nan=True) is not None:
                break
            compared += 1
        else:
            if compared:
                return slip
    return None


_RAISED = object()


def _cloned(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Fresh copies of the tensors, so that a learner writing into its input corrupts nothing."""
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


def reference_schedules() -> list[tuple[str, torch.Tensor]]:
    """The schedules a function check runs on, as ``(label, betas)``: the paper's linear and the
    cosine schedule (T = 1000), and a coarse one with large betas, on which every slip shows up
    far above the tolerance."""
    return [
        ("the linear schedule (T = 1000)", schedule.linear_betas(1000)),
        ("the cosine schedule (T = 1000)", schedule.cosine_betas(1000)),
        ("a coarse schedule (T = 8, beta from 0.05 to 0.4)", schedule.linear_betas(8, 0.05, 0.4)),
    ]
