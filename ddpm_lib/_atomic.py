"""Atomic file writes: a reader, or a crash at any instant, sees the old file or the whole new one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_CHUNK = 1 << 20


def _write_all(f, data: bytes | memoryview) -> None:
    """Write ``data`` in 1 MiB chunks (a seam for tests that simulate a crash mid-write)."""
    view = memoryview(data)
    for i in range(0, len(view), _CHUNK):
        f.write(view[i : i + _CHUNK])


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a directory; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader (or a crash at any instant) sees either the old
    file or the complete new one: temporary file in the same directory, flush + fsync,
    :func:`os.replace`, fsync of the directory. On failure the temporary file is removed."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_all(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(target.parent)
