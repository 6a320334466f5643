"""The shape of ``ddpm_lib``: no import cycle anywhere in the package, and each layer imports only
the layers below it (the math core knows nothing of training, sampling or plotting; the book
helpers ``viz`` and ``exercises`` do not reach into each other). The layers are those of the
project's architecture notes, assigned by folder: core (``schedule``, ``diffusion``, ``losses``,
``config`` at the top level) < math (``bound/``, ``sde/``, ``toy/``) < middle (``models/``,
``data/``) < samplers (``sample/``) < run (``train/``, ``metrics/``, ``hub``, ``io``) < ``book`` <
the book helpers (``viz/``, ``exercises/``).

The graph is read from the source (every ``import`` statement, also those inside functions and
under ``TYPE_CHECKING``), so a cycle hidden behind a lazy import is found too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "ddpm_lib"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _resolve(module: str, level: int, here: str, is_package: bool) -> str:
    if level == 0:
        return module
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _edges(name: str, path: Path) -> set[str]:
    """The ddpm_lib modules ``name`` imports; ``from pkg import sub`` counts as importing ``sub``."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            src = _resolve(node.module or "", node.level, name, is_package)
            targets = [
                f"{src}.{a.name}" if f"{src}.{a.name}" in MODULES else src for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # "ddpm_lib.x.y" where y is a name in x
                target = target.rpartition(".")[0]
            if target.startswith("ddpm_lib") and target != name:
                out.add(target)
    return out


GRAPH = {name: _edges(name, path) for name, path in MODULES.items()}


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if nxt.startswith(node + ".") or node == "ddpm_lib":
                continue  # a package importing its own submodules (re-exports) is no cycle
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node], _ = 2, stack.pop()
        return None

    for node in sorted(GRAPH):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle():
    cycle = _cycle()
    assert cycle is None, " -> ".join(cycle or [])


#: The layers, lowest first: each may import its own and the ones below it (the book helpers
#: ``viz`` and ``exercises`` sit side by side and do not import each other). A sub-package is a
#: layer's room, so the layer of every module inside it is its folder's; the few modules directly
#: under ``ddpm_lib/`` are named one by one.
LAYERS = ("core", "math", "middle", "sample", "run", "book", "helpers")
FOLDERS = {
    "bound": "math",
    "sde": "math",
    "toy": "math",
    "models": "middle",
    "data": "middle",
    "sample": "sample",
    "train": "run",
    "metrics": "run",
    "viz": "helpers",
    "exercises": "helpers",
}
TOP_LEVEL = {
    "schedule": "core",
    "diffusion": "core",
    "losses": "core",
    "config": "core",
    "_validate": "core",
    "_atomic": "core",
    "hub": "run",
    "io": "run",
    "book": "book",
}
MAX_TOP_LEVEL = 10


def _layer(module: str) -> str:
    """The layer of a module by where it lives; a module nobody placed fails the test."""
    parts = module.split(".")
    if len(parts) == 1:
        return "core"  # the package's __init__: re-exports only
    top = parts[1]
    if (PKG / top).is_dir():
        assert top in FOLDERS, f"ddpm_lib/{top}/ is in no layer: add it to FOLDERS"
        return FOLDERS[top]
    assert top in TOP_LEVEL, f"ddpm_lib/{top}.py is in no layer: add it to TOP_LEVEL"
    return TOP_LEVEL[top]


def _allowed(importer: str, imported: str) -> bool:
    a, b = _layer(importer), _layer(imported)
    if a == b == "helpers":  # viz and exercises do not reach into each other
        return importer.split(".")[1] == imported.split(".")[1]
    return LAYERS.index(b) <= LAYERS.index(a)


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import in ``graph`` that goes up a layer (or across the book helpers)."""
    return sorted(
        f"{m} ({_layer(m)}) imports {i} ({_layer(i)})"
        for m, targets in graph.items()
        if m != "ddpm_lib"
        for i in targets
        if i != "ddpm_lib" and not _allowed(m, i)
    )


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m != "ddpm_lib"))
def test_layers_import_only_downwards(module):
    bad = violations({module: GRAPH[module]})
    assert not bad, "; ".join(bad)


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("ddpm_lib.diffusion", "ddpm_lib.sample.discrete"),  # the core must not know samplers
        ("ddpm_lib.bound.vlb", "ddpm_lib.sample.base"),
        ("ddpm_lib.toy.mixture", "ddpm_lib.models.unet"),
        ("ddpm_lib.sample.inpaint", "ddpm_lib.train.loop"),
        ("ddpm_lib.viz.sde", "ddpm_lib.exercises.sde"),
    ],
)
def test_a_planted_violation_fails(importer, imported):
    """The checker itself: an upward import added to the real graph is reported."""
    graph = {m: set(t) for m, t in GRAPH.items()}
    assert not violations({importer: graph[importer]})
    graph[importer].add(imported)
    assert violations({importer: graph[importer]}) == [
        f"{importer} ({_layer(importer)}) imports {imported} ({_layer(imported)})"
    ]


def test_every_folder_and_top_level_module_has_a_layer():
    for path in PKG.iterdir():
        if path.name.startswith((".", "__")) or path.name in ("weights", "py.typed"):
            continue
        _layer(f"ddpm_lib.{path.stem}")


def test_few_modules_directly_under_the_package():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, f"{len(top)} modules under ddpm_lib/: {top}"


def test_the_graph_is_read():
    """Guards the reader itself: known edges are found, so an empty graph cannot pass."""
    assert "ddpm_lib.diffusion" in GRAPH["ddpm_lib.sample.discrete"]
    assert GRAPH["ddpm_lib.train.trainer"] >= {"ddpm_lib.train.loop", "ddpm_lib.train.dataset"}
    assert "ddpm_lib.diffusion" in GRAPH["ddpm_lib.bound.vlb"]
    assert len(GRAPH) > 30


def _import_time_targets(name: str, path: Path) -> set[str]:
    """What executing module ``name`` imports: the statements at module level (also under ``if``,
    ``try``, ``with`` and class bodies, not under ``if TYPE_CHECKING`` or in functions), as
    ddpm_lib module names or, outside the package, top-level package names."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                src = _resolve(node.module or "", node.level, name, is_package)
                targets = [f"{src}.{a.name}" for a in node.names]
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    visit([n for n in getattr(node, field, []) if isinstance(n, ast.AST)])
                continue
            for target in targets:
                if target.split(".")[0] != "ddpm_lib":
                    out.add(target.split(".")[0])
                    continue
                while target not in MODULES:  # "ddpm_lib.x.y" where y is a name in x
                    target = target.rpartition(".")[0]
                out.add(target)

    visit(ast.parse(path.read_text()).body)
    return out


def loaded_by_import(module: str) -> set[str]:
    """Every module ``import module`` executes, read from the source: the package's own modules
    (with their parent packages) and the third-party packages they import at module level."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # a module's parent packages run first
            prefix = ".".join(parts[:i])
            if prefix in seen:
                continue
            seen.add(prefix)
            if prefix in MODULES:
                todo.extend(_import_time_targets(prefix, MODULES[prefix]))
    return seen


def test_exercises_import_neither_matplotlib_nor_viz():
    """The fast suite's check (the same in a fresh interpreter is slow, in test_viz_base.py):
    grading a learner's function needs no plotting library."""
    loaded = loaded_by_import("ddpm_lib.exercises")
    assert {"ddpm_lib.exercises.elbo", "ddpm_lib.diffusion", "torch"} <= loaded  # the reader reads
    assert "matplotlib" in loaded_by_import("ddpm_lib.viz")  # and would see a plotting import
    assert not sorted(m for m in loaded if m == "matplotlib" or m.startswith("ddpm_lib.viz"))
