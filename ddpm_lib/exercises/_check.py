"""The self-check harness behind every exercise.

A checker runs the learner's function and the library's reference on the same random inputs and
returns a :class:`CheckResult`. It never raises for a wrong answer (a notebook must keep running);
it explains what went wrong: an exception, a wrong shape, or the first input where the values
differ, with a hint, and (:func:`run_check_with_slips`) which typical slip the answer matches.
``bool(result)`` is ``result.passed``; the result displays itself in Jupyter.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import torch

__all__ = ["CheckResult", "run_check", "run_check_with_slips", "Case", "Slip"]


class Case(NamedTuple):
    """One test input: positional ``args`` for both functions and a short description."""

    args: tuple[Any, ...]
    description: str


class Slip(NamedTuple):
    """A typical wrong answer: ``wrong(*case.args)`` computes it; ``says`` explains it."""

    says: str
    wrong: Callable[..., Any]


class CheckResult(NamedTuple):
    """Outcome of a self-check: ``passed`` and a human-readable ``message``."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def _repr_html_(self) -> str:
        colour, mark = ("#1a7f37", "✔") if self.passed else ("#b35900", "✘")
        body = self.message.replace("&", "&amp;").replace("<", "&lt;").replace("\n", "<br>")
        return f'<div style="color:{colour};font-family:monospace">{mark} {body}</div>'

    def __repr__(self) -> str:
        return ("PASSED: " if self.passed else "NOT YET: ") + self.message


def run_check(
    name: str,
    learner: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Iterable[Case],
    hint: str,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> CheckResult:
    """Compare ``learner(*case.args)`` with ``reference(*case.args)`` on every case.

    Tensors are compared with ``torch.allclose(rtol, atol)``; tuples element by element.
    """
    if not callable(learner):
        return CheckResult(False, f"{name}: expected a function, got {type(learner).__name__}")
    cases = list(cases)
    for case in cases:
        try:
            got = learner(*_cloned(case.args))
        except NotImplementedError:
            return CheckResult(
                False, f"{name}: not implemented yet — replace the `raise` with your code."
            )
        except Exception as err:  # the learner's bug, reported rather than raised
            last = traceback.format_exception_only(type(err), err)[-1].strip()
            return CheckResult(False, f"{name} raised on {case.description}: {last}")
        want = reference(*case.args)
        problem = _compare(got, want, rtol, atol)
        if problem:
            return CheckResult(
                False, f"{name} is wrong on {case.description}: {problem}. Hint: {hint}"
            )
    return CheckResult(True, f"{name} matches the reference on all {len(cases)} test cases.")


def run_check_with_slips(
    name: str,
    learner: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Iterable[Case],
    hint: str,
    slips: Iterable[Slip],
) -> CheckResult:
    """:func:`run_check`; a wrong answer always gets the hint, and the first slip that reproduces
    the learner's answers on every case where the slip is defined (at least one) is named."""
    cases = list(cases)
    result = run_check(name, learner, reference, cases, hint)
    if result.passed or "not implemented" in result.message or not callable(learner):
        return result
    message = result.message if "Hint:" in result.message else f"{result.message}. Hint: {hint}"
    slip = _matching_slip(learner, cases, slips)
    return CheckResult(False, message if slip is None else f"{message}\nLikely slip: {slip.says}")


def _matching_slip(learner: Callable[..., Any], cases: list[Case], slips: Iterable[Slip]):
    try:
        answers = [learner(*_cloned(case.args)) for case in cases]
    except Exception:  # a learner that raises matches no slip
        return None
    for slip in slips:
        compared = 0
        for case, got in zip(cases, answers, strict=True):
            try:
                want = slip.wrong(*case.args)
            except Exception:  # the slip is undefined here (e.g. t + 1 > T): skip the case
                continue
            if _compare(got, want, 1e-5, 1e-6) is not None:
                break
            compared += 1
        else:
            if compared:
                return slip
    return None


def _cloned(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Fresh copies of the tensors, so that a learner writing into its input corrupts nothing."""
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


def _compare(got: Any, want: Any, rtol: float, atol: float) -> str | None:
    if isinstance(want, tuple):
        if not isinstance(got, tuple | list) or len(got) != len(want):
            return f"expected a tuple of {len(want)} values, got {type(got).__name__}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            problem = _compare(g, w, rtol, atol)
            if problem:
                return f"element {i}: {problem}"
        return None
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"expected a torch.Tensor, got {type(got).__name__}"
        # A variance may come back as a scalar or expanded to the data's shape: either is right.
        got_b = _broadcast_either(got, want)
        if got_b is None:
            return f"expected shape {list(want.shape)}, got {list(got.shape)}"
        got_b, want = got_b
        got_b = got_b.to(want.dtype)
        if not torch.allclose(got_b, want, rtol=rtol, atol=atol):
            diff = (got_b - want).abs()
            i = int(diff.flatten().argmax())
            return (
                f"largest difference {float(diff.flatten()[i]):.3g} at flat index {i} "
                f"(got {float(got_b.flatten()[i]):.6g}, expected {float(want.flatten()[i]):.6g})"
            )
        return None
    if isinstance(got, torch.Tensor):  # a number returned as a tensor is fine, a batch is not
        if got.numel() != 1:
            return f"expected a single number, got a tensor of shape {list(got.shape)}"
        got = got.item()
    if isinstance(want, float) and isinstance(got, int | float):
        if abs(got - want) > atol + rtol * abs(want):
            return f"expected {want:.6g}, got {got:.6g}"
        return None
    if got != want:
        return f"expected {want!r}, got {got!r}"
    return None


def _broadcast_either(a: torch.Tensor, b: torch.Tensor):
    """``(a, b)`` expanded to a common shape if one broadcasts *to* the other's shape, else None."""
    if a.shape == b.shape:
        return a, b
    for small, big, swap in ((a, b, False), (b, a, True)):
        try:
            expanded = torch.broadcast_to(small, big.shape)
        except RuntimeError:
            continue
        return (big, expanded) if swap else (expanded, big)
    return None
