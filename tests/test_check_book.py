"""The browser check of the built book (tools/check_book.py).

The analysis is tested on small synthetic pages, one rule at a time, each in a passing and a
failing form; the Chromium driver is tested on a real page that typesets the book's macros with
the offline MathJax (skipped without Chromium, except under CI where it must be there). The
book's macros live in _config.yml; every chapter's macro cell is written from them (make colab).
"""

import functools
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_book  # noqa: E402

import colab  # noqa: E402

TYPESET = '<span class="math notranslate nohighlight"><mjx-container>x</mjx-container></span>'
RAW = '<span class="math notranslate nohighlight">\\(x_t\\)</span>'
FIGURE = '<div class="cell_output docutils container"><img src="../_images/fig.png"></div>'
ANIMATION = (
    '<div class="cell_output docutils container"><div class="output text_html">'
    '<div class="animation"><img id="_anim_imgabc" src="data:image/png;base64,AAA">'
    '<div class="anim-controls"><input id="_anim_sliderabc" type="range"></div></div></div></div>'
)
COLAB = '<a href="https://colab.research.google.com/github/o/r/blob/main/colab/01.ipynb">Colab</a>'
# myst-nb's markup for an error output and a stderr stream
TRACEBACK = (
    '<div class="cell_output docutils container">'
    '<div class="output traceback highlight-ipythontb notranslate"><pre>'
    "RuntimeError  Traceback (most recent call last)\n----> 1 raise RuntimeError('boom')"
    "</pre></div></div>"
)


def page(body: str) -> str:
    return f'<html><body><main><article class="bd-article">{body}</article></main></body></html>'


def stderr(text: str) -> str:
    return (
        '<div class="cell_output docutils container"><div class="output stderr '
        f'highlight-myst-ansi notranslate"><pre>{text}</pre></div></div>'
    )


def analyse(body: str, **kw) -> list[str]:
    kw.setdefault("is_chapter", False)
    return check_book.analyse_dom(page(body), **kw)


# --- math ---------------------------------------------------------------------------------------


def test_untypeset_math_in_the_sidebar_fails_too():
    # the proof index once showed the chapter titles of the navigation as raw TeX
    nav = f'<nav class="bd-links"><a href="b.html">2. The closed form of {RAW}</a></nav>'
    page_with_nav = (
        f"<html><body>{nav}<main><article class='bd-article'>x</article></main></body></html>"
    )
    problems = check_book.analyse_dom(page_with_nav, is_chapter=False)
    assert len(problems) == 1 and "1 of 1 math elements did not typeset" in problems[0]
    typeset_nav = page_with_nav.replace(RAW, TYPESET)
    assert check_book.analyse_dom(typeset_nav, is_chapter=False) == []


def test_an_external_image_fails_a_local_or_inline_one_passes():
    badge = '<img src="https://colab.research.google.com/assets/colab-badge.svg">'
    assert analyse(badge) == [
        "external image: https://colab.research.google.com/assets/colab-badge.svg"
    ]
    assert len(analyse('<img src="//cdn.example.org/x.png">')) == 1
    assert (
        analyse('<img src="_static/images/logo_colab.png"><img src="data:image/png;base64,AA">')
        == []
    )


def test_typeset_math_passes_and_untypeset_math_fails():
    assert analyse(f"<p>see {TYPESET} and {TYPESET}</p>") == []
    problems = analyse(TYPESET + RAW)
    assert len(problems) == 1
    assert "1 of 2 math elements did not typeset" in problems[0] and "x_t" in problems[0]


@pytest.mark.parametrize(
    "text",
    ["so $\\alpha_t$ is raw", "as \\(x\\) shows", "$$ x = 1 $$", "\\begin{align} a \\end{align}"],
)
def test_raw_tex_in_prose_fails(text):
    problems = analyse(f"<p>{text}</p>")
    assert len(problems) == 1 and "raw TeX" in problems[0]


def test_code_and_prices_are_not_raw_tex():
    assert (
        analyse("<pre>r'$\\beta_t$' and \\(x\\)</pre><p><code>$$</code> costs $5 or $6</p>") == []
    )


def test_mathjax_error_fails():
    err = '<mjx-merror data-mjx-error="Undefined control sequence \\abr"></mjx-merror>'
    problems = analyse(f'<span class="math"><mjx-container>{err}</mjx-container></span>')
    assert problems == ["MathJax error: 'Undefined control sequence \\\\abr'"]


# --- error outputs ------------------------------------------------------------------------------


def test_traceback_output_fails_once():
    problems = analyse(TYPESET + TRACEBACK)
    assert len(problems) == 1 and "traceback" in problems[0] and "boom" in problems[0]


def test_traceback_text_in_a_plain_output_fails():
    tb = '<div class="cell_output docutils container"><pre>Traceback (most recent call last):\n x</pre></div>'
    problems = analyse(tb)
    assert len(problems) == 1 and "traceback" in problems[0]


def test_error_in_stderr_fails_but_a_warning_or_progress_bar_passes():
    assert analyse(stderr("100%|##########| 50/50 [00:01<00:00]")) == []
    assert analyse(stderr("UserWarning: the schedule is short")) == []
    problems = analyse(stderr("ValueError: t=0 is outside 1..T"))
    assert len(problems) == 1 and "stderr" in problems[0]


def test_docutils_error_box_fails():
    problems = analyse('<div class="system-message"><p>Unknown directive type "prof"</p></div>')
    assert len(problems) == 1 and "Unknown directive" in problems[0]


# --- chapters -----------------------------------------------------------------------------------


def test_a_good_chapter_passes():
    assert analyse(TYPESET + FIGURE + ANIMATION + COLAB, is_chapter=True) == []


def test_chapter_without_colab_link_fails():
    problems = analyse(FIGURE + ANIMATION, is_chapter=True)
    assert len(problems) == 1 and "Colab" in problems[0]
    # a link to Colab's home page does not open the chapter
    home = '<a href="https://colab.research.google.com/">Colab</a>'
    assert len(analyse(FIGURE + ANIMATION + home, is_chapter=True)) == 1


def test_the_colab_link_must_open_the_student_edition():
    ok = analyse(FIGURE + ANIMATION + COLAB, is_chapter=True, notebook="01.ipynb")
    assert ok == []
    source = COLAB.replace("/colab/", "/book/")  # the MyST source, which Colab shows raw
    problems = analyse(FIGURE + ANIMATION + source, is_chapter=True, notebook="01.ipynb")
    assert len(problems) == 1 and "student edition colab/01.ipynb" in problems[0]


def test_chapter_without_figure_or_animation_fails():
    no_fig = analyse(ANIMATION + COLAB, is_chapter=True)
    assert len(no_fig) == 1 and "no figure" in no_fig[0]  # the animation's frame is no figure
    no_anim = analyse(FIGURE + COLAB, is_chapter=True)
    assert len(no_anim) == 1 and "animation" in no_anim[0]
    assert analyse(FIGURE + COLAB, is_chapter=True, require_animation=False) == []
    # the same markup on a page that is no chapter asks for nothing
    assert analyse("<p>text</p>", is_chapter=False) == []


def test_animation_opt_out_is_read_from_notebook_metadata():
    assert not check_book.notebook_requires_animation(
        '{"metadata": {"ddpm_book": {"animation": false}}}'
    )
    assert check_book.notebook_requires_animation('{"metadata": {}}')
    assert check_book.notebook_requires_animation('{"metadata": {"ddpm_book": {}}}')


# --- pages and report ---------------------------------------------------------------------------


def test_content_pages_skip_indexes_assets_and_redirects(tmp_path):
    html = tmp_path / "_build" / "html"
    for rel in ["book/intro.html", "book/01.html", "genindex.html", "py-modindex.html",
                "_static/x.html", "_sources/book/y.html"]:  # fmt: skip
        (html / rel).parent.mkdir(parents=True, exist_ok=True)
        (html / rel).write_text(page("<p>x</p>"))
    (html / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html">')
    found = [p.relative_to(html).as_posix() for p in check_book.content_pages(html)]
    assert found == ["book/01.html", "book/intro.html", "genindex.html"]
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "01.ipynb").write_text("{}")
    assert check_book.source_notebook(html, html / "book/01.html", tmp_path) is not None
    assert check_book.source_notebook(html, html / "book/intro.html", tmp_path) is None


def test_report_lists_problems_per_page_and_counts_them():
    report = check_book.format_report(
        [
            check_book.PageResult("book/intro.html", ()),
            check_book.PageResult("book/01.html", ("no figure", "no Colab")),
        ]
    )
    lines = report.splitlines()
    assert lines[0] == "book/intro.html: ok"
    assert lines[1:4] == ["book/01.html:", "  - no figure", "  - no Colab"]
    assert lines[-1] == "book check: 2 pages, 2 problems"


def test_missing_build_folder_exits_2(tmp_path, capsys):
    assert check_book.main([str(tmp_path / "nowhere")]) == 2
    assert "make book" in capsys.readouterr().out


# --- the book's LaTeX macros --------------------------------------------------------------------


def config_macros() -> dict[str, str]:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return config["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]


@functools.cache  # Book.load() reads every chapter and the config: once, not once per test
def macro_cell() -> str:
    return colab.Book.load().macro_line()


def parse_newcommands(cell: str) -> dict[str, str]:
    """``\\newcommand{\\name}{body}`` pairs; the body ends at its matching brace."""
    macros = {}
    for match in re.finditer(r"\\newcommand\{\\(\w+)\}\{", cell):
        depth, end = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(cell[end], 0)
            end += 1
        macros[match.group(1)] = cell[match.end() : end - 1]
    return macros


def test_macro_cell_defines_the_config_macros():
    cell = macro_cell()
    assert cell.endswith("$") and cell.count("$") == 2
    assert parse_newcommands(cell) == config_macros()
    required = {"E", "KL", "N", "bx", "beps", "I", "abar"}
    assert required <= set(config_macros())


# --- one real browser run -----------------------------------------------------------------------


def chromium_or_skip() -> str:
    chromium = check_book.find_chromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have chromium for the browser check (apt-get install chromium)")
        pytest.skip("chromium not installed")
    return chromium


@pytest.mark.slow  # a real Chromium run, ~3 s
def test_offline_mathjax_typesets_the_book_macros_in_chromium(tmp_path):
    chromium = chromium_or_skip()
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    assert spec is not None and spec.submodule_search_locations
    tex_chtml = Path(spec.submodule_search_locations[0]) / "static" / "mathjax" / "tex-chtml.js"
    config = {"tex": {"macros": config_macros()}, "options": {"processHtmlClass": "math"}}
    head = (
        f"<script>window.MathJax = {json.dumps(config)}</script>"
        f'<script defer src="{tex_chtml.as_uri()}"></script>'
    )
    math = (
        f'<span class="math">\\({macro_cell()[1:-1]}\\)</span>'  # redefining must not error
        '<span class="math">\\(\\bx_t = \\sqrt{\\abar_t}\\,\\bx_0 + \\beps,\\ '
        "\\beps \\sim \\N(\\mathbf{0}, \\I),\\ \\E,\\ \\KL,\\ \\bmu,\\ \\R,\\ \\SNR\\)</span>"
    )
    good = tmp_path / "good.html"
    good.write_text(f"<html><head>{head}</head><body><article>{math}</article></body></html>")
    dom = check_book.dump_dom(chromium, good, budget_ms=10000)
    assert dom.count("<mjx-container") == 2
    assert check_book.analyse_dom(dom, is_chapter=False) == []
    # the same page without MathJax shows raw TeX, and the check says so
    bare = tmp_path / "bare.html"
    bare.write_text(f"<html><body><article>{math}</article></body></html>")
    problems = check_book.analyse_dom(check_book.dump_dom(chromium, bare), is_chapter=False)
    assert len(problems) == 1 and "2 of 2 math elements did not typeset" in problems[0]


@pytest.mark.parametrize("notebook", sorted((ROOT / "book").glob("*.ipynb")), ids=lambda p: p.name)
def test_every_chapter_defines_the_macros_in_a_removed_cell(notebook):
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    macro_cells = [c for c in cells if "".join(c["source"]).strip() == macro_cell()]
    assert macro_cells, f"{notebook.name}: no macro cell: run `make colab`, which writes it"
    assert macro_cells[0]["cell_type"] == "markdown"
    assert "remove-cell" in macro_cells[0]["metadata"].get("tags", [])
