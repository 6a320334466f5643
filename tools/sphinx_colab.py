"""The book's own Sphinx extension (``_config.yml``: ``sphinx: local_extensions``).

* **MathJax on every page.** Sphinx loads MathJax only on pages that contain math, but the
  sidebar of every page lists the chapter titles, and some have math: on the proof index
  (``prf-prf.html``), the general index and the search page they showed as raw ``\\(...\\)``.
* **The Colab button opens the student edition.** sphinx-book-theme points the launch button at
  the page's own source, ``book/NN_*.ipynb``; readers should get ``colab/NN_*.ipynb``, the
  notebook that renders in Colab (tools/colab.py writes it). A chapter without its Colab edition
  is a build warning, i.e. an error under ``-W``: run ``make colab``.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)
COLAB_BOOK_NOTEBOOK = re.compile(
    r"^(?P<base>https://colab\.research\.google\.com/github/.+?/blob/[^/]+/)(?P<path>.+\.ipynb)$"
)


def student_edition_url(url: str, srcdir: Path) -> str | None:
    """The Colab URL of ``colab/<name>.ipynb`` for a Colab URL of ``book/<name>.ipynb``.

    None when the URL opens no chapter notebook, or when the student edition does not exist.
    """
    m = COLAB_BOOK_NOTEBOOK.match(url)
    if m is None or posixpath.dirname(m["path"]) != "book":
        return None
    name = posixpath.basename(m["path"])
    if not (srcdir / "colab" / name).is_file():
        return None
    return f"{m['base']}colab/{name}"


def _retarget_colab_button(
    app: Sphinx, pagename: str, templatename, context: dict, doctree
) -> None:
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            url = button.get("url", "")
            if not url.startswith("https://colab.research.google.com/"):
                continue
            new = student_edition_url(url, Path(app.srcdir))
            if new is None:
                logger.warning(
                    f"{pagename}: no Colab edition for {url.rsplit('/', 1)[-1]}: run `make colab`",
                    location=pagename,
                )
            else:
                button["url"] = new


def setup(app: Sphinx) -> dict:
    app.set_html_assets_policy("always")
    # after sphinx-book-theme's add_launch_buttons (priority 501)
    app.connect("html-page-context", _retarget_colab_button, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
