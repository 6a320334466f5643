"""Shipped weights, loaded only after their sha256 matches ``weights/manifest.json``.

>>> import ddpm_lib
>>> model, diffusion = ddpm_lib.pretrained("mnist-unet")      # eps-model (EMA weights) + Diffusion
>>> model, diffusion = ddpm_lib.pretrained("mnist-unet-cfg")  # class-conditional, null label = 10
>>> clf, diffusion = ddpm_lib.pretrained("mnist-noisy-classifier")  # p(y | x_t, t), for guidance
>>> from ddpm_lib.metrics import load_classifier
>>> clf = load_classifier()                                     # the evaluator behind the metrics

Every file under ``ddpm_lib/weights/`` has a manifest entry: file name, sha256, size, dtype, the exact
command that produced it and its measured quality. Loading reads the file's bytes once, checks size
and sha256 *on those bytes*, and only then parses them as safetensors (never pickle), so a file that
was tampered with, truncated or replaced is refused with a clear error instead of being half-loaded.
From there a shipped file takes the path of a run's own weights (:func:`ddpm_lib.io.load`): the
same parser, the same name-and-shape-checked state-dict copy, the same device rule.

Adding a U-Net: ``python tools/release.py export`` writes ``weights/<name>.safetensors`` and its
manifest entry; every entry whose ``architecture`` is ``ddpm_lib.models.UNet`` (or
``ddpm_lib.models.NoisyClassifier``, written by ``python tools/release.py export-classifier``)
loads with :func:`pretrained`. The environment variable ``DDPM_LIB_WEIGHTS_DIR`` points the loader at another
folder."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

from ddpm_lib import io

if TYPE_CHECKING:
    from ddpm_lib.diffusion import Diffusion

MANIFEST = "manifest.json"
ENV_VAR = "DDPM_LIB_WEIGHTS_DIR"
UNET_ARCHITECTURE = "ddpm_lib.models.UNet"


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


def verified_bytes(name: str) -> tuple[bytes, ManifestEntry]:
    """The contents of the weights file ``name`` after checking its size and sha256 against the
    manifest; raises :class:`WeightsError` (a ValueError) on any mismatch. Loading from these bytes
    (not re-reading the file) means what is parsed is exactly what was checked."""
    manifest = load_manifest()
    if name not in manifest:
        raise WeightsError(
            f"no manifest entry named {name!r} in {weights_dir() / MANIFEST}; "
            f"known: {sorted(manifest)}"
        )
    entry = manifest[name]
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


def load_module(name: str, module: nn.Module, config: dict[str, Any] | None) -> nn.Module:
    """Copy the verified weights ``name`` into ``module`` (an instance of the entry's architecture,
    float32; an fp16 file is cast on the copy) and return it.

    ``config`` is the architecture's config as the manifest records it (JSON-like); the file must
    carry the same config in its metadata, so weights are never paired with another architecture
    (``None`` skips that check)."""
    data, entry = verified_bytes(name)
    if entry.format != "safetensors":
        raise WeightsError(f"entry {name!r} has format {entry.format!r}; only 'safetensors' loads")
    content = io.parse_safetensors(data, entry.file)
    if config is not None:
        stored = content.metadata.get(io.CONFIG_KEY)
        try:
            same = stored is not None and json.loads(stored) == config
        except json.JSONDecodeError as e:
            raise WeightsError(f"{entry.file}: the config in its metadata is not JSON: {e}") from e
        if not same:
            raise WeightsError(
                f"{entry.file}: the config stored in the file ({stored}) differs from the "
                f"manifest's ({config}); refusing to guess which one the weights belong to"
            )
    io.load_state_dict_checked(module, content.tensors, f"{entry.file} ({name!r})")
    return module


def _loadable() -> tuple[str, ...]:
    from ddpm_lib.models.classifier import NOISY_CLASSIFIER_ARCHITECTURE

    return (UNET_ARCHITECTURE, NOISY_CLASSIFIER_ARCHITECTURE)


class Pretrained(NamedTuple):
    """What :func:`pretrained` returns: the network in eval mode and the
    :class:`~ddpm_lib.diffusion.Diffusion` of the schedule it was trained for."""

    model: nn.Module
    diffusion: Diffusion


def available() -> list[str]:
    """Every name :func:`pretrained` can load from the current manifest."""
    try:
        manifest = load_manifest()
    except WeightsError:
        return []
    return sorted(n for n, e in manifest.items() if e.info.get("architecture") in _loadable())


def pretrained(name: str, device: str | torch.device = "cpu") -> Pretrained:
    """Load the shipped diffusion model ``name`` from checksum-verified weights:
    ``(model, diffusion)``.

    The model is in eval mode on ``device`` (float32 parameters; the file may store float16). Its
    weights are the EMA weights of the training run named in the manifest, and ``diffusion`` is the
    schedule they were trained for. ``"mnist-noisy-classifier"`` is the noise-conditional
    classifier :math:`p_\\phi(y \\mid x_t, t)` of classifier guidance
    (:class:`ddpm_lib.models.NoisyClassifier`), returned with the schedule it was trained on.
    (The evaluator's classifier, ``"mnist-classifier"``, sees clean digits only:
    :func:`ddpm_lib.metrics.load_classifier` loads it.)

    Raises:
        ValueError: unknown name (listing the available ones); :class:`WeightsError` (a ValueError)
            when the file is missing or its size or sha256 differs from the manifest, or the
            config in the file differs from the manifest's.
    """
    from ddpm_lib.config import Config

    if not isinstance(name, str):
        raise ValueError(f"name must be a string such as 'mnist-unet', got {name!r}")
    entry = load_manifest().get(name)
    if entry is None or entry.info.get("architecture") not in _loadable():
        hint = ""
        if entry is not None and name == "mnist-classifier":
            hint = " ('mnist-classifier' loads with ddpm_lib.metrics.load_classifier())"
        raise ValueError(f"no pretrained model named {name!r}; available: {available()}{hint}")
    if "config" not in entry.info:
        raise WeightsError(f"manifest entry {name!r} lacks the network's 'config'")
    if entry.info["architecture"] != UNET_ARCHITECTURE:
        from ddpm_lib.models.classifier import NoisyClassifier, NoisyClassifierConfig

        try:
            cconf = NoisyClassifierConfig.from_dict(entry.info["config"])
        except (TypeError, ValueError) as e:
            raise WeightsError(f"manifest entry {name!r}: bad classifier config: {e}") from e
        classifier = load_module(name, NoisyClassifier(cconf), cconf.to_dict())
        return Pretrained(*io.to_device(classifier, cconf.diffusion(), device))
    config = Config.from_dict(entry.info["config"])
    model = load_module(name, io.build_model(config), config.to_dict())
    return Pretrained(*io.to_device(model, config.diffusion(), device))
