"""The README's promises that name their tests: every row of the bad-inputs table names a
test that exists (a row id in a bad-inputs table, or a test function in tests/)."""

from __future__ import annotations

import re

from caffebox import paths

README = (paths.ROOT / "README.md").read_text()
TESTS = {p.name: p.read_text() for p in (paths.ROOT / "tests").glob("test_*.py")}


def _bad_input_rows() -> list[list[str]]:
    section = README[README.index("### Bad inputs, and what caffebox answers"):]
    section = section[: section.index("\n## ")]
    rows = [line.strip("|").split(" | ") for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| input |")]  # fmt: skip
    return [[cell.strip() for cell in row] for row in rows]


def _exists(name: str) -> bool:
    if name.startswith("test_"):
        return any(re.search(rf"^def {name}\(", text, re.M) for text in TESTS.values())
    return any(re.search(rf'^\s*\("{re.escape(name)}",', text, re.M) for text in TESTS.values())


def test_every_bad_input_row_names_a_test_that_exists():
    rows = _bad_input_rows()
    assert len(rows) >= 40
    missing = []
    for row in rows:
        assert len(row) == 4, f"a row without its test column: {row}"
        names = [n.strip() for n in row[3].strip("`").split(",")]
        missing += [f"{row[0]}: {n}" for n in names if not _exists(n)]
    assert not missing, missing
