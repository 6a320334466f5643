"""The resumable state of a training run, in ONE safetensors file and no pickle.

``DIR/checkpoint.safetensors`` holds every tensor of the state under a prefix::

    model/<name>            the trained weights theta
    ema/<name>              their exponential moving average
    optimizer/<i>/<key>     AdamW's per-parameter state (exp_avg, exp_avg_sq, step) for parameter i
    rng/<name>              torch.Generator.get_state() of every generator of the run (uint8)
    data/perm               the current epoch's permutation of the data set (int64 [N])
    metrics/losses          L_simple of every optimiser step so far (float32 [step])

and, as JSON strings in the safetensors metadata, the config (``config``) and everything that is not
a tensor (``state``): the step, AdamW's param_groups and scalar state, the GradScaler state, the data
fingerprint and the timing of each training segment. The file is written atomically
(:func:`ddpm_lib.io.atomic_write_bytes`) and carries the SHA-256 of its content, so a crash while
writing leaves the previous checkpoint intact and a damaged file is refused on load."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ddpm_lib.config import Config
from ddpm_lib.io import config_from_json, config_to_json, load_safetensors, save_safetensors

CHECKPOINT_FORMAT = "ddpm_lib.checkpoint/1"


class NonFiniteStateError(FloatingPointError):
    """The state to be saved holds NaN or inf; the previous checkpoint is kept."""


class TrainState(NamedTuple):
    """Everything needed to continue a run exactly where it stopped.

    ``model``/``ema``: state dicts (name -> tensor); ``optimizer``: ``torch.optim`` state_dict;
    ``scaler``: GradScaler state_dict or None; ``rng``: generator name -> ``get_state()`` (uint8),
    with ``rng_devices`` the device type each generator lived on; ``perm``: int64 ``[N]`` or None;
    ``losses``: float32 ``[step]``; ``info``: JSON-safe extras (data fingerprint, segments, ...)."""

    config: Config
    step: int
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scaler: dict[str, Any] | None
    rng: dict[str, torch.Tensor]
    rng_devices: dict[str, str]
    perm: torch.Tensor | None
    losses: torch.Tensor
    info: dict[str, Any]


# ---------------------------------------------------------------------- optimizer <-> flat
def flatten_optimizer_state(
    state_dict: Mapping[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split a ``torch.optim`` state_dict into tensors ``optimizer/<i>/<key>`` and a JSON-safe rest.

    Tuples in ``param_groups`` (e.g. AdamW's ``betas``) are recorded so that
    :func:`unflatten_optimizer_state` gives back an equal state_dict."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, per_param in state_dict["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{int(index)}/{key}"] = value.detach().to("cpu").clone()
            else:
                _check_json_scalar(f"optimizer state[{index}][{key}]", value)
                scalars.setdefault(str(int(index)), {})[key] = value
    groups, tuple_keys = [], set()
    for group in state_dict["param_groups"]:
        plain = {}
        for key, value in group.items():
            if isinstance(value, tuple):
                tuple_keys.add(key)
                value = list(value)
            if isinstance(value, torch.Tensor):
                raise ValueError(f"optimizer param_group[{key!r}] is a tensor; not supported")
            plain[key] = value
        groups.append(plain)
    meta = {"param_groups": groups, "tuple_keys": sorted(tuple_keys), "scalars": scalars}
    json.dumps(meta, allow_nan=False)  # fail here, not at write time, on non-JSON values
    return tensors, meta


def unflatten_optimizer_state(
    tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer_state` (``tensors`` may hold other prefixes too)."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer/"):
            _, index, key = name.split("/", 2)
            state.setdefault(int(index), {})[key] = value
    for index, per_param in meta["scalars"].items():
        state.setdefault(int(index), {}).update(per_param)
    tuple_keys = set(meta["tuple_keys"])
    groups = [
        {k: tuple(v) if k in tuple_keys else v for k, v in group.items()}
        for group in meta["param_groups"]
    ]
    return {"state": dict(sorted(state.items())), "param_groups": groups}


def _check_json_scalar(name: str, value: object) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} = {value} is not finite")
    if value is not None and not isinstance(value, bool | int | float | str):
        raise ValueError(f"{name} has type {type(value).__name__}; only JSON scalars are stored")


# ------------------------------------------------------------------------------- save / load
def _non_finite(prefix: str, tensors: Mapping[str, torch.Tensor]) -> list[str]:
    return [
        f"{prefix}{k}"
        for k, v in tensors.items()
        if v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]


def save_checkpoint(path: str | os.PathLike[str], state: TrainState) -> None:
    """Atomically write ``state`` to ``path`` (one safetensors file).

    Raises:
        NonFiniteStateError: a weight, EMA weight or optimizer moment is NaN/inf; nothing is
            written, so the previous checkpoint stays the last good one.
    """
    opt_tensors, opt_meta = flatten_optimizer_state(state.optimizer)
    bad = (
        _non_finite("model/", state.model)
        + _non_finite("ema/", state.ema)
        + _non_finite("", opt_tensors)
    )
    if bad:
        raise NonFiniteStateError(
            f"refusing to write {path} at step {state.step}: non-finite values in "
            f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}; the previous checkpoint is kept"
        )
    if state.losses.shape != (state.step,):
        raise ValueError(f"losses must have shape [{state.step}], got {list(state.losses.shape)}")
    tensors: dict[str, torch.Tensor] = {}
    tensors.update({f"model/{k}": v for k, v in state.model.items()})
    tensors.update({f"ema/{k}": v for k, v in state.ema.items()})
    tensors.update(opt_tensors)
    tensors.update({f"rng/{k}": v for k, v in state.rng.items()})
    if state.perm is not None:
        tensors["data/perm"] = state.perm
    tensors["metrics/losses"] = state.losses.float()
    meta = {
        "step": state.step,
        "optimizer": opt_meta,
        "scaler": state.scaler,
        "rng_devices": state.rng_devices,
        "info": state.info,
    }
    metadata = {"config": config_to_json(state.config), "state": json.dumps(meta, allow_nan=False)}
    save_safetensors(path, tensors, metadata, CHECKPOINT_FORMAT)


def load_checkpoint(path: str | os.PathLike[str]) -> TrainState:
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    Raises:
        ValueError: naming ``path``, if the file is missing, truncated, corrupted, foreign (another
            safetensors file, a pickle) or its content is inconsistent.
    """
    path = Path(path)
    content = load_safetensors(path, CHECKPOINT_FORMAT)
    try:
        config = config_from_json(content.metadata["config"], path)
        meta = json.loads(content.metadata["state"])
        step = int(meta["step"])
        tensors = content.tensors
        model = _strip("model/", tensors)
        ema = _strip("ema/", tensors)
        rng = _strip("rng/", tensors)
        optimizer = unflatten_optimizer_state(tensors, meta["optimizer"])
        losses = tensors["metrics/losses"]
        rng_devices = {str(k): str(v) for k, v in meta["rng_devices"].items()}
        scaler, info = meta["scaler"], meta["info"]
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a complete ddpm_lib checkpoint: {e!r}") from e
    if set(model) != set(ema) or not model:
        raise ValueError(f"{path}: the model and EMA tensors do not have the same names")
    if losses.shape != (step,) or set(rng) != set(rng_devices):
        raise ValueError(
            f"{path}: inconsistent checkpoint (losses {list(losses.shape)}, step {step})"
        )
    return TrainState(
        config=config,
        step=step,
        model=model,
        ema=ema,
        optimizer=optimizer,
        scaler=scaler,
        rng=rng,
        rng_devices=rng_devices,
        perm=tensors.get("data/perm"),
        losses=losses,
        info=info,
    )


def _strip(prefix: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
