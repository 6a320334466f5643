"""Comparing a learner's answer with the reference: every form an answer may take (a Python number,
a NumPy scalar or array, a list, a tensor of any float dtype), judged at the precision of its dtype."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch


def as_number(x: Any) -> float | None:
    """``x`` as a float if it is one number in any form a learner may write (int, float, a NumPy
    scalar, a one-element tensor or array of any dtype), else None. Bools are not numbers here."""
    if isinstance(x, bool):
        return None
    if isinstance(x, numbers.Real):
        return float(x)
    if isinstance(x, torch.Tensor):
        return float(x.detach().double().item()) if x.numel() == 1 else None
    if hasattr(x, "__array__") and hasattr(x, "size") and getattr(x, "size", 0) == 1:
        try:
            return float(x.reshape(-1)[0])  # a NumPy array or scalar
        except (TypeError, ValueError, AttributeError):
            return None
    return None


def _as_tensor(x: Any) -> torch.Tensor | None:
    """A learner's tensor-valued answer as a tensor: a tensor, a NumPy array, a number or a list
    of numbers; None if it is none of those."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    number = as_number(x)
    if number is not None:
        return torch.tensor(number, dtype=torch.float64)
    if hasattr(x, "__array__") or isinstance(x, list | tuple):
        try:
            if isinstance(x, list | tuple) and all(isinstance(v, torch.Tensor) for v in x):
                return torch.stack([v.detach().double().reshape(()) for v in x])
            return torch.as_tensor(x, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            return None
    return None


# How far an answer may be off, in units of its dtype's machine epsilon: an answer computed in
# float32 or float16/bfloat16 is judged at that precision (float8 answers are not: too coarse).
_ULPS = {torch.float32: 16, torch.float16: 8, torch.bfloat16: 8}


def _tolerances(got: torch.Tensor, rtol: float, atol: float) -> tuple[float, float]:
    """``rtol``/``atol`` loosened to what ``got``'s dtype can resolve."""
    if got.dtype in _ULPS:
        slack = _ULPS[got.dtype] * torch.finfo(got.dtype).eps
        return max(rtol, slack), max(atol, slack)
    return rtol, atol


def compare(
    got: Any, want: Any, rtol: float = 1e-5, atol: float = 1e-6, equal_nan: bool = False
) -> str | None:
    """None if ``got`` equals ``want`` within the tolerances, else what differs, in words.
    ``equal_nan``: a NaN matches a NaN (to recognise a slip that divides by zero where the
    learner's answer does too)."""
    if isinstance(want, tuple):
        if not isinstance(got, tuple | list) or len(got) != len(want):
            what = type(got).__name__ if not isinstance(got, tuple | list) else f"{len(got)} values"
            return f"expected a tuple of {len(want)} values, got {what}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            problem = compare(g, w, rtol, atol, equal_nan)
            if problem:
                return f"element {i}: {problem}"
        return None
    if isinstance(want, torch.Tensor):
        got_t = _as_tensor(got)
        if got_t is None:
            return f"expected a torch.Tensor, got {type(got).__name__}"
        if not (got_t.is_floating_point() or want.is_floating_point()):
            if got_t.shape != want.shape or not torch.equal(got_t, want.to(got_t.dtype)):
                return f"expected {want.tolist()}, got {got_t.tolist()}"
            return None
        # A variance may come back as a scalar or expanded to the data's shape: either is right.
        pair = _broadcast_either(got_t, want)
        if pair is None:
            return f"expected shape {list(want.shape)}, got {list(got_t.shape)}"
        rtol, atol = _tolerances(got_t, rtol, atol)
        got_b, want_b = (v.double() for v in pair)
        if got_b.numel() == 0:
            return None
        if not torch.allclose(got_b, want_b, rtol=rtol, atol=atol, equal_nan=equal_nan):
            diff = (got_b - want_b).abs().nan_to_num(nan=math.inf)
            i = int(diff.flatten().argmax())
            return (
                f"largest difference {float(diff.flatten()[i]):.3g} at flat index {i} "
                f"(got {float(got_b.flatten()[i]):.6g}, expected {float(want_b.flatten()[i]):.6g})"
            )
        return None
    if isinstance(want, bool) or not isinstance(want, numbers.Real):
        return None if got == want else f"expected {want!r}, got {got!r}"
    if isinstance(got, torch.Tensor) and got.numel() != 1:
        return f"expected a single number, got a tensor of shape {list(got.shape)}"
    number = as_number(got)
    if number is None:
        return f"expected a number, got {type(got).__name__}"
    if isinstance(want, numbers.Integral):
        if not math.isfinite(number) or number != int(number):
            return f"expected a whole number, got {number:g}"
        return None if int(number) == int(want) else f"expected {int(want)}, got {int(number)}"
    if not abs(number - float(want)) <= atol + rtol * abs(float(want)):
        return f"expected {float(want):.6g}, got {number:.6g}"
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
