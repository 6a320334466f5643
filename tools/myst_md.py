"""MyST Markdown -> plain Markdown that Jupyter, Colab and nbconvert render without Sphinx.

The book's Markdown cells use MyST: directives (``:::{prf:theorem}``, ``:::{exercise}``,
```` ```{solution-start} ````, admonitions), roles (``{eq}`label` ``, ``{prf:ref}``, ``{doc}``),
labelled equations (``$$ ... $$ (label)``), targets (``(label)=``) and the book's LaTeX macros.
This module turns one cell's source into Markdown with none of that syntax:

* theorem-like and exercise blocks become a bold header, ``**Theorem 4 (name).**``, followed by
  their body (the caller puts each in a cell of its own); a proof ends with ``∎``;
* labelled equations get ``\\tag{N}`` and equation references become ``(N)``, with N the number
  the built book shows (computed by :func:`collect_targets`, which numbers the way Sphinx does);
* admonitions become a bold header, dropdowns an HTML ``<details>`` block;
* solutions are dropped in the student edition and kept, under a header, in the instructor one;
* the book's macros are expanded inside math, so that every cell renders on its own, whatever a
  renderer does with ``\\newcommand`` across cells.

Pure text in, text out: no Sphinx, no notebook I/O (tools/colab.py does that).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# sphinx-proof's directive types (``{prf:<type>}``); each has a counter of its own unless
# ``prf_realtyp_to_countertyp`` in the Sphinx config maps it onto another type's counter.
PROOF_TYPES = frozenset(
    "axiom theorem lemma algorithm definition remark conjecture corollary criterion example "
    "property observation proposition assumption notation".split()
)
ADMONITIONS = {
    "note": "Note",
    "tip": "Tip",
    "hint": "Hint",
    "important": "Important",
    "warning": "Warning",
    "caution": "Caution",
    "attention": "Attention",
    "danger": "Danger",
    "error": "Error",
    "seealso": "See also",
    "admonition": "",
    "margin": "",
    "sidebar": "",
    "topic": "",
    "epigraph": "",
    "card": "",
    "tab-item": "",
}
TRANSPARENT = frozenset({"tab-set", "grid", "grid-item", "div", "container"})
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
DIRECTIVE_INFO = re.compile(r"^\s*\{(?P<name>[^}\s]+)\}\s*(?P<arg>.*?)\s*$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):(?:\s+(?P<value>.*?))?\s*$")
TARGET = re.compile(r"^\s*\((?P<label>[^()\s]+)\)=\s*$")
HEADING = re.compile(r"^\s{0,3}(?P<hashes>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
COMMENT = re.compile(r"^\s*%")
# One scanner for the inline level: roles first (so that their backticks are not read as a code
# span), then code spans (left alone), display math (optionally labelled), inline math and bare
# amsmath environments. Inline math is what the book's MyST settings make math (jupyter-book sets
# dmath_allow_space and dmath_allow_digits): any $...$ without a blank line inside.
INLINE = re.compile(
    r"(?P<role>\{(?P<rname>[A-Za-z][\w:.+-]*)\}`(?P<rbody>[^`]*)`)"
    r"|(?P<code>(?P<ticks>`+)(?:.|\n)+?(?<!`)(?P=ticks)(?!`))"
    r"|(?P<dmath>\$\$(?P<dbody>(?:.|\n)+?)\$\$(?:[ \t]*\((?P<dlabel>[^()\s]+)\))?)"
    r"|(?P<imath>(?<![\\$])\$(?!\$)(?P<ibody>(?:\\.|[^$\\\n]|\n(?![ \t]*\n))+?)\$)"
    r"|(?P<env>\\begin\{(?P<ename>[A-Za-z]+\*?)\}(?:.|\n)*?\\end\{(?P=ename)\})"
)
END_OF_PROOF = "∎"


class MystError(ValueError):
    """A cell the converter cannot translate faithfully (an unknown label, an unclosed region)."""


# ----------------------------------------------------------------------------------------------
# Block structure: text, code fences and directives (with nesting)
# ----------------------------------------------------------------------------------------------


@dataclass
class Text:
    lines: list[str]


@dataclass
class Code:
    """A fenced code block that is no directive: copied verbatim."""

    lines: list[str]


@dataclass
class Directive:
    name: str
    arg: str
    options: dict[str, str]
    body: list[str]

    @property
    def kind(self) -> str:
        """The name without sphinx-proof's ``prf:`` prefix."""
        return self.name.removeprefix("prf:")


Block = Text | Code | Directive


def _find_close(lines: list[str], start: int, char: str, length: int, directive: bool) -> int:
    """Index of the line that closes a fence of ``length`` ``char``s opened before ``start``.

    In a directive, a nested fence (a directive, or a code block) is skipped as a whole, so that
    a ``:::`` inside a code block or a shorter fence of the same character does not close it; in a
    code block nothing nests. Returns ``len(lines)`` for a fence left open (it then runs to the
    end, as in markdown-it).
    """
    j = start
    while j < len(lines):
        m = FENCE.match(lines[j])
        if m:
            fence, info = m["fence"], m["info"].strip()
            if fence[0] == char and len(fence) >= length and not info:
                return j
            if directive and (info or fence[0] != ":"):  # a nested directive or code block
                nested = fence[0] == ":" or DIRECTIVE_INFO.match(info) is not None
                j = _find_close(lines, j + 1, fence[0], len(fence), nested) + 1
                continue
        j += 1
    return len(lines)


def _split_options(body: list[str]) -> tuple[dict[str, str], list[str]]:
    """``:key: value`` lines (or a ``---`` YAML block) at the top of a directive's body."""
    options: dict[str, str] = {}
    if body and body[0].strip() == "---":
        end = next((i for i in range(1, len(body)) if body[i].strip() == "---"), None)
        if end is not None:
            for line in body[1:end]:
                key, _, value = line.partition(":")
                if key.strip():
                    options[key.strip()] = value.strip().strip("\"'")
            return options, body[end + 1 :]
    i = 0
    while i < len(body) and (m := OPTION.match(body[i])):
        options[m["key"]] = m["value"] or ""
        i += 1
    return options, body[i:]


def parse_blocks(text: str | list[str]) -> list[Block]:
    """Split MyST Markdown into text, code fences and directives (directive bodies unparsed)."""
    lines = text.split("\n") if isinstance(text, str) else list(text)
    blocks: list[Block] = []
    pending: list[str] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None or (m["fence"][0] == ":" and not m["info"].strip()):
            pending.append(lines[i])  # text, or a stray closing colon fence
            i += 1
            continue
        if pending:
            blocks.append(Text(pending))
            pending = []
        directive = DIRECTIVE_INFO.match(m["info"])
        end = _find_close(lines, i + 1, m["fence"][0], len(m["fence"]), directive is not None)
        if directive is None:
            blocks.append(Code(lines[i : end + 1]))
        else:
            options, body = _split_options(lines[i + 1 : end])
            blocks.append(Directive(directive["name"], directive["arg"], options, body))
        i = end + 1
    if pending:
        blocks.append(Text(pending))
    return blocks


# ----------------------------------------------------------------------------------------------
# Numbering: what the built book calls (N), Theorem N, Exercise N
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Something a reference can point at: its kind ("equation", "theorem", "exercise",
    "section", "figure", ...), the number the book gives it (None: unnumbered), a title."""

    kind: str
    number: int | None
    title: str
    docname: str

    @property
    def name(self) -> str:
        """``Theorem 3``, ``Exercise 2``, ``(5)`` for an equation, the title for a section."""
        if self.kind == "equation":
            return f"({self.number})"
        if self.kind == "section" or self.number is None:
            return self.title or self.kind.capitalize()
        return f"{'Fig.' if self.kind == 'figure' else self.kind.capitalize()} {self.number}"


def _labelled_equations(lines: Iterable[str]) -> list[str]:
    text = "\n".join(_strip_comments_and_targets(list(lines))[0])
    return [m["dlabel"] for m in INLINE.finditer(text) if m["dmath"] and m["dlabel"]]


def _numbered_kind(d: Directive) -> str | None:
    """The kind under which a directive is numbered ("theorem", "exercise", ...), else None."""
    if d.name.startswith("prf:") and d.kind in PROOF_TYPES:
        return d.kind
    if d.kind in ("exercise", "exercise-start"):
        return "exercise"
    return None


def _key(d: Directive, doc: str, anonymous: dict[str, int]) -> str:
    """A directive's label, or for an unlabelled numbered one ``doc#kind<n>``: Sphinx numbers
    those too, so the converter finds them by their position in the document."""
    label = d.options.get("label") or d.options.get("name")
    if label:
        return label
    kind = _numbered_kind(d) or d.kind
    anonymous[kind] = anonymous.get(kind, 0) + 1
    return f"{doc}#{kind}{anonymous[kind]}"


def collect_targets(
    docs: Iterable[tuple[str, list[str]]], counter_of: dict[str, str] | None = None
) -> dict[str, Target]:
    """Number every equation, theorem-like block, exercise and named figure as Sphinx does.

    ``docs`` are ``(docname, markdown sources)`` in the order of the table of contents (the root
    first, then each entry depth-first). With an unnumbered table of contents Sphinx keeps one
    counter per kind for the whole book, so numbers run on from chapter to chapter; labelled
    equations count, unlabelled ones do not; every theorem-like block and exercise counts unless
    it says ``:nonumber:``. ``counter_of`` is sphinx-proof's ``prf_realtyp_to_countertyp``.
    """
    counter_of = counter_of or {}
    counters: dict[str, int] = {}
    targets: dict[str, Target] = {}

    def add(label: str, kind: str, counter: str | None, title: str, doc: str) -> None:
        number = None
        if counter is not None:
            number = counters[counter] = counters.get(counter, 0) + 1
        if label in targets:
            raise MystError(f"label {label!r} is defined twice ({targets[label].docname}, {doc})")
        targets[label] = Target(kind, number, title, doc)

    def walk(blocks: list[Block], doc: str, anonymous: dict[str, int]) -> None:
        for block in blocks:
            if isinstance(block, Text):
                lines = block.lines
                for i, line in enumerate(lines):
                    if (m := TARGET.match(line)) and (heading := _next_heading(lines, i + 1)):
                        add(m["label"], "section", None, heading, doc)
                for label in _labelled_equations(lines):
                    add(label, "equation", "equation", "", doc)
            elif isinstance(block, Directive):
                numbered = "nonumber" not in block.options
                label = block.options.get("label") or block.options.get("name")
                kind = _numbered_kind(block)
                if kind is not None:
                    counter = counter_of.get(kind, kind) if numbered else None
                    add(_key(block, doc, anonymous), kind, counter, block.arg, doc)
                elif block.kind == "math" and label:
                    add(label, "equation", "equation", "", doc)
                elif block.kind == "figure" and label:
                    add(label, "figure", "figure", " ".join(block.body).strip(), doc)
                walk(parse_blocks(block.body), doc, anonymous)

    for doc, sources in docs:
        anonymous: dict[str, int] = {}
        for source in sources:
            walk(parse_blocks(source), doc, anonymous)
    return targets


def _next_heading(lines: list[str], start: int) -> str | None:
    for line in lines[start:]:
        if line.strip():
            m = HEADING.match(line)
            return m["text"] if m else None
    return None


# ----------------------------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------------------------


@dataclass
class Context:
    """What converting one notebook needs, and the state carried from cell to cell."""

    targets: dict[str, Target]
    macros: dict[str, str | list]
    edition: str  # "student" (solutions dropped) or "instructor" (solutions kept)
    docname: str
    # docname -> (title, URL or None): where a {doc} reference points in this edition
    resolve_doc: Callable[[str], tuple[str, str | None]] = lambda doc: (doc, None)
    # a figure's path (relative to the document) -> the URL the Markdown image uses
    image_url: Callable[[str], str] = lambda path: path
    solution: str | None = None  # inside {solution-start} ... {solution-end}: its exercise label
    warnings: list[str] = field(default_factory=list)
    anonymous: dict[str, int] = field(default_factory=dict)  # unlabelled numbered blocks so far

    @property
    def drop_solutions(self) -> bool:
        return self.edition == "student"

    def target(self, label: str, role: str) -> Target:
        if label not in self.targets:
            raise MystError(f"{self.docname}: {{{role}}} refers to an unknown label {label!r}")
        return self.targets[label]


def expand_macros(math: str, macros: dict[str, str | list]) -> str:
    """Replace the book's macros by their definitions inside one piece of TeX.

    A macro is ``body`` or ``[body, n_args]`` (MathJax's format); arguments are ``{...}`` groups
    or single tokens, substituted for ``#1`` ... ``#n``. Each expansion is wrapped in braces, so
    that it stays one argument (``\\tilde\\bmu``) as the macro was. Applied until nothing
    changes, so a macro may use another one.
    """
    if not macros:
        return math
    names = "|".join(sorted((re.escape(n) for n in macros), key=len, reverse=True))
    pattern = re.compile(rf"\\({names})(?![A-Za-z])")
    for _ in range(10):
        out, pos = [], 0
        for m in pattern.finditer(math):
            if m.start() < pos:
                continue
            definition = macros[m[1]]
            body, n_args = (definition, 0) if isinstance(definition, str) else definition
            out.append(math[pos : m.start()])
            end = m.end()
            args = []
            for _ in range(int(n_args)):
                arg, end = _tex_argument(math, end)
                args.append(arg)
            for k, arg in enumerate(args, start=1):
                body = body.replace(f"#{k}", arg)
            # a group, as TeX sees a macro: "\tilde\bmu" must become "\tilde{\boldsymbol{\mu}}"
            out.append(f"{{{body}}}")
            pos = end
        out.append(math[pos:])
        new = "".join(out)
        if new == math:
            return new
        math = new
    raise MystError(f"macro expansion does not terminate in {math[:80]!r}")


def _tex_argument(tex: str, pos: int) -> tuple[str, int]:
    while pos < len(tex) and tex[pos].isspace():
        pos += 1
    if pos >= len(tex):
        raise MystError(f"a macro is missing an argument in {tex[:80]!r}")
    if tex[pos] != "{":
        if tex[pos] == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", tex[pos:])
            return m[0], pos + len(m[0])
        return tex[pos], pos + 1
    depth, end = 0, pos
    while end < len(tex):
        depth += {"{": 1, "}": -1}.get(tex[end], 0)
        end += 1
        if depth == 0:
            return tex[pos + 1 : end - 1], end
    raise MystError(f"unbalanced braces in {tex[:80]!r}")


def _role(name: str, body: str, ctx: Context) -> str:
    m = re.match(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", body, re.S)
    text, target = (m["text"], m["target"]) if m else (None, body.strip())
    if name == "eq":
        return text or ctx.target(target, name).name
    if name in ("prf:ref", "ref", "numref"):
        if name == "ref" and target not in ctx.targets:
            # a label Sphinx knows but the book's Markdown does not define (a code cell's name)
            ctx.warnings.append(f"{ctx.docname}: {{ref}} to {target!r} kept as text")
            return text or target
        found = ctx.target(target, name)
        if name == "numref" and text:
            return text.replace("%s", str(found.number)).replace("{number}", str(found.number))
        if text:
            return text
        if name == "ref" and found.kind == "exercise" and found.title:
            return f"{found.name} ({found.title})"
        return found.name
    if name == "doc":
        title, url = ctx.resolve_doc(target)
        shown = text or convert_inline(title, ctx)
        return f"[{shown}]({url})" if url else shown
    if name == "math":
        return f"${expand_macros(body, ctx.macros)}$"
    if name in ("sub", "sup", "kbd"):
        return f"<{name}>{body}</{name}>"
    if name == "abbr":
        return re.sub(r"\s*\(.*\)\s*$", "", body)
    if name == "cite":
        return "[" + ", ".join(k.strip() for k in body.split(",")) + "]"
    if name == "download":
        return text or target
    return text or target  # {term}, {guilabel}, {bdg-*}, ...: the visible text


def _strip_comments_and_targets(lines: list[str]) -> tuple[list[str], bool]:
    """Drop MyST comments (``% ...``), targets (``(label)=``) and block breaks (``+++``) outside
    display math. Returns the lines and whether display math was left open."""
    out, in_math = [], False
    for line in lines:
        if not in_math and (COMMENT.match(line) or TARGET.match(line) or line.strip() == "+++"):
            continue
        out.append(line)
        if line.count("$$") % 2:
            in_math = not in_math
    return out, in_math


def convert_inline(text: str, ctx: Context) -> str:
    """Roles, equation labels and macros of a piece of Markdown text (no block structure)."""

    def replace(m: re.Match) -> str:
        if m["role"]:
            return _role(m["rname"], m["rbody"], ctx)
        if m["code"]:
            return m[0]
        if m["dmath"]:
            body = expand_macros(m["dbody"], ctx.macros)
            if m["dlabel"]:
                tag = f"\\tag{{{ctx.target(m['dlabel'], 'eq').number}}}"
                body = f"{body.rstrip()}\n{tag}\n" if "\n" in body else f"{body.rstrip()} {tag} "
            return f"$${body}$$"
        if m["imath"]:
            return f"${expand_macros(m['ibody'], ctx.macros)}$"
        return expand_macros(m[0], ctx.macros)

    lines, _ = _strip_comments_and_targets(text.split("\n"))
    return INLINE.sub(replace, "\n".join(lines))


def _join_header(header: str, body: str) -> str:
    """``**Theorem 1.** First sentence`` when the body starts with a paragraph, else two blocks."""
    body = body.strip("\n")
    first = body.lstrip()
    if first and not re.match(r"(\$\$|[-*+#>|<`~:]|\d+[.)]\s|\\begin)", first):
        return f"{header} {first}"
    return f"{header}\n\n{body}" if body else header


def _title(arg: str, ctx: Context) -> str:
    return convert_inline(arg, ctx).strip()


def _details(summary: str, body: str) -> str:
    return f"<details>\n<summary>{summary}</summary>\n\n{body.strip()}\n\n</details>"


def _render_directive(d: Directive, ctx: Context) -> tuple[str | None, bool]:
    """Markdown for one directive, and whether it deserves a cell of its own. None: drop it."""
    kind = d.kind
    label = d.options.get("label") or d.options.get("name")
    key = _key(d, ctx.docname, ctx.anonymous) if _numbered_kind(d) else None
    number = ctx.targets[key].number if key in ctx.targets else None
    if kind in ("solution-start", "solution-end", "exercise-start", "exercise-end"):
        return _render_gate(d, ctx, number), True
    if (ctx.solution is not None or kind == "solution") and ctx.drop_solutions:
        _skip(d.body, ctx)
        return None, False
    body = convert_markdown(d.body, ctx, split=False)[0] if d.body else ""
    if d.name.startswith("prf:") and kind in PROOF_TYPES:
        name = kind.capitalize() + (f" {number}" if number is not None else "")
        title = _title(d.arg, ctx)
        return _join_header(f"**{name}{f' ({title})' if title else ''}.**", body), True
    if kind == "proof":
        title = _title(d.arg, ctx)
        end = f" {END_OF_PROOF}" if not body.rstrip().endswith("$$") else f"\n\n{END_OF_PROOF}"
        return _join_header(f"*Proof{f' ({title})' if title else ''}.*", body.rstrip()) + end, True
    if kind == "exercise":
        name = f"Exercise {number}" if number is not None else "Exercise"
        title = _title(d.arg, ctx)
        return _join_header(f"**{name}{f' ({title})' if title else ''}.**", body), True
    if kind == "solution":
        return _join_header(f"**Solution to {_exercise_name(d.arg, ctx)}.**", body), True
    if kind == "math":
        tex = expand_macros("\n".join(d.body).strip(), ctx.macros)
        tag = f"\n\\tag{{{ctx.target(label, 'math').number}}}" if label else ""
        return f"$$\n{tex}{tag}\n$$", False
    if kind in ("figure", "image"):
        alt = d.options.get("alt", "")
        image = f"![{alt}]({ctx.image_url(d.arg)})"
        if kind == "figure" and body.strip():
            found = ctx.targets.get(label) if label else None
            prefix = f"Figure {found.number}: " if found and found.number else ""
            image += f"\n\n*{prefix}{body.strip()}*"
        return image, False
    if kind in ("code", "code-block", "code-cell", "sourcecode"):
        return f"```{d.arg}\n" + "\n".join(d.body) + "\n```", False
    if kind == "raw":
        return ("\n".join(d.body) if d.arg.strip() == "html" else None), False
    if kind in ("dropdown", "toggle") or "dropdown" in d.options.get("class", "").split():
        summary = _title(d.arg, ctx) or ADMONITIONS.get(kind) or "Show"
        return _details(summary, body), False
    if kind in TRANSPARENT:
        return body, False
    if kind not in ADMONITIONS:
        ctx.warnings.append(f"{ctx.docname}: unknown directive {{{d.name}}}: rendered as a block")
    header = _title(d.arg, ctx) or ADMONITIONS.get(kind) or kind.replace("-", " ").capitalize()
    return _join_header(f"**{header}.**", body), False


def _exercise_name(label: str, ctx: Context) -> str:
    label = label.strip()
    found = ctx.targets.get(label) if label else None
    if found is None or found.number is None:
        return "the exercise"
    return f"Exercise {found.number}" + (f" ({_title(found.title, ctx)})" if found.title else "")


def _skip(body: list[str], ctx: Context) -> None:
    """Count the numbered blocks inside dropped content, so that the next ones keep their number."""
    for block in parse_blocks(body):
        if isinstance(block, Directive):
            if _numbered_kind(block):
                _key(block, ctx.docname, ctx.anonymous)
            _skip(block.body, ctx)


def _render_gate(d: Directive, ctx: Context, number: int | None) -> str | None:
    """The markers of sphinx-exercise's gated directives, which span several cells."""
    kind = d.kind
    if kind == "solution-start":
        if ctx.solution is not None:
            raise MystError(
                f"{ctx.docname}: a solution starts inside the solution of {ctx.solution}"
            )
        ctx.solution = d.arg.strip()
        return None if ctx.drop_solutions else f"**Solution to {_exercise_name(d.arg, ctx)}.**"
    if kind == "solution-end":
        if ctx.solution is None:
            raise MystError(f"{ctx.docname}: {{solution-end}} without {{solution-start}}")
        ctx.solution = None
        return None
    if kind == "exercise-start":
        name = f"Exercise {number}" if number is not None else "Exercise"
        title = _title(d.arg, ctx)
        return f"**{name}{f' ({title})' if title else ''}.**"
    return None  # exercise-end


def convert_markdown(source: str | list[str], ctx: Context, *, split: bool = True) -> list[str]:
    """One Markdown cell (or a directive's body) -> the Markdown pieces to show, in order.

    With ``split``, theorem-like blocks, proofs, exercises and solutions each become a piece of
    their own (the caller makes each piece a cell); without it, everything is joined into one
    piece. Text inside a solution region is dropped in the student edition. An empty list means:
    nothing of this cell is left.
    """
    pieces: list[str] = []
    current: list[str] = []

    def flush() -> None:
        text = "\n".join(current).strip("\n")
        if text.strip():
            pieces.append(text)
        current.clear()

    for block in parse_blocks(source):
        if isinstance(block, Directive):
            rendered, own_cell = _render_directive(block, ctx)
            if own_cell and split:
                flush()  # a gate with no text of its own still ends the piece before it
            if rendered is None:
                continue
            if own_cell and split:
                pieces.append(rendered.strip("\n"))
            else:
                current.extend(["", rendered, ""])
            continue
        if ctx.solution is not None and ctx.drop_solutions:
            continue
        if isinstance(block, Code):
            current.extend(block.lines)
        else:
            current.append(convert_inline("\n".join(block.lines), ctx))
    flush()
    if not split:
        return ["\n\n".join(pieces)] if pieces else [""]
    return [re.sub(r"\n{3,}", "\n\n", p) for p in pieces]
