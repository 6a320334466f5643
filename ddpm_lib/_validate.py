"""Input checks shared by the public API.

Every public function validates at its boundary and raises ``ValueError`` (or ``TypeError`` for a wrong
type) naming the offending value and the allowed range, so a learner sees *what* was wrong instead of a
shape error deep inside a broadcast."""

from __future__ import annotations

import numbers

import torch

TimeLike = int | torch.Tensor


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a ValueError listing them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value  # type: ignore[return-value]


def _is_compiling() -> bool:
    is_compiling = getattr(torch.compiler, "is_compiling", None)
    return bool(is_compiling()) if is_compiling is not None else False


def check_t(t: TimeLike, lo: int, hi: int, name: str = "t", *, sync: bool = True) -> TimeLike:
    """Check a step index (or any integer index, e.g. class labels) against ``lo <= t <= hi``.

    ``t`` is a Python or NumPy int (one step for the whole batch) or an integer tensor of shape
    ``[]`` or ``[B]`` (one step per example). Returns an ``int``, or a ``LongTensor`` of the same
    shape on the same device. Raises TypeError for a bool, a float or any other type, ValueError for
    a value out of range, a tensor of more than one dimension or an empty one.

    ``sync=False`` is for code that runs once per network call (the U-Net): reading a tensor's
    values back costs a device sync on a GPU and a graph break under ``torch.compile``, so the range
    is then checked only for CPU tensors outside compilation (an out-of-range index on a GPU still
    fails, later, inside the embedding lookup)."""
    if isinstance(t, bool):
        raise TypeError(f"{name} must be an int or an integer tensor, got a bool ({t!r})")
    if isinstance(t, numbers.Integral):
        if not lo <= t <= hi:
            raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {t}")
        return int(t)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be an int or an integer tensor, got {type(t).__name__}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor (e.g. torch.long), got dtype {t.dtype}")
    if t.dim() > 1:
        raise ValueError(f"{name} must have shape [] or [B], got shape {list(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    if sync or (t.device.type == "cpu" and not _is_compiling()):
        t_min, t_max = int(t.min()), int(t.max())
        if t_min < lo or t_max > hi:
            bad = t_min if t_min < lo else t_max
            raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {bad}")
    return t.long()


def check_tensor(name: str, x: object) -> torch.Tensor:
    """Raise a TypeError unless ``x`` is a floating-point tensor with a batch dimension."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < 1:
        raise ValueError(f"{name} must have a batch dimension (shape [B, ...]), got shape []")
    return x


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise a ValueError unless ``a`` and ``b`` have exactly the same shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_b} must have the same shape as {name_a} ({list(a.shape)}), got {list(b.shape)}"
        )


def check_eps(eps: object, x_t: torch.Tensor) -> torch.Tensor:
    """A model's prediction must be a tensor of exactly ``x_t``'s shape: broadcasting a wrong one
    (e.g. ``[B, 1]`` against ``[B, 2]``) would run silently and give wrong samples."""
    if not isinstance(eps, torch.Tensor) or eps.shape != x_t.shape:
        got = list(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__
        raise ValueError(f"model(x_t, t) must return eps of shape {list(x_t.shape)}, got {got}")
    return eps


def check_batch(t: int | torch.Tensor, x: torch.Tensor, name: str = "x") -> None:
    """A per-example ``t`` of shape [B] must match the batch dimension of ``x``."""
    if isinstance(t, torch.Tensor) and t.dim() == 1 and t.shape[0] not in (1, x.shape[0]):
        raise ValueError(
            f"t has {t.shape[0]} entries but {name} has batch size {x.shape[0]} "
            f"(shape {list(x.shape)}); t must be an int, shape [], [1] or [{x.shape[0]}]"
        )


def check_steps(ts, lo: int, hi: int, name: str = "ts") -> tuple[int, ...]:
    """A non-empty, strictly increasing sequence of integer steps in ``[lo, hi]``, as ints."""
    ts = tuple(ts)
    if not ts:
        raise ValueError(f"{name} must name at least one step")
    for t in ts:
        if isinstance(t, bool) or not isinstance(t, numbers.Integral):
            raise TypeError(f"every t in {name} must be an int, got {t!r}")
        if not lo <= t <= hi:
            raise ValueError(f"every t in {name} must be in [{lo}, {hi}], got {t}")
    if any(b <= a for a, b in zip(ts, ts[1:], strict=False)):
        raise ValueError(f"{name} must be strictly increasing, got {list(ts)}")
    return tuple(int(t) for t in ts)


def check_time(
    t: object, hi: int, name: str = "t", *, sync: bool = True
) -> int | float | torch.Tensor:
    """A time for an ε-network: a step index (what :func:`check_t` accepts, in ``[0, hi]``) or a
    *continuous* time in ``[0, hi]``, a Python float or a floating-point tensor ``[]``/``[B]``
    (what the SDE and ODE samplers of :mod:`ddpm_lib.sde` pass; see :class:`ddpm_lib.sde.VPSDE`).
    Returns an int, a float, a LongTensor or a floating tensor. ``sync=False`` as in
    :func:`check_t`."""
    if isinstance(t, float):
        if not 0.0 <= t <= hi:
            raise ValueError(f"{name} must be in [0, {hi}], got {t}")
        return t
    if isinstance(t, torch.Tensor) and t.dtype.is_floating_point:
        if t.dim() > 1:
            raise ValueError(f"{name} must have shape [] or [B], got shape {list(t.shape)}")
        if t.numel() == 0:
            raise ValueError(f"{name} must not be empty")
        if sync or (t.device.type == "cpu" and not _is_compiling()):
            t_min, t_max = float(t.min()), float(t.max())
            if not (0.0 <= t_min and t_max <= hi):
                raise ValueError(f"{name} must be in [0, {hi}], got values in [{t_min}, {t_max}]")
        return t
    return check_t(t, 0, hi, name, sync=sync)  # type: ignore[arg-type]


def batch_index(
    name: str, value: object, B: int, device: torch.device, hi: int, *, continuous: bool = False
) -> torch.Tensor:
    """A per-example index for a network's forward pass: an int or integer tensor ``[]``/``[B]``
    in ``0..hi`` (with ``continuous=True`` also a float or floating tensor in ``[0, hi]``, a
    continuous time) -> a tensor ``[B]`` on ``device``. Runs on every forward pass, so it never
    reads GPU values back (``sync=False``)."""
    if continuous:
        value = check_time(value, hi, name, sync=False)
    else:
        value = check_t(value, 0, hi, name, sync=False)  # type: ignore[arg-type]
    if isinstance(value, int | float):
        dtype = torch.long if isinstance(value, int) else torch.float32
        return torch.full((B,), value, dtype=dtype, device=device)
    if value.dim() == 0:
        value = value.expand(B)
    if value.shape[0] != B:
        raise ValueError(f"{name} must have shape [{B}] (or []), got {list(value.shape)}")
    return value.to(device)


def check_int(name: str, value: object, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) in ``[lo, hi]`` (either bound may be
    None), else a ValueError naming ``name``, the value and the allowed range. The one integer
    check of the package: sizes, step counts, seeds."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be an int{_interval(lo, hi)}, got {value!r}")
    return int(value)  # type: ignore[arg-type]


def check_number(
    name: str,
    value: object,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """``value`` as a ``float`` if it is a finite real number (not a bool) in the interval from
    ``lo`` to ``hi`` (closed unless ``lo_open``/``hi_open``; either bound may be None), else a
    ValueError naming ``name``, the value and the allowed interval. The one number check of the
    package: scales, rates, tolerances."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = v == v and v not in (float("inf"), float("-inf"))
        if ok and lo is not None:
            ok = v > lo if lo_open else v >= lo
        if ok and hi is not None:
            ok = v < hi if hi_open else v <= hi
    if not ok:
        kind = _interval(lo, hi, lo_open, hi_open)
        raise ValueError(f"{name} must be a finite number{kind}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _interval(lo, hi, lo_open: bool = False, hi_open: bool = False) -> str:
    """The allowed range in words, as the errors of check_int and check_number print it."""
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {hi}"
    return ""
