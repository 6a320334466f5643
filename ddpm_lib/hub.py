"""Shipped weights, loaded only after their sha256 matches ``weights/manifest.json``.

>>> import ddpm_lib
>>> model, diffusion = ddpm_lib.pretrained("mnist-unet")      # eps-model (EMA weights) + Diffusion
>>> model, diffusion = ddpm_lib.pretrained("mnist-unet-cfg")  # class-conditional, null label = 10
>>> clf = ddpm_lib.hub.load_classifier()                       # the evaluator behind ddpm_lib.metrics

Every file under ``ddpm_lib/weights/`` has a manifest entry: file name, sha256, size, dtype, the exact
command that produced it and its measured quality. Loading reads the file's bytes once, checks size
and sha256 *on those bytes*, and only then parses them as safetensors (never pickle), so a file that
was tampered with, truncated or replaced is refused with a clear error instead of being half-loaded.

Adding a model: write ``weights/<name>.safetensors`` and its manifest entry with
``python -m ddpm_lib.release export`` (U-Nets) and ``register_builder("<name>", fn)`` with
``fn(content, entry) -> (module, diffusion or None)``; every U-Net entry whose ``architecture`` is
``ddpm_lib.models.UNet`` is built without registration.
The environment variable ``DDPM_LIB_WEIGHTS_DIR`` points the loader at another folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

from ddpm_lib.io import SafetensorsContent, parse_safetensors

if TYPE_CHECKING:
    from ddpm_lib.diffusion import Diffusion
    from ddpm_lib.metrics.classifier import MNISTClassifier

__all__ = [
    "WeightsError",
    "ManifestEntry",
    "Pretrained",
    "SafetensorsContent",
    "weights_dir",
    "load_manifest",
    "verified_bytes",
    "verified_file",
    "read_safetensors",
    "register_builder",
    "registered_names",
    "available",
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
    ``.pt``) file raises ValueError. The manifest's sha256, not an in-file digest, vouches for it."""
    if isinstance(source, Path):
        return parse_safetensors(source.read_bytes(), str(source))
    return parse_safetensors(source)


# --- registry of builders ------------------------------------------------------------------------


class Pretrained(NamedTuple):
    """What :func:`pretrained` returns: the network in eval mode, and for a diffusion model the
    :class:`~ddpm_lib.diffusion.Diffusion` of its schedule (``None`` for the classifier)."""

    model: nn.Module
    diffusion: Diffusion | None


Builder = Callable[[SafetensorsContent, ManifestEntry], tuple[nn.Module, "Diffusion | None"]]
_BUILDERS: dict[str, Builder] = {}
UNET_ARCHITECTURE = "ddpm_lib.models.UNet"


def register_builder(name: str, builder: Builder) -> None:
    """Register ``builder(content, entry) -> (module, diffusion or None)`` for the entry ``name``."""
    _BUILDERS[name] = builder


def registered_names() -> list[str]:
    """Names with an explicitly registered builder (U-Net entries need none: see :func:`available`)."""
    return sorted(_BUILDERS)


def available() -> list[str]:
    """Every name :func:`pretrained` can load from the current manifest."""
    try:
        manifest = load_manifest()
    except WeightsError:
        return registered_names()
    return sorted(
        n
        for n, e in manifest.items()
        if n in _BUILDERS or e.info.get("architecture") == UNET_ARCHITECTURE
    )


def pretrained(name: str, device: str | torch.device = "cpu") -> Pretrained:
    """Load the shipped model ``name`` from checksum-verified weights: ``(model, diffusion)``.

    The model is in eval mode on ``device`` (float32 parameters; the file may store float16). For
    the U-Nets the weights are the EMA weights of the training run named in the manifest, and
    ``diffusion`` is the schedule they were trained for; for ``"mnist-classifier"`` it is ``None``.

    Raises:
        ValueError: unknown name (listing the available ones); :class:`WeightsError` (a ValueError)
            when the file is missing or its size or sha256 differs from the manifest.
    """
    if not isinstance(name, str):
        raise ValueError(f"name must be a string such as 'mnist-unet', got {name!r}")
    manifest = load_manifest()
    entry = manifest.get(name)
    builder = _BUILDERS.get(name)
    if (
        builder is None
        and entry is not None
        and entry.info.get("architecture") == UNET_ARCHITECTURE
    ):
        builder = _build_unet
    if builder is None:
        raise ValueError(f"no pretrained model named {name!r}; available: {available()}")
    data, entry = verified_bytes(name)
    if entry.format != "safetensors":
        raise WeightsError(f"entry {name!r} has format {entry.format!r}; only 'safetensors' loads")
    model, diffusion = builder(read_safetensors(data), entry)
    dev = torch.device(device)
    if diffusion is not None and dev.type != "mps":  # MPS has no float64: schedule stays on CPU
        diffusion = diffusion.to(dev)
    return Pretrained(model.to(dev).eval(), diffusion)


def _load_state(model: nn.Module, tensors: dict[str, torch.Tensor], name: str) -> nn.Module:
    """Strict state-dict load; fp16 tensors are cast to the model's fp32 parameters by ``copy_``."""
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise ValueError(f"the weights of {name!r} do not fit the architecture: {e}") from e
    return model


def _stored_config(content: SafetensorsContent, entry: ManifestEntry) -> dict[str, Any] | None:
    stored = content.metadata.get("config")
    if stored is None:
        return None
    try:
        return json.loads(stored)
    except json.JSONDecodeError as e:
        raise WeightsError(f"{entry.file}: the config in its metadata is not JSON: {e}") from e


def _build_unet(content: SafetensorsContent, entry: ManifestEntry) -> tuple[nn.Module, Diffusion]:
    from ddpm_lib.config import Config
    from ddpm_lib.io import build_model

    if "config" not in entry.info:
        raise WeightsError(f"manifest entry {entry.name!r} lacks the U-Net 'config'")
    config = Config.from_dict(entry.info["config"])
    stored = _stored_config(content, entry)
    if stored is None or Config.from_dict(stored) != config:
        raise WeightsError(
            f"{entry.file}: the config stored in the file ({stored}) differs from the manifest's "
            f"({entry.info['config']}); refusing to guess which one the weights belong to"
        )
    model = build_model(config)
    return _load_state(model, content.tensors, entry.name), config.diffusion()


def _build_classifier(content: SafetensorsContent, entry: ManifestEntry) -> tuple[nn.Module, None]:
    from ddpm_lib.metrics.classifier import ClassifierConfig, MNISTClassifier

    config = ClassifierConfig.from_dict(entry.info["config"])
    stored = _stored_config(content, entry)
    if stored is not None and ClassifierConfig.from_dict(stored) != config:
        raise ValueError(
            f"{entry.file}: config in the file {stored} differs from the manifest {entry.info['config']}"
        )
    return _load_state(MNISTClassifier(config), content.tensors, entry.name), None


register_builder("mnist-classifier", _build_classifier)


def load_classifier(device: str | torch.device = "cpu") -> MNISTClassifier:
    """The shipped MNIST classifier (``MNISTClassifier``, fp32, eval mode), checksum verified."""
    return pretrained("mnist-classifier", device).model  # type: ignore[return-value]
