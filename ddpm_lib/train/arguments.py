"""The checks at the boundary of :func:`ddpm_lib.train.train`, shared with its command line.

Every check raises :class:`ParameterError`, a ``ValueError`` that carries the name of the
offending parameter, so ``python -m ddpm_lib.train`` can name the flag that set it without
parsing the message."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ddpm_lib import io
from ddpm_lib._validate import check_int, check_number


class ParameterError(ValueError):
    """A bad value of the parameter ``param`` of :func:`ddpm_lib.train.train`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def check_positive(name: str, value: object, integer: bool) -> None:
    """``value`` must be an int >= 1 (``integer``) or a finite number > 0
    (:func:`ddpm_lib._validate.check_int` / ``check_number``), else a :class:`ParameterError`."""
    try:
        check_int(name, value, 1) if integer else check_number(name, value, 0, lo_open=True)
    except ValueError as err:
        raise ParameterError(name, str(err)) from None


def check_run_dir(out_dir: str | os.PathLike[str], resume: bool) -> Path:
    """The rules of a run directory; returns the path of its checkpoint.

    A new run (``resume=False``) never overwrites a directory that holds one; ``resume=True``
    needs the checkpoint to continue from; a file is never a run directory."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ParameterError("out_dir", f"out_dir {str(out)!r} exists and is not a directory")
    ckpt = out / io.CHECKPOINT_FILE
    if resume and not ckpt.is_file():
        raise ParameterError(
            "resume", f"resume=True but there is no checkpoint {ckpt} to resume from"
        )
    existing = [p.name for p in (ckpt, out / io.MODEL_FILE) if p.exists()]
    if not resume and existing:
        raise ParameterError(
            "out_dir",
            f"{out} already holds a run ({', '.join(existing)}); pass resume=True (CLI: "
            f"--resume) to continue it, or choose another directory: a run is never overwritten",
        )
    return ckpt


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> CUDA if available, else CPU; a named device is checked to exist."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ParameterError(
            "device", f"device {device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:0', ..."
        ) from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError(
                "device", f"device {str(dev)!r} asked for, but CUDA is not available; use 'cpu'"
            )
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if not 0 <= index < torch.cuda.device_count():
            raise ParameterError(
                "device", f"device {str(dev)!r}: there are {torch.cuda.device_count()} GPUs"
            )
        return torch.device("cuda", index)
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ParameterError(
            "device", "device 'mps' asked for, but MPS is not available; use 'cpu'"
        )
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ParameterError(
            "device", f"device {str(dev)!r} is not supported; use 'cpu', 'cuda' or 'mps'"
        )
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """``config.precision`` -> the one used: 'auto' is bf16 on a GPU with compute capability >= 8,
    fp16 (+ GradScaler) on an older GPU (e.g. a T4), fp32 elsewhere. An explicit value the device
    cannot do raises a :class:`ParameterError` for ``precision``."""
    if device.type == "cuda":
        bf16_ok = torch.cuda.get_device_capability(device)[0] >= 8
        if precision == "auto":
            return "bf16" if bf16_ok else "fp16"
        if precision == "bf16" and not bf16_ok:
            name = torch.cuda.get_device_name(device)
            raise ParameterError(
                "precision",
                f"precision='bf16' needs compute capability >= 8; {name} has not: "
                "use 'fp16' or 'auto'",
            )
        return precision
    if precision == "auto":
        return "fp32"
    if precision == "fp16":
        raise ParameterError(
            "precision",
            f"precision='fp16' (with a GradScaler) needs a CUDA GPU, the device is "
            f"{str(device)!r}: use 'fp32' or 'auto'",
        )
    if precision == "bf16" and device.type != "cpu":
        raise ParameterError(
            "precision", f"precision='bf16' is not supported on {str(device)!r}: use 'fp32'"
        )
    return precision
