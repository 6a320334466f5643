"""Check the Colab edition the way a reader sees it, in a real (headless) browser.

Usage::

    python tools/check_colab.py colab [--book-html _build/html] [--screenshot DIR] [--keep DIR]

Every notebook under the given folders (``colab/*.ipynb`` and ``colab/instructor/*.ipynb``) is
converted with ``jupyter nbconvert --to html`` (plain Jupyter Markdown, as Colab renders it: no
Sphinx), with MathJax 3 from the offline copy that ``sphinx-mathjax-offline`` ships and MathJax
configured as in Jupyter and Colab (``$...$`` and ``$$...$$``, no macros of the book). The page
is opened in headless Chromium (tools/check_book.py's driver) and its Markdown cells must show

* no MyST syntax: ``:::``, fences, ``{prf:...}``, ``{eq}``, ``{solution...}``, ``{doc}``,
  ``{ref}`` or any other ``{role}``, ``(label)=`` targets, ``:option:`` lines, or a directive
  rendered as a code block;
* math that typesets: at least one ``<mjx-container>``, no raw ``$$``, ``\\(``, ``\\[``,
  ``\\begin{`` or ``$...\\cmd...$``, no MathJax error (an undefined macro is one).

With ``--book-html``, the equation, theorem and exercise numbers that tools/colab.py computed are
compared with those the built book shows. Exit status: 0 clean, 1 problems, 2 could not run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bs4 import BeautifulSoup, NavigableString

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_book  # noqa: E402

import colab  # noqa: E402

# What Jupyter and Colab do: $...$ inline, $$...$$ display, escaped \$ left alone. Without the
# "noundefined" package an undefined macro (one of the book's, unexpanded) is an error the check
# sees, not just red text.
MATHJAX_CONFIG = {
    "tex": {
        "packages": {"[-]": ["noundefined"]},
        "inlineMath": [["$", "$"], ["\\(", "\\)"]],
        "displayMath": [["$$", "$$"], ["\\[", "\\]"]],
        "processEscapes": True,
        "processEnvironments": True,
    },
    "options": {"ignoreHtmlClass": "jp-CodeCell|jp-OutputArea"},
}
MYST = re.compile(
    r":::|```|~~~"
    r"|\{[a-z][\w-]*(?::[\w-]+)?\}"  # a role or directive name: {eq}, {prf:ref}, {solution-start}
    r"|^\s*\([\w:.-]+\)=\s*$"  # a target
    r"|^\s*:[a-z][\w-]*:",  # a directive option
    re.MULTILINE,
)
NON_TEXT = frozenset({"code", "pre", "script", "style", "mjx-container"})


def offline_mathjax() -> Path:
    """MathJax 3's ``tex-chtml.js`` from the ``sphinx-mathjax-offline`` package."""
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("sphinx-mathjax-offline is not installed (make install)")
    path = Path(spec.submodule_search_locations[0]) / "static" / "mathjax" / "tex-chtml.js"
    if not path.is_file():
        raise RuntimeError(f"no MathJax in sphinx-mathjax-offline: {path} is missing")
    return path


def to_html(notebook: Path, out_dir: Path, mathjax: Path) -> Path:
    """``jupyter nbconvert --to html`` with the offline MathJax 3, configured like Jupyter's."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = notebook.stem + ("-instructor" if notebook.parent.name == "instructor" else "")
    cmd = [
        sys.executable,
        "-m",
        "nbconvert",
        "--to",
        "html",
        f"--HTMLExporter.mathjax_url={mathjax.as_uri()}",
        "--output-dir",
        str(out_dir),
        "--output",
        name,
        str(notebook),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    html = out_dir / f"{name}.html"
    if proc.returncode != 0 or not html.is_file():
        raise RuntimeError(f"nbconvert failed on {notebook}: {proc.stderr.strip()[-400:]}")
    # nbconvert's template configures MathJax 2, which MathJax 3 ignores: configure 3 before it loads
    text = html.read_text(encoding="utf-8")
    loader = f'<script src="{mathjax.as_uri()}">'
    if loader not in text:
        raise RuntimeError(f"nbconvert's page does not load {mathjax.as_uri()}")
    config = f"<script>window.MathJax = {json.dumps(MATHJAX_CONFIG)};</script>\n"
    html.write_text(text.replace(loader, config + loader, 1), encoding="utf-8")
    return html


def _prose(cell) -> str:
    """The visible text of a rendered Markdown cell, without code and typeset math."""
    parts = []
    for text in cell.find_all(string=True):
        if not isinstance(text, NavigableString) or any(p.name in NON_TEXT for p in text.parents):
            continue
        parts.append(str(text))
    return "".join(parts)


def analyse_colab_dom(dom: str) -> list[str]:
    """What a reader of the converted notebook would see as broken (DOM after MathJax ran)."""
    soup = BeautifulSoup(dom, "html.parser")
    cells = soup.select(".jp-MarkdownCell .jp-RenderedMarkdown") or soup.select(".text_cell_render")
    if not cells:
        return ["no rendered Markdown cells (is this a page nbconvert wrote?)"]
    problems = []
    for cell in cells:
        text = _prose(cell)
        for m in MYST.finditer(text):
            start = max(0, m.start() - 30)
            problems.append(f"MyST syntax {m[0].strip()!r} in: {check_book._short(text[start:])!r}")
        for code in cell.find_all("code"):
            classes = " ".join(code.get("class") or [])
            if "{" in classes or code.get_text().lstrip().startswith("{"):
                problems.append(
                    f"a directive shown as code: {check_book._short(code.get_text())!r}"
                )
        if m := check_book.RAW_TEX.search(text):
            problems.append(f"raw TeX: {check_book._short(text[max(0, m.start() - 20) :])!r}")
    for err in soup.find_all("mjx-merror"):
        message = err.get("data-mjx-error") or err.get("title") or err.get_text()
        problems.append(f"MathJax error: {check_book._short(str(message))!r}")
    if not any(cell.find("mjx-container") for cell in cells):
        problems.append("no typeset math at all (did MathJax load?)")
    return problems


def numbering_problems(html_dir: Path, book: colab.Book) -> list[str]:
    """Labels whose number in tools/colab.py differs from the one the built book shows."""
    problems, pages = [], {}
    for label, target in book.targets().items():
        if target.number is None or target.kind in ("section", "figure") or "#" in label:
            continue  # unnumbered, or an unlabelled block the HTML names by a generated id
        page = html_dir / f"{target.docname}.html"
        if not page.is_file():
            problems.append(f"{target.docname}.html is missing from {html_dir}")
            continue
        soup = pages.get(page) or pages.setdefault(
            page, BeautifulSoup(page.read_text(), "html.parser")
        )
        if target.kind == "equation":
            link = soup.select_one(f'span.eqno a.headerlink[href="#equation-{label}"]')
            shown = link.parent.get_text().strip() if link is not None else None
            shown = shown[: shown.index(")") + 1] if shown and ")" in shown else shown
        else:
            node = soup.find(id=label)
            caption = node.find(class_="caption-number") if node is not None else None
            shown = caption.get_text().strip() if caption is not None else None
        if shown is None:
            problems.append(f"{label}: not found in {page.relative_to(html_dir)}")
        elif shown != target.name:
            problems.append(f"{label}: the book shows {shown!r}, the Colab edition {target.name!r}")
    return problems


def check_notebook(
    chromium: str, notebook: Path, out_dir: Path, mathjax: Path, budget_ms: int, shots: Path | None
) -> check_book.PageResult:
    try:
        html = to_html(notebook, out_dir, mathjax)
        dom = check_book.dump_dom(chromium, html, budget_ms=budget_ms)
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        return check_book.PageResult(str(notebook), (f"could not check: {err}",))
    if shots is not None:
        check_book.screenshot(chromium, html, shots / f"{html.stem}.png", budget_ms=budget_ms)
    return check_book.PageResult(str(notebook), tuple(analyse_colab_dom(dom)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", type=Path, nargs="+", help="folders of notebooks, e.g. colab")
    parser.add_argument("--book-html", type=Path, default=None, help="compare numbers with it")
    parser.add_argument("--screenshot", type=Path, default=None, metavar="DIR")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR", help="keep the HTML here")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--budget-ms", type=int, default=15000)
    args = parser.parse_args(argv)

    notebooks = sorted(p for f in args.folders for p in [*f.glob("*.ipynb"), *f.glob("*/*.ipynb")])
    if not notebooks:
        print(f"colab check: no notebooks in {', '.join(map(str, args.folders))}")
        return 2
    chromium = check_book.find_chromium()
    if chromium is None:
        print("colab check: chromium not found (Debian: apt-get install chromium; or set CHROMIUM)")
        return 2
    try:
        mathjax = offline_mathjax()
    except RuntimeError as err:
        print(f"colab check: {err}")
        return 2
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="check_colab_") as tmp:
        out_dir = args.keep or Path(tmp)
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(
                pool.map(
                    lambda nb: check_notebook(
                        chromium, nb, out_dir, mathjax, args.budget_ms, args.screenshot
                    ),
                    notebooks,
                )
            )
    if args.book_html is not None:
        numbering = tuple(numbering_problems(args.book_html, colab.Book.load()))
        results.append(check_book.PageResult(f"numbers vs {args.book_html}", numbering))
    print(check_book.format_report(results).replace("book check:", "colab check:"))
    print(f"({time.perf_counter() - start:.1f} s, chromium {chromium})", file=sys.stderr)
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
