"""What the exercise tests share: the pieces of each answer that a failure message or a hint must
never contain (the third tier, ``solution(name)``, is the only place for them), and the diagnosis
a failure carries, so that a test checks which mistake was found, not how the message words it."""

from __future__ import annotations

import re

from ddpm_lib.exercises import CheckResult, Kind, hint, solution

# Pieces of each exercise's formula or code, compared without spaces and case.
ANSWER_FRAGMENTS: dict[str, tuple[str, ...]] = {
    "q_step": ("sqrt(alpha_t) * x_{t-1} + sqrt(beta_t)", "(1 - beta_t).sqrt() * x_prev",
               "beta_t.sqrt() * noise"),
    "variance_trajectory": ("(1 - beta_t) * Var x_{t-1} + beta_t", "alpha_bar_t * (1 - var0)",
                            "(1 - betas[t]) * v[t - 1] + betas[t]"),
    "marginal_pdf": ("sqrt(alpha_bar_t) * means[k]", "alpha_bar_t * stds[k]**2 + 1 - alpha_bar_t",
                     "alpha_bar_t * stds**2 + 1 - alpha_bar_t"),
    "alpha_bars": ("prod_{s=1}^{t} (1 - beta_s)", "torch.cumprod(1 - betas"),
    "q_sample": ("sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t)", "abar.sqrt() * x0",
                 "(1 - abar).sqrt() * eps"),
    "snr_crossing": ("alpha_bar_t / (1 - alpha_bar_t)", "alpha_bars[1:] / (1 - alpha_bars[1:])"),
    "q_posterior": ("sqrt(abar_{t-1}) beta_t / (1 - abar_t)",
                    "sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t)",
                    "(1 - abar_{t-1}) / (1 - abar_t) * beta_t"),
    "mu_tilde_from_eps": ("beta_t / sqrt(1 - abar_t) * eps", "/ sqrt(alpha_t)"),
    "beta_tilde": ("(1 - abar_{t-1}) / (1 - abar_t) * beta_t",
                   "(1 - ab[:-1]) / (1 - ab[1:]) * betas[1:]"),
    "variance_prediction": ("1 - alpha_bar_t * (1 - v0)", "d.variance_trajectory(v0)[t]"),
    "variance_step": ("(1 - beta_t) * Var x_{t-1} + beta_t",),
    "merged_variance": ("alpha_t * beta_{t-1} + beta_t", "1 - alpha_t * alpha_{t-1}"),
    "alpha_bar_T": ("prod_{t=1}^{T} (1 - beta_t)", "torch.cumprod(1 - betas, 0)[200]"),
    "snr_crossing_prediction": ("(1 + s)/2 - s", "first_t_snr_below(1.0)"),
    "beta_tilde_value": ("(1 - abar_{t-1}) / (1 - abar_t) * beta_t",
                         "1 / (alpha_t / beta_t + 1 / (1 - abar_{t-1}))"),
    "posterior_std_prediction": ("sqrt((1 - abar_{t-1}) / (1 - abar_t) * beta_t)",
                                 "beta_tildes[t].sqrt()"),
}  # fmt: skip


def _flat(text: str) -> str:
    return "".join(text.split()).lower()


def exact_strings(value: float) -> list[str]:
    """How a number could be printed: what a failure must not show when it is the answer."""
    return [f"{value:.3g}", f"{value:.4g}", f"{value:.6g}", repr(value)]


def assert_reveals_nothing(result: CheckResult, name: str, exact: float | None = None) -> None:
    """Neither the failure message nor ``hint(name)`` contains a piece of the answer (and, for a
    number, neither shows the exact value); ``solution(name)`` does contain them, so the test
    compares against the real answer text."""
    assert not result.passed and result.name == name
    shown = {"the failure": result.message, "the hint": str(hint(name))}
    answer = _flat(str(solution(name)))
    for fragment in ANSWER_FRAGMENTS[name]:
        assert _flat(fragment) in answer, f"{fragment!r} is not in the solution of {name}"
        for where, text in shown.items():
            assert _flat(fragment) not in _flat(text), f"{where} of {name} shows {fragment!r}"
    if exact:  # (an exact 0 cannot be told from the zeros of ordinary text)
        for where, text in shown.items():
            numbers = set(re.findall(r"[-+]?\d*\.?\d+(?:e[-+]?\d+)?", text))
            for printed in exact_strings(exact):
                assert printed not in numbers, f"{where} of {name} shows the exact value {printed}"


#: Every label a check may name a mistake with.
KINDS = tuple(v for k, v in vars(Kind).items() if k.isupper())


def diagnosis(result: CheckResult) -> str:
    """The explanation of the mistake a failure diagnosed: the line of its message that names
    ``result.kind`` ("" when no kind was found). Two failures with equal diagnoses were told the
    same thing about the same mistake; a test compares diagnoses instead of quoting their words."""
    if result.kind is None:  # then no line may name a kind either
        assert not any(f"({kind})" in result.message for kind in KINDS), result.message
        return ""
    (line,) = [line for line in result.message.splitlines() if f"({result.kind})" in line]
    return line


def assert_diagnosed(result: CheckResult, name: str, kind: str) -> None:
    """A failure of exercise ``name`` that names the mistake ``kind`` and says how to get the next
    tier of help (``hint("name")``), whatever the wording around them."""
    assert not result.passed and result.name == name, result.message
    assert result.kind == kind and diagnosis(result), result.message
    assert f'hint("{name}")' in result.message, result.message


def assert_same_slip(check, slip, rewritten, *others) -> None:
    """``check`` diagnoses ``slip`` (a wrong function) and the same slip ``rewritten`` another way
    alike, and each of ``others`` (other wrong functions, e.g. of the same kind) differently."""
    first, again = check(slip), check(rewritten)
    assert first.kind is not None and diagnosis(first) == diagnosis(again), again.message
    for other in others:
        assert diagnosis(check(other)) != diagnosis(first), check(other).message
