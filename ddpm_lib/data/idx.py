"""IDX files (LeCun et al. 1998), the format of the four standard MNIST ``.gz`` files the mirrors serve.

Layout of an IDX file, all integers big-endian::

    bytes 0-1   zero
    byte  2     element type (0x08 = unsigned byte, the only one MNIST uses)
    byte  3     number of dimensions d
    4*d bytes   the d sizes, each an unsigned 32-bit integer
    rest        prod(sizes) elements in C order

The parser checks every field (no torchvision), so a malformed or truncated download becomes an
:class:`IDXFormatError` that names it instead of a crash deep inside numpy."""

from __future__ import annotations

import struct
import zlib

import numpy as np

UBYTE = 0x08
"""IDX type code of unsigned bytes; MNIST images and labels both use it."""

# Far above the 47 MB of the largest MNIST file; stops a hostile gzip bomb from filling memory.
_MAX_DECOMPRESSED = 256 * 1024 * 1024


class IDXFormatError(ValueError):
    """A file that should hold IDX data (optionally gzip-compressed) is malformed or truncated."""


def gunzip(data: bytes, name: str) -> bytes:
    """Decompress gzip bytes, turning every gzip/zlib failure into :class:`IDXFormatError`.

    ``name`` only labels the error message (a path or a URL)."""
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


def parse_idx(data: bytes, name: str, *, ndim: int | None = None) -> np.ndarray:
    """Parse uncompressed IDX bytes of unsigned bytes into a uint8 array (a view of ``data``).

    Args:
        data: the raw IDX file contents.
        name: a path or URL, used only in error messages.
        ndim: the number of dimensions the caller expects (3 for images, 1 for labels), if known.

    Raises:
        IDXFormatError: wrong magic number, element type other than unsigned byte, unexpected
            number of dimensions, or a payload shorter/longer than the header says.
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
    n = int(np.prod(dims, dtype=np.int64))
    payload = len(data) - header_len
    if payload != n:
        kind = "truncated" if payload < n else "trailing bytes in"
        raise IDXFormatError(
            f"{name}: {kind} IDX payload: header {tuple(dims)} needs {n} bytes, found {payload}"
        )
    return np.frombuffer(data, dtype=np.uint8, count=n, offset=header_len).reshape(dims)
