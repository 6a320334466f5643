"""Self-check functions for the book's exercises: ``check_*(your_function) -> CheckResult``.

Each checker tests a learner's function against ``ddpm_lib``'s reference on random inputs and says
what is wrong; it never raises for a wrong answer, so a notebook keeps running.
"""

from ._check import CheckResult

__all__ = ["CheckResult"]
