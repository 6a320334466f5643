"""Questions whose answer is one number: "predict, then run" and derivations with a numeric answer.

The student writes a number; :func:`check_number` compares it with the exact value (computed by the
library, never typed in) within the tolerance the question states. A wrong number is compared with
the values that typical mistakes produce (:class:`Wrong`) and the nearest one within the tolerance
is named -- "that is a standard deviation", "that is the value at t - 1" -- without ever printing the
exact value; ``hint(name)`` and ``solution(name)`` give the next tiers (see :mod:`._check`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

from ._check import CheckResult, as_number, failed, passed, register, registered


class Tolerance(NamedTuple):
    """An answer ``a`` is right if ``|a - exact| <= atol + rtol * |exact|``."""

    atol: float = 0.0
    rtol: float = 0.0

    def allows(self, answer: float, value: float) -> bool:
        return abs(answer - value) <= self.atol + self.rtol * abs(value)

    def __str__(self) -> str:
        if self.atol and self.rtol:
            return f"±{100 * self.rtol:g} % (±{self.atol:g} near 0)"
        if self.rtol:
            return f"±{100 * self.rtol:g} %"
        return f"±{self.atol:g}" if self.atol else "exactly"


class Wrong(NamedTuple):
    """The number a typical mistake gives: ``kind`` (a :class:`~._check.Kind` label) and ``says``
    (what went wrong, without the formula)."""

    kind: str
    says: str
    value: float


class Bounds(NamedTuple):
    """Where any sensible answer lies, and why (e.g. a variance is >= 0)."""

    low: float
    high: float
    why: str


#: The bounds of any variance.
VARIANCE = Bounds(0.0, math.inf, "A variance cannot be negative.")


def check_number(
    name: str,
    answer: Any,
    exact: Any,
    tolerance: Tolerance,
    *,
    wrong: Iterable[Wrong] = (),
    hint: str | None = None,
    solution: str | None = None,
    what: str = "answer",
    bounds: Bounds | None = None,
) -> CheckResult:
    """Check a number ``answer`` against ``exact`` within ``tolerance``.

    ``answer`` may be an int, a float, a NumPy scalar or a one-element tensor of any dtype;
    ``None`` or ``...`` (a blank left in the notebook) asks the student to write a number first.
    A failure never contains ``exact``: it names the nearest typical mistake in ``wrong`` that is
    within ``tolerance`` of the answer (mistakes whose value is itself within ``tolerance`` of the
    exact value are ignored: they cannot be told apart from a right answer; of two mistakes that
    give the same number, the one listed first is named), or else says whether
    the answer is too large or too small (and, with ``bounds``, whether it is even possible).
    ``hint``/``solution`` are what ``hint(name)``/``solution(name)`` then show (default: the texts
    registered for ``name`` with :func:`~._check.register`)."""
    if hint is not None or solution is not None:
        register(name, hint or "", solution or "")
    elif not registered(name):
        raise ValueError(f"{name}: no hint and solution registered; pass hint= and solution=")
    exact = as_number(exact)
    if exact is None or not math.isfinite(exact):
        raise ValueError(f"{name}: the exact value must be a finite number, got {exact!r}")
    if answer is None or answer is Ellipsis:
        return failed(name, f"{name}: write your {what} (a number) first, then run the cell again.")
    number = as_number(answer)
    if number is None:
        return failed(name, f"{name}: expected a number, got {type(answer).__name__} {answer!r}")
    if not math.isfinite(number):
        return failed(name, f"{name}: {number} is not a finite number.")
    if tolerance.allows(number, exact):
        return passed(name, f"{name}: {number:.6g} is right (exact value {exact:.6g}; the "
                            f"tolerance is {tolerance}).")  # fmt: skip
    text = f"{name}: {number:.6g} is not right yet (the tolerance is {tolerance})."
    distinct: list[Wrong] = []  # of two mistakes that give the same number, the first is named
    for w in wrong:
        if math.isfinite(w.value) and not tolerance.allows(w.value, exact):
            if not any(tolerance.allows(w.value, d.value) for d in distinct):
                distinct.append(w)
    candidates = [w for w in distinct if tolerance.allows(number, w.value)]
    if candidates:
        closest = min(candidates, key=lambda w: abs(number - w.value))
        return failed(name, text, closest.kind, closest.says)
    if bounds is not None and not bounds.low <= number <= bounds.high:
        return failed(name, f"{text} {bounds.why}")
    return failed(name, f"{text} It is too {'large' if number > exact else 'small'}.")
