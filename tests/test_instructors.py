"""The instructor page lists every self-check the chapters call, and no other."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_instructor_page_lists_every_check_the_chapters_call():
    called = set()
    for nb in sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                called |= set(re.findall(r"\b(check_\w+)\(", "".join(cell["source"])))
    page = (ROOT / "book" / "instructors.md").read_text(encoding="utf-8")
    table = page[page.index("## What each exercise tests") :]
    listed = set(re.findall(r"^\| \d+ \| `(check_\w+)`", table, flags=re.M))
    assert called, "no chapter calls a check_ function: the pattern is broken"
    assert listed == called
