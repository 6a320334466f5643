"""Chapter 7 reads its MNIST tables from ``ddpm_lib/weights/guidance-cpu.json``: its table cells
must print the shipped file and still run (saying so) when the file is absent."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book" / "07_guidance.ipynb"
TABLE_CELLS = (
    "ch7-bench-load",
    "ch7-cg-table",
    "ch7-cfg-table",
    "ch7-threshold-table",
    "ch7-inpaint-table",
)


def _cells() -> dict[str, str]:
    nb = json.loads(BOOK.read_text())
    return {c["id"]: "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"}


class _Missing:
    """Stands in for ``importlib.resources``: every file it names is absent."""

    @staticmethod
    def files(_package):
        return Path("/nonexistent-ddpm-book-dir")


def _run(namespace: dict) -> None:
    cells = _cells()
    for cid in TABLE_CELLS:
        exec(compile(cells[cid], f"<{cid}>", "exec"), namespace)  # noqa: S102


def test_table_cells_exist_and_are_committed_without_outputs():
    nb = json.loads(BOOK.read_text())
    ids = {c["id"] for c in nb["cells"]}
    assert set(TABLE_CELLS) <= ids
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


def test_tables_print_the_shipped_file(capsys):
    shipped = resources.files("ddpm_lib") / "weights" / "guidance-cpu.json"
    if not shipped.is_file():
        pytest.skip("guidance-cpu.json is not shipped")
    data = json.loads(shipped.read_text())
    _run({"json": json, "resources": resources})
    out = capsys.readouterr().out
    assert f"n = {data['n']} digits per row" in out
    for name, row in data["results"].items():
        if row["method"] in ("classifier", "cfg"):
            assert f"{row['accuracy']:10.3f}" in out, name
    assert "missing" not in out
    assert max(len(line) for line in out.splitlines()) <= 78


def test_tables_say_so_when_the_file_is_absent(capsys):
    _run({"json": json, "resources": _Missing})
    out = capsys.readouterr().out
    assert "guidance-cpu.json is not here" in out
    for method in ("classifier", "cfg"):
        assert f"no measured '{method}' rows" in out
    assert "no measured thresholding rows" in out and "no measured inpainting rows" in out
