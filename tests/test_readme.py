"""The README and the docs pages keep their promises: every row of the bad-inputs table
(docs/errors.md) names a test that exists, every link of README.md reaches a page and an
anchor that exist (MkDocs checks the pages' own links; it does not read README.md), and
docs/tasks.md is what the tasks' help renders now."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from caffebox import paths, reference

README = (paths.ROOT / "README.md").read_text()
ERRORS = (paths.ROOT / "docs" / "errors.md").read_text()
TESTS = {p.name: p.read_text() for p in (paths.ROOT / "tests").glob("test_*.py")}


def _bad_input_rows() -> list[list[str]]:
    rows = [line.strip("|").split(" | ") for line in ERRORS.splitlines()
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


def _slug(heading: str) -> str:
    """Python-Markdown's toc slug (MkDocs' anchors); GitHub's agrees for these headings."""
    text = unicodedata.normalize("NFKD", heading)
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def test_every_readme_link_reaches_a_page_and_anchor():
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    assert len(links) >= 15
    broken = []
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        target, _, anchor = link.partition("#")
        page = paths.ROOT / target if target else paths.ROOT / "README.md"
        if not page.is_file():
            broken.append(f"{link}: no file {target}")
        elif anchor and anchor not in _anchors(page):
            broken.append(f"{link}: no heading with the anchor #{anchor}")
    assert not broken, broken


def test_the_readme_is_read_in_five_minutes():
    lines = README.splitlines()
    assert len(lines) <= 200
    assert "## Quick start" in "\n".join(lines[:20])  # on the first screen


def test_the_task_reference_is_current():
    """Fails when a task, its docstring or help.yaml changed and the page did not:
    run `python -m caffebox.reference --write`."""
    assert reference.PAGE.read_text() == reference.render()
    for name in ("train", "sweep", "modernize", "build-project", "export"):
        assert f"\n## {name}\n" in reference.render()
