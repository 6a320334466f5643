"""IDX files (LeCun et al. 1998), the format of the four standard MNIST ``.gz`` files.

Layout of an IDX file, all integers big-endian::

    bytes 0-1   zero
    byte  2     element type (0x08 = unsigned byte, the only one MNIST uses)
    byte  3     number of dimensions d
    4*d bytes   the d sizes, each an unsigned 32-bit integer
    rest        prod(sizes) elements in C order

This module parses and writes that layout itself (no torchvision), checks every field, and turns
a malformed or truncated file into an :class:`IDXFormatError` that names the file, instead of a
crash deep inside numpy.  It also holds the atomic file write that the cache uses.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .._atomic import atomic_write_bytes  # noqa: F401  (re-exported for the cache)

__all__ = [
    "IDXFormatError",
    "UBYTE",
    "parse_idx",
    "encode_idx",
    "read_idx_gz",
    "encode_idx_gz",
    "gunzip",
    "atomic_write_bytes",
]

UBYTE = 0x08
"""IDX type code of unsigned bytes; MNIST images and labels both use it."""

# Far above the 47 MB of the largest MNIST file; stops a hostile gzip bomb from filling memory.
_MAX_DECOMPRESSED = 256 * 1024 * 1024


class IDXFormatError(ValueError):
    """A file that should hold IDX data (optionally gzip-compressed) is malformed or truncated."""


def gunzip(data: bytes, name: str) -> bytes:
    """Decompress gzip bytes, turning every gzip/zlib failure into :class:`IDXFormatError`.

    ``name`` only labels the error message (a path or a URL).
    """
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, _MAX_DECOMPRESSED)
    except zlib.error as exc:
        raise IDXFormatError(f"{name}: not a valid gzip stream ({exc})") from None
    if d.unconsumed_tail:
        raise IDXFormatError(f"{name}: decompresses to more than {_MAX_DECOMPRESSED} bytes")
    if not d.eof:
        raise IDXFormatError(f"{name}: truncated gzip stream (ends before the end-of-stream mark)")
    return out


def parse_idx(
    data: bytes, name: str, *, ndim: int | None = None, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """Parse uncompressed IDX bytes of unsigned bytes into a read-only uint8 array.

    Args:
        data: the raw IDX file contents.
        name: a path or URL, used only in error messages.
        ndim: the number of dimensions the caller expects (3 for images, 1 for labels), if known.
        shape: the exact shape the caller expects, if known.

    Returns:
        uint8 array of the shape stored in the header (C order), a view of ``data``.

    Raises:
        IDXFormatError: wrong magic number, element type other than unsigned byte, unexpected
            number of dimensions or sizes, or a payload shorter/longer than the header says.
    """
    if len(data) < 4:
        raise IDXFormatError(f"{name}: {len(data)} bytes, too short for an IDX header (>= 4)")
    zero, dtype_code, d = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise IDXFormatError(
            f"{name}: bad IDX magic number 0x{data[:4].hex()} (first two bytes must be zero)"
        )
    if dtype_code != UBYTE:
        raise IDXFormatError(
            f"{name}: IDX element type 0x{dtype_code:02x}, expected 0x08 (unsigned byte)"
        )
    if ndim is not None and d != ndim:
        raise IDXFormatError(f"{name}: IDX file has {d} dimensions, expected {ndim}")
    if d == 0:
        raise IDXFormatError(f"{name}: IDX file declares 0 dimensions")
    header_len = 4 + 4 * d
    if len(data) < header_len:
        raise IDXFormatError(f"{name}: truncated IDX header ({len(data)} < {header_len} bytes)")
    dims = struct.unpack(f">{d}I", data[4:header_len])
    if shape is not None and tuple(dims) != tuple(shape):
        raise IDXFormatError(f"{name}: IDX shape {tuple(dims)}, expected {tuple(shape)}")
    n = int(np.prod(dims, dtype=np.int64))
    payload = len(data) - header_len
    if payload != n:
        kind = "truncated" if payload < n else "trailing bytes in"
        raise IDXFormatError(
            f"{name}: {kind} IDX payload: header {tuple(dims)} needs {n} bytes, found {payload}"
        )
    arr = np.frombuffer(data, dtype=np.uint8, count=n, offset=header_len).reshape(dims)
    return arr


def encode_idx(array: np.ndarray) -> bytes:
    """Encode a uint8 array as uncompressed IDX bytes (the inverse of :func:`parse_idx`)."""
    if array.dtype != np.uint8:
        raise TypeError(f"IDX encoding here supports uint8 arrays only, got dtype {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX needs 1..255 dimensions, got {array.ndim}")
    header = struct.pack(">HBB", 0, UBYTE, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + np.ascontiguousarray(array).tobytes()


def encode_idx_gz(array: np.ndarray) -> bytes:
    """IDX bytes of ``array``, gzip-compressed with mtime 0 so equal arrays give equal files."""
    return gzip.compress(encode_idx(array), compresslevel=6, mtime=0)


def read_idx_gz(
    path: str | os.PathLike[str],
    *,
    ndim: int | None = None,
    shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Read a gzip-compressed IDX file of unsigned bytes (see :func:`parse_idx`).

    Raises:
        IDXFormatError: the file is not valid gzip, is truncated, or is not valid IDX.
        OSError: the file cannot be read.
    """
    name = str(path)
    data = Path(path).read_bytes()
    return parse_idx(gunzip(data, name), name, ndim=ndim, shape=shape)
