"""The shape of ``ddpm_lib``: no import cycle anywhere in the package, and each layer imports only
the layers below it (the math core knows nothing of training, sampling or plotting; the book
helpers ``viz`` and ``exercises`` do not reach into each other). The layers are those of the
project's architecture notes: core (diffusion, schedule, losses, objectives, toy, config) <
middle (models, data, sample) < run (train, metrics, hub, io) < the book helpers.

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


def _layer(module: str) -> str:
    top = module.split(".")[1] if "." in module else ""
    if top in ("viz", "exercises", "book"):
        return top
    if top in ("train", "metrics", "release", "hub", "io"):
        return "run"
    if top in ("sample", "models", "data"):
        return "middle"
    return "core"  # diffusion, schedule, losses, objectives, toy, config, _validate, ...


# which layers each layer may import
ALLOWED = {
    "core": {"core"},
    "middle": {"core", "middle"},
    "run": {"core", "middle", "run"},
    "viz": {"core", "middle", "run", "book", "viz"},
    "exercises": {"core", "middle", "book", "exercises"},
    "book": {"core", "middle", "run", "book"},
}


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m != "ddpm_lib"))
def test_layers_import_only_downwards(module):
    bad = sorted(
        m for m in GRAPH[module] if m != "ddpm_lib" and _layer(m) not in ALLOWED[_layer(module)]
    )
    assert not bad, f"{module} ({_layer(module)}) imports {bad}"


def test_the_graph_is_read():
    """Guards the reader itself: known edges are found, so an empty graph cannot pass."""
    assert "ddpm_lib.diffusion" in GRAPH["ddpm_lib.sample"]
    assert GRAPH["ddpm_lib.train.trainer"] >= {"ddpm_lib.train.loop", "ddpm_lib.train.dataset"}
    assert "ddpm_lib.diffusion" in GRAPH["ddpm_lib.objectives"]
    assert len(GRAPH) > 30
