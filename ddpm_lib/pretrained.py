"""Shipped weights, loaded only after their sha256 matches ``weights/manifest.json``.

>>> from ddpm_lib.pretrained import pretrained, load_classifier
>>> clf = load_classifier()             # MNISTClassifier in eval mode, checksum verified
>>> net = pretrained("mnist-classifier")  # the same through the registry

Every file under ``ddpm_lib/weights/`` has a manifest entry: file name, sha256, size, dtype, the exact
command that produced it and its measured quality. Loading reads the file's bytes once, checks size
and sha256 *on those bytes*, and only then parses them as safetensors (never pickle), so a file that
was tampered with, truncated or replaced is refused with a clear error instead of being half-loaded.

Adding a model: ship ``weights/<name>.safetensors``, add its manifest entry, and
``register_builder("<name>", fn)`` with ``fn(tensors, entry) -> nn.Module``.
The environment variable ``DDPM_LIB_WEIGHTS_DIR`` points the loader at another folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

if TYPE_CHECKING:
    from ddpm_lib.metrics.classifier import MNISTClassifier

__all__ = [
    "WeightsError",
    "ManifestEntry",
    "SafetensorsContent",
    "weights_dir",
    "load_manifest",
    "verified_bytes",
    "verified_file",
    "read_safetensors",
    "register_builder",
    "registered_names",
    "pretrained",
    "load_classifier",
    "sha256_of",
]

MANIFEST = "manifest.json"
ENV_VAR = "DDPM_LIB_WEIGHTS_DIR"


class WeightsError(ValueError):
    """A weights file is missing, unlisted, or does not match its manifest entry."""


class ManifestEntry(NamedTuple):
    """One manifest entry. ``info`` holds everything else recorded (config, command, seed, epochs,
    wall time, machine, measured accuracy)."""

    name: str
    file: str
    sha256: str
    size_bytes: int
    format: str
    dtype: str
    info: dict[str, Any]


class SafetensorsContent(NamedTuple):
    """Parsed safetensors file: name -> tensor, and the string metadata of its header."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]


def weights_dir() -> Path:
    """The folder with ``manifest.json``: ``$DDPM_LIB_WEIGHTS_DIR`` if set, else ``ddpm_lib/weights``."""
    override = os.environ.get(ENV_VAR)
    return Path(override) if override else Path(__file__).resolve().parent / "weights"


def sha256_of(data: bytes | Path) -> str:
    """Hex sha256 of ``data`` (bytes, or a file's contents)."""
    if isinstance(data, Path):
        data = data.read_bytes()
    return hashlib.sha256(data).hexdigest()


_REQUIRED = ("file", "sha256", "size_bytes", "format", "dtype")


def load_manifest(directory: Path | None = None) -> dict[str, ManifestEntry]:
    """Read ``manifest.json`` -> ``{name: ManifestEntry}`` (a registry keyed by model name)."""
    path = (directory if directory is not None else weights_dir()) / MANIFEST
    if not path.is_file():
        raise WeightsError(f"no weights manifest at {path}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise WeightsError(f"{path} is not valid JSON: {e}") from e
    if raw.get("format_version") != 1 or not isinstance(raw.get("entries"), dict):
        raise WeightsError(f"{path}: expected {{'format_version': 1, 'entries': {{...}}}}")
    out = {}
    for name, e in raw["entries"].items():
        missing = [k for k in _REQUIRED if k not in e]
        if missing:
            raise WeightsError(f"{path}: entry {name!r} lacks the field(s) {missing}")
        info = {k: v for k, v in e.items() if k not in _REQUIRED}
        out[name] = ManifestEntry(
            name, e["file"], e["sha256"], int(e["size_bytes"]), e["format"], e["dtype"], info
        )
    return out


def _entry(name: str) -> ManifestEntry:
    manifest = load_manifest()
    if name not in manifest:
        raise WeightsError(
            f"no manifest entry named {name!r} in {weights_dir() / MANIFEST}; "
            f"known: {sorted(manifest)}"
        )
    return manifest[name]


def verified_bytes(name: str) -> tuple[bytes, ManifestEntry]:
    """The contents of the weights file ``name`` after checking its size and sha256 against the
    manifest; raises :class:`WeightsError` (a ValueError) on any mismatch. Loading from these bytes
    (not re-reading the file) means what is parsed is exactly what was checked."""
    entry = _entry(name)
    path = weights_dir() / entry.file
    if Path(entry.file).name != entry.file:
        raise WeightsError(
            f"manifest entry {name!r}: file must be a bare file name, got {entry.file!r}"
        )
    if not path.is_file():
        raise WeightsError(f"weights file for {name!r} is missing: {path}")
    data = path.read_bytes()
    if len(data) != entry.size_bytes:
        raise WeightsError(
            f"{path} has {len(data)} bytes but the manifest says {entry.size_bytes} "
            "(truncated or replaced file); refusing to load it"
        )
    digest = sha256_of(data)
    if digest != entry.sha256:
        raise WeightsError(
            f"sha256 mismatch for {path}: file {digest}, manifest {entry.sha256}; "
            "the file was modified or corrupted, refusing to load it"
        )
    return data, entry


def verified_file(name: str) -> Path:
    """Path of the weights file ``name`` after its size and sha256 matched the manifest."""
    _, entry = verified_bytes(name)
    return weights_dir() / entry.file


def read_safetensors(source: bytes | Path) -> SafetensorsContent:
    """Parse a safetensors file (path or bytes); a truncated, garbage or foreign (e.g. pickled
    ``.pt``) file raises ValueError instead of the library's own exception type."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    where = str(source) if isinstance(source, Path) else "<bytes>"
    data = source.read_bytes() if isinstance(source, Path) else source
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, OSError) as e:
        raise ValueError(f"{where} is not a valid safetensors file ({len(data)} bytes): {e}") from e
    (header_len,) = struct.unpack("<Q", data[:8])
    metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__", {}) or {}
    return SafetensorsContent(tensors, metadata)


# --- registry of builders ------------------------------------------------------------------------

Builder = Callable[[SafetensorsContent, ManifestEntry], nn.Module]
_BUILDERS: dict[str, Builder] = {}


def register_builder(name: str, builder: Builder) -> None:
    """Register ``builder(content, entry) -> nn.Module`` for the manifest entry ``name``."""
    _BUILDERS[name] = builder


def registered_names() -> list[str]:
    return sorted(_BUILDERS)


def pretrained(name: str, device: str | torch.device = "cpu") -> nn.Module:
    """Build the shipped model ``name`` from checksum-verified weights, in eval mode on ``device``."""
    if name not in _BUILDERS:
        raise ValueError(f"no pretrained model named {name!r}; available: {registered_names()}")
    data, entry = verified_bytes(name)
    if entry.format != "safetensors":
        raise WeightsError(f"entry {name!r} has format {entry.format!r}; only 'safetensors' loads")
    model = _BUILDERS[name](read_safetensors(data), entry)
    return model.to(device).eval()


def _load_state(model: nn.Module, tensors: dict[str, torch.Tensor], name: str) -> nn.Module:
    """Strict state-dict load; fp16 tensors are cast to the model's fp32 parameters by ``copy_``."""
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise ValueError(f"the weights of {name!r} do not fit the architecture: {e}") from e
    return model


def _build_classifier(content: SafetensorsContent, entry: ManifestEntry) -> nn.Module:
    from ddpm_lib.metrics.classifier import ClassifierConfig, MNISTClassifier

    config = ClassifierConfig.from_dict(entry.info["config"])
    stored = content.metadata.get("config")
    if stored is not None and ClassifierConfig.from_dict(json.loads(stored)) != config:
        raise ValueError(
            f"{entry.file}: config in the file {stored} differs from the manifest {entry.info['config']}"
        )
    return _load_state(MNISTClassifier(config), content.tensors, entry.name)


register_builder("mnist-classifier", _build_classifier)


def load_classifier(device: str | torch.device = "cpu") -> MNISTClassifier:
    """The shipped MNIST classifier (``MNISTClassifier``, fp32, eval mode), checksum verified."""
    return pretrained("mnist-classifier", device)  # type: ignore[return-value]
