"""Chapter 6 reads the MNIST sampler table that benchmarks/samplers.py writes: the file name and the
fields it prints must be the ones the benchmark produces (a renamed file or field would silently turn
the table into "missing")."""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "06_sde.ipynb"


def _table_cell() -> str:
    cells = json.loads(CHAPTER.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    hits = [s for s in sources if "samplers-cpu" in s]
    assert len(hits) == 1, "exactly one cell of chapter 6 reads the sampler table"
    return hits[0]


def test_chapter_6_reads_the_file_the_benchmark_writes():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import samplers
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert f'"{samplers.DEFAULT_OUT.name}"' in _table_cell()
    # the file ships inside the package (package data "weights/*"), so Colab has it too
    assert samplers.DEFAULT_OUT.parent == ROOT / "ddpm_lib" / "weights"
    assert samplers.DEFAULT_OUT.is_file()


def test_chapter_6_prints_only_fields_the_benchmark_records():
    text = (ROOT / "benchmarks" / "samplers.py").read_text(encoding="utf-8")
    recorded = set(re.findall(r'"(\w+)":', text)) | set(re.findall(r'data\["(\w+)"\]', text))
    used = set(re.findall(r"\[[\"'](\w+)[\"']\]", _table_cell()))
    assert used, "the table cell reads no field"
    assert used <= recorded, f"fields the benchmark does not write: {sorted(used - recorded)}"
