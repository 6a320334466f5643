"""Check the built ddpm-book in a real (headless) browser.

Usage::

    python tools/check_book.py _build/html [--screenshot DIR] [--jobs 2] [--budget-ms 15000]

Every content page of the built HTML is opened in headless Chromium (Debian's ``chromium``); the
DOM after its scripts ran (MathJax included) is analysed for what a reader would see as broken:

* math that did not typeset, anywhere on the page (the sidebar lists chapter titles with math):
  an element of class ``math`` without an ``<mjx-container>``, raw ``\\(``, ``\\[``, ``$$``,
  ``\\begin{`` or ``$...\\cmd...$`` left in the text, or a MathJax error (``<mjx-merror>``);
* an external image (``<img src="https://...">``): the book must read offline;
* error output: a traceback output area, ``Traceback (most recent call last)`` in an output,
  ``Error`` in a stderr output, or a docutils system message;
* for chapter pages (built from ``*.ipynb``): no figure from a cell output, no matplotlib
  ``to_jshtml`` animation (unless the notebook's metadata holds ``"ddpm_book": {"animation":
  false}``), or no "Open in Colab" link to the chapter's student edition ``colab/<name>.ipynb``
  (a link to ``book/<name>.ipynb`` would open the MyST source, which Colab cannot render).

The analysis (:func:`analyse_dom` and its helpers) takes DOM strings only, so it is unit-tested on
small HTML snippets; the Chromium driver is the thin layer around it. Exit status: 0 when every
page is clean, 1 when some page has problems, 2 when the check could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from bs4 import BeautifulSoup, NavigableString, Tag

COLAB_PREFIX = "https://colab.research.google.com/"
# Built pages that are not worth a browser run: the (empty) Python module index, asset folders.
SKIP_PAGES = frozenset({"py-modindex.html"})
SKIP_DIRS = frozenset({"_static", "_sources", "_images", "_downloads", ".doctrees"})
# Text inside these elements is code, markup or MathJax's own output, never prose.
NON_PROSE = frozenset({"pre", "code", "script", "style", "textarea", "math", "mjx-container"})
RAW_TEX = re.compile(r"\\\(|\\\[|\$\$|\\begin\{|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class PageResult(NamedTuple):
    """The problems found on one built page (``page`` is relative to the HTML folder)."""

    page: str
    problems: tuple[str, ...]


# ----------------------------------------------------------------------------------------------
# Pure analysis of a DOM string
# ----------------------------------------------------------------------------------------------


def _classes(tag: Tag) -> list[str]:
    return list(tag.get("class") or [])


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _last_line(text: str) -> str:
    """The last non-blank line: for a traceback, the exception and its message."""
    lines = [line for line in text.splitlines() if line.strip()]
    return _short(lines[-1] if lines else "", 120)


def _article(soup: BeautifulSoup) -> Tag:
    """The page's main content: sphinx-book-theme's ``<article>``, else ``<main>``, else all."""
    found = soup.find("article", class_="bd-article") or soup.find("main") or soup.body
    return found if found is not None else soup


def _inside(node: Tag | NavigableString, names: frozenset[str], classes: frozenset[str]) -> bool:
    for parent in node.parents:
        if parent.name in names or classes.intersection(_classes(parent)):
            return True
    return False


def is_redirect(html: str) -> bool:
    """True for the tiny redirect page (``index.html``) that Jupyter Book writes at the root."""
    return re.search(r"<meta[^>]+http-equiv=[\"']?refresh", html, re.IGNORECASE) is not None


def math_problems(soup: BeautifulSoup) -> list[str]:
    """Math that a reader would see as raw TeX or as a MathJax error, anywhere on the page."""
    problems = []
    article = soup.body or soup
    math = [t for t in article.find_all(["span", "div"]) if "math" in _classes(t)]
    raw = [t for t in math if t.find("mjx-container") is None]
    if raw:
        problems.append(
            f"{len(raw)} of {len(math)} math elements did not typeset "
            f"(first: {_short(raw[0].get_text())!r})"
        )
    for text in article.find_all(string=RAW_TEX):
        if _inside(text, NON_PROSE, frozenset({"math"})):
            continue  # code, or a math element already counted above
        match = RAW_TEX.search(str(text))
        problems.append(f"raw TeX in the text: {_short(str(text)[max(0, match.start() - 20) :])!r}")
    for err in soup.find_all("mjx-merror"):
        message = err.get("data-mjx-error") or err.get("title") or err.get_text()
        problems.append(f"MathJax error: {_short(str(message))!r}")
    return problems


def external_image_problems(soup: BeautifulSoup) -> list[str]:
    """Images loaded from another host: blank for a reader without a network."""
    sources = (str(img.get("src", "")).strip() for img in soup.find_all("img"))
    return [f"external image: {src}" for src in sources if re.match(r"^(https?:)?//", src)]


def error_output_problems(soup: BeautifulSoup) -> list[str]:
    """Tracebacks and errors in cell outputs, and docutils error boxes."""
    problems = []
    article = _article(soup)
    output_classes = {"cell_output", "output"}
    outputs = [t for t in article.find_all("div") if output_classes & set(_classes(t))]
    for out in outputs:
        if any(output_classes & set(_classes(d)) for d in out.find_all("div")):
            continue  # judged at its innermost output area, so each problem is reported once
        classes = set(_classes(out))
        text = out.get_text()
        if "traceback" in classes:
            problems.append(f"error output (traceback): {_last_line(text)!r}")
        elif "Traceback (most recent call last)" in text:
            problems.append(f"traceback in an output: {_last_line(text)!r}")
        elif "stderr" in classes and "Error" in text:
            problems.append(f"'Error' in stderr output: {_short(text.strip())!r}")
    for msg in article.find_all(class_="system-message"):
        problems.append(f"docutils error message: {_short(msg.get_text())!r}")
    return problems


def _output_images(article: Tag) -> list[Tag]:
    outputs = [t for t in article.find_all("div") if "cell_output" in _classes(t)]
    return [
        img
        for out in outputs
        for img in out.find_all("img")
        if not _inside(img, frozenset(), frozenset({"animation"}))
    ]


def has_animation(soup: BeautifulSoup) -> bool:
    """A matplotlib ``FuncAnimation.to_jshtml()`` output: its frame ``<img>`` and its controls."""
    for anim in soup.find_all("div", class_="animation"):
        frame = anim.find("img", id=re.compile(r"^_anim_img"))
        controls = anim.find(class_="anim-controls") or anim.find(
            "input", id=re.compile(r"^_anim_slider")
        )
        if frame is not None and frame.get("src") and controls is not None:
            return True
    return False


def colab_links(soup: BeautifulSoup) -> list[str]:
    """Links that open a notebook in Colab."""
    hrefs = (str(a.get("href", "")) for a in soup.find_all("a"))
    return [h for h in hrefs if h.startswith(COLAB_PREFIX) and h.endswith(".ipynb")]


def chapter_problems(
    soup: BeautifulSoup, *, require_animation: bool = True, notebook: str | None = None
) -> list[str]:
    """What every chapter (a page built from ``notebook``, e.g. ``01_forward_chain.ipynb``) must
    show. Its Colab links must open the student edition, ``colab/<notebook>``."""
    problems = []
    if not _output_images(_article(soup)):
        problems.append("chapter has no figure (no <img> in any cell output)")
    if require_animation and not has_animation(soup):
        problems.append(
            "chapter has no to_jshtml animation (opt out with notebook metadata "
            '"ddpm_book": {"animation": false})'
        )
    links = colab_links(soup)
    if not links:
        problems.append(f"chapter has no 'Open in Colab' link ({COLAB_PREFIX}....ipynb)")
    elif notebook is not None:
        student = f"/colab/{notebook}"
        for link in sorted(set(links)):
            if not link.endswith(student):
                problems.append(
                    f"Colab link does not open the student edition {student[1:]}: {link}"
                )
    return problems


def analyse_dom(
    dom: str, *, is_chapter: bool, require_animation: bool = True, notebook: str | None = None
) -> list[str]:
    """All problems of one page, given its DOM after scripts ran (``chromium --dump-dom``)."""
    soup = BeautifulSoup(dom, "html.parser")
    problems = math_problems(soup) + external_image_problems(soup) + error_output_problems(soup)
    if is_chapter:
        problems += chapter_problems(soup, require_animation=require_animation, notebook=notebook)
    return problems


def notebook_requires_animation(notebook_json: str) -> bool:
    """False only when the notebook's metadata opts out: ``"ddpm_book": {"animation": false}``."""
    metadata = json.loads(notebook_json).get("metadata", {})
    return metadata.get("ddpm_book", {}).get("animation", True) is not False


def format_report(results: Iterable[PageResult]) -> str:
    """page -> problems, then the one summary line ``book check: N pages, M problems``."""
    results = list(results)
    lines = []
    for res in results:
        if res.problems:
            lines.append(f"{res.page}:")
            lines.extend(f"  - {p}" for p in res.problems)
        else:
            lines.append(f"{res.page}: ok")
    n_problems = sum(len(r.problems) for r in results)
    lines.append(f"book check: {len(results)} pages, {n_problems} problems")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Chromium driver
# ----------------------------------------------------------------------------------------------


def find_chromium() -> str | None:
    """``$CHROMIUM``, else ``chromium`` / ``chromium-browser`` on the PATH, else None."""
    candidates = [os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser"]
    for name in candidates:
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _run_chromium(chromium: str, args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    # A fresh profile per run: no cache or state leaks from one page (or run) to the next.
    with tempfile.TemporaryDirectory(prefix="check_book_") as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)


def dump_dom(chromium: str, page: Path, *, budget_ms: int = 15000, timeout_s: float = 120) -> str:
    """The DOM of ``page`` after its scripts ran for ``budget_ms`` of virtual time."""
    proc = _run_chromium(
        chromium,
        [f"--virtual-time-budget={budget_ms}", "--dump-dom", page.resolve().as_uri()],
        timeout_s,
    )
    if proc.returncode != 0 or "<html" not in proc.stdout.lower():
        tail = _short(proc.stderr.strip()[-300:], 300)
        raise RuntimeError(f"chromium returned no DOM (exit {proc.returncode}): {tail}")
    return proc.stdout


def screenshot(
    chromium: str, page: Path, png: Path, *, budget_ms: int = 15000, timeout_s: float = 120
) -> None:
    """A 1200x1400 PNG of ``page`` after its scripts ran."""
    png.parent.mkdir(parents=True, exist_ok=True)
    _run_chromium(
        chromium,
        [
            f"--virtual-time-budget={budget_ms}",
            "--window-size=1200,1400",
            "--hide-scrollbars",
            f"--screenshot={png.resolve()}",
            page.resolve().as_uri(),
        ],
        timeout_s,
    )


def content_pages(html_dir: Path) -> list[Path]:
    """Every built content page: no asset folders, index/search pages or redirects."""
    pages = []
    for path in sorted(html_dir.rglob("*.html")):
        rel = path.relative_to(html_dir)
        if rel.name in SKIP_PAGES or SKIP_DIRS.intersection(rel.parts[:-1]):
            continue
        if is_redirect(path.read_text(encoding="utf-8", errors="replace")):
            continue
        pages.append(path)
    return pages


def source_notebook(html_dir: Path, page: Path, book_root: Path) -> Path | None:
    """The notebook a page was built from (the book's source, else Sphinx's ``_sources`` copy)."""
    rel = page.relative_to(html_dir).with_suffix(".ipynb")
    for candidate in (book_root / rel, html_dir / "_sources" / rel):
        if candidate.is_file():
            return candidate
    return None


def check_page(
    chromium: str,
    html_dir: Path,
    page: Path,
    book_root: Path,
    *,
    budget_ms: int,
    screenshot_dir: Path | None,
) -> PageResult:
    rel = page.relative_to(html_dir).as_posix()
    notebook = source_notebook(html_dir, page, book_root)
    require_animation = notebook is None or notebook_requires_animation(
        notebook.read_text(encoding="utf-8")
    )
    try:
        dom = dump_dom(chromium, page, budget_ms=budget_ms)
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        return PageResult(rel, (f"could not load the page: {err}",))
    problems = analyse_dom(
        dom,
        is_chapter=notebook is not None,
        require_animation=require_animation,
        notebook=notebook.name if notebook is not None else None,
    )
    if screenshot_dir is not None:
        png = screenshot_dir / (rel.replace("/", "__").removesuffix(".html") + ".png")
        screenshot(chromium, page, png, budget_ms=budget_ms)
    return PageResult(rel, tuple(problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", type=Path, help="the built book, e.g. _build/html")
    parser.add_argument(
        "--book-root",
        type=Path,
        default=None,
        help="where the sources live (default: two levels above html_dir, i.e. the repo root)",
    )
    parser.add_argument("--screenshot", type=Path, default=None, metavar="DIR")
    parser.add_argument("--jobs", type=int, default=2, help="pages checked at once (default 2)")
    parser.add_argument("--budget-ms", type=int, default=15000, help="virtual time per page")
    args = parser.parse_args(argv)

    html_dir: Path = args.html_dir
    if not html_dir.is_dir():
        print(f"book check: {html_dir} is not a folder (build the book first: make book)")
        return 2
    if args.jobs < 1:
        print(f"book check: --jobs must be >= 1, got {args.jobs}")
        return 2
    chromium = find_chromium()
    if chromium is None:
        print("book check: chromium not found (Debian: apt-get install chromium; or set CHROMIUM)")
        return 2
    book_root = args.book_root or html_dir.resolve().parent.parent
    pages = content_pages(html_dir)
    if not pages:
        print(f"book check: no content pages under {html_dir}")
        return 2

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(
            pool.map(
                lambda p: check_page(
                    chromium,
                    html_dir,
                    p,
                    book_root,
                    budget_ms=args.budget_ms,
                    screenshot_dir=args.screenshot,
                ),
                pages,
            )
        )
    print(format_report(results))
    print(f"({time.perf_counter() - start:.1f} s, chromium {chromium})", file=sys.stderr)
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
