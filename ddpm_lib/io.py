"""Files of a training run: atomic writes, verified safetensors, and loading a trained model.

A run directory written by :func:`ddpm_lib.train.train` holds::

    DIR/model.safetensors       final EMA weights of eps_theta (fp32), the config JSON in its metadata
    DIR/config.json             the same config, human-readable
    DIR/metrics.json            steps, wall time, images/s, device, loss-curve summary
    DIR/checkpoint.safetensors  the resumable state (see ddpm_lib.train.checkpoint)

>>> model, diffusion = load("runs/tiny")        # UNet in eval mode + its Diffusion

Nothing here uses pickle (no ``torch.save``/``torch.load``): tensors live in safetensors files and
everything else is JSON. Every file written here carries, in its metadata, a format tag and the
SHA-256 of its whole content (tensor names, dtypes, shapes, bytes and the other metadata), so a
truncated, bit-flipped, foreign or renamed file is refused with a ``ValueError`` naming the file."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import torch

from ddpm_lib._atomic import atomic_write_bytes
from ddpm_lib.config import Config, config_mismatch

if TYPE_CHECKING:
    from ddpm_lib.diffusion import Diffusion
    from ddpm_lib.models.unet import UNet

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
CHECKPOINT_FILE = "checkpoint.safetensors"
MODEL_FORMAT = "ddpm_lib.model/1"
FORMAT_KEY = "ddpm_lib.format"
DIGEST_KEY = "ddpm_lib.sha256"
CONFIG_KEY = "config"
# safetensors refuses headers above 100 MB; anything bigger is not one of our files.
_MAX_HEADER = 100_000_000
M = TypeVar("M", bound=torch.nn.Module)


class SafetensorsContent(NamedTuple):
    """A verified safetensors file: name -> CPU tensor, and its string metadata."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]


# ----------------------------------------------------------------------------- atomic writes
def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (NaN/inf refused: they are not JSON)."""
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode())


# ------------------------------------------------------------------------ verified safetensors
def _tensor_bytes(t: torch.Tensor) -> memoryview:
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def content_digest(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """SHA-256 (hex) over every tensor's name, dtype, shape and bytes (sorted by name) and over
    the metadata (without the digest entry itself)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(_tensor_bytes(t))
    meta = {k: v for k, v in metadata.items() if k != DIGEST_KEY}
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()


def save_safetensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str],
    fmt: str,
) -> None:
    """Atomically write ``tensors`` (moved to CPU, made contiguous) with ``metadata`` plus the
    format tag ``fmt`` and the content digest."""
    from safetensors.torch import save

    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {str(k): str(v) for k, v in metadata.items()}
    meta[FORMAT_KEY] = fmt
    meta[DIGEST_KEY] = content_digest(cpu, meta)
    atomic_write_bytes(path, save(cpu, metadata=meta))


def parse_safetensors(data: bytes, where: str = "<bytes>") -> SafetensorsContent:
    """Parse the bytes of a safetensors file (no format or digest check: see
    :func:`load_safetensors`). Raises ``ValueError`` naming ``where`` for a truncated, garbage or
    foreign (e.g. pickled) file instead of the safetensors library's own exception type."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    hint = "; ddpm_lib reads only safetensors files (never pickle / torch.save files)"
    if len(data) < 8:
        raise ValueError(f"{where} is not a valid safetensors file: only {len(data)} bytes{hint}")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(_MAX_HEADER, len(data) - 8):
        raise ValueError(
            f"{where} is not a valid safetensors file: its header claims {n} bytes but the file "
            f"has {len(data)} (truncated or not safetensors){hint}"
        )
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
        metadata = header.get("__metadata__") or {}
        if not isinstance(metadata, dict):
            raise ValueError("__metadata__ is not a mapping")
        tensors = st_load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError, AttributeError, OSError) as e:
        raise ValueError(f"{where} is not a valid safetensors file ({len(data)} bytes): {e}") from e
    return SafetensorsContent(tensors, dict(metadata))


def load_safetensors(path: str | os.PathLike[str], fmt: str | None = None) -> SafetensorsContent:
    """Read and verify a file written by :func:`save_safetensors`.

    Raises ``ValueError`` naming ``path`` if the file is missing, not a safetensors file (truncated,
    garbage, a pickle), carries no or another format tag than ``fmt``, or fails its digest."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file")
    tensors, metadata = parse_safetensors(path.read_bytes(), str(path))
    got_fmt = metadata.get(FORMAT_KEY)
    if fmt is not None and got_fmt != fmt:
        raise ValueError(
            f"{path} is not a {fmt!r} file (its metadata says format={got_fmt!r}); "
            f"it was not written by this version of ddpm_lib"
        )
    digest = metadata.get(DIGEST_KEY)
    if digest is None or digest != content_digest(tensors, metadata):
        raise ValueError(
            f"{path} is corrupted: its content does not match the SHA-256 recorded in it "
            f"(a flipped byte, or a file edited after it was written)"
        )
    return SafetensorsContent(tensors, dict(metadata))


# ------------------------------------------------------------------------------------ configs
def config_to_json(config: Config) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)


def config_from_json(text: str, where: str | os.PathLike[str]) -> Config:
    """Parse a config JSON string; a ValueError names ``where`` on bad JSON or bad fields."""
    try:
        return Config.from_dict(json.loads(text))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{where}: invalid config: {e}") from e


def _mismatch_text(a: Config, b: Config, fields: list[str]) -> str:
    return ", ".join(f"{f} ({getattr(a, f)!r} vs {getattr(b, f)!r})" for f in fields)


# ------------------------------------------------------------------------------------ models
def save_model(
    path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], config: Config
):
    """Write a model's weights (fp32) with the config JSON embedded in the metadata."""
    tensors = {k: v.detach().float() if v.is_floating_point() else v for k, v in state_dict.items()}
    save_safetensors(path, tensors, {CONFIG_KEY: config_to_json(config)}, MODEL_FORMAT)


def load_state_dict_checked(
    module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], where: str | os.PathLike[str]
) -> None:
    """Copy ``tensors`` into ``module`` after checking names and shapes; a ValueError names
    ``where`` and every missing, unexpected or mis-shaped key (with both shapes)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = [
        f"{k} (file {list(tensors[k].shape)}, model {list(expected[k].shape)})"
        for k in sorted(set(expected) & set(tensors))
        if tensors[k].shape != expected[k].shape
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
        if items:
            more = f" and {len(items) - 8} more" if len(items) > 8 else ""
            problems.append(f"{label} tensors: {', '.join(items[:8])}{more}")
    if problems:
        raise ValueError(f"{where} does not fit the model: " + "; ".join(problems))
    with torch.no_grad():
        for k, v in expected.items():
            v.copy_(tensors[k])


def build_model(config: Config, seed: int = 0) -> UNet:
    """``UNet(config)`` initialised from ``seed`` without touching the global RNG state."""
    from ddpm_lib.models.unet import UNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet(config)


def load(
    directory: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[UNet, Diffusion]:
    """Load a trained run: ``(model, diffusion)`` with the EMA weights of ``DIR/model.safetensors``
    (the model in eval mode on ``device``) and the Diffusion of its config.

    ``directory`` is the run directory (a path to its ``model.safetensors`` also works). If
    ``config.json`` is present it must agree with the config embedded in the weights.

    Raises:
        ValueError: a missing, truncated, corrupted or foreign file (naming it); a config mismatch
            (naming the fields); missing, unexpected or mis-shaped tensors (naming the keys).
    """
    path = Path(directory)
    weights = path if path.suffix == ".safetensors" and not path.is_dir() else path / MODEL_FILE
    if not weights.is_file():
        raise ValueError(
            f"{weights} not found: expected a run directory written by ddpm_lib.train "
            f"(holding {MODEL_FILE}, {CONFIG_FILE})"
        )
    content = load_safetensors(weights, MODEL_FORMAT)
    if CONFIG_KEY not in content.metadata:
        raise ValueError(f"{weights} has no embedded config (metadata key {CONFIG_KEY!r})")
    config = config_from_json(content.metadata[CONFIG_KEY], weights)
    config_file = weights.parent / CONFIG_FILE
    if config_file.exists():
        try:
            text = config_file.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{config_file} cannot be read: {e}") from e
        other = config_from_json(text, config_file)
        diff = config_mismatch(other, config)
        if diff:
            raise ValueError(
                f"{config_file} and {weights} disagree on the config fields "
                f"{_mismatch_text(other, config, diff)} (config.json vs the weights' own)"
            )
    model = build_model(config)
    load_state_dict_checked(model, content.tensors, weights)
    return to_device(model, config.diffusion(), device)


def to_device(model: M, diffusion: Diffusion, device: str | torch.device) -> tuple[M, Diffusion]:
    """``model`` in eval mode on ``device``, and ``diffusion`` there too, except on MPS, which has
    no float64: there the schedule stays on the CPU."""
    dev = torch.device(device)
    if dev.type != "mps":
        diffusion = diffusion.to(dev)
    return model.to(dev).eval(), diffusion
