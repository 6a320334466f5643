"""What the book's notebooks need to know about where they run.

``DDPM_BOOK_PROFILE`` selects the *profile*: ``"default"`` (what readers see: the full sample counts)
or ``"ci"`` (CI and nbval: smaller sample counts, never different science). The book build
(``make book``) and nbval set it; a reader's own Jupyter or Colab kernel has it unset, which means
``"default"`` with live widgets."""

from __future__ import annotations

import os

PROFILES = ("default", "ci")
ENV_PROFILE = "DDPM_BOOK_PROFILE"


def profile() -> str:
    """The active profile, ``"default"`` or ``"ci"`` (from ``$DDPM_BOOK_PROFILE``)."""
    value = os.environ.get(ENV_PROFILE, "").strip() or "default"
    if value not in PROFILES:
        raise ValueError(f"${ENV_PROFILE} must be one of {PROFILES}, got {value!r}")
    return value


def pick(default, ci):
    """``ci`` under the CI profile, else ``default`` — for sample counts and grid sizes only."""
    return ci if profile() == "ci" else default


def static_output() -> bool:
    """True when outputs must work without a kernel: during the book build and under nbval (both
    set ``$DDPM_BOOK_PROFILE``). Then interactive helpers render JavaScript animations instead of
    ipywidgets, whose Python callbacks cannot run in a static page."""
    return bool(os.environ.get(ENV_PROFILE, "").strip())
