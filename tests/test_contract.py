"""The engine contract (caffebox/contract.py) bites: mypy passes the unit tests' fake engine
as it is, and fails a copy of it that lacks one call the run path makes. .ci/run runs mypy
on caffebox/ and tests/support (strict on caffebox/); this proves that check can fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from caffebox import paths

FAKES = paths.ROOT / "tests" / "support" / "fakes.py"
RELOAD = "    def reload(self) -> None:\n        pass\n"


def _mypy(path: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--check-untyped-defs",
         "--cache-dir", str(cache), str(path)],
        capture_output=True, text=True, cwd=path.parent,
        env={**os.environ, "MYPYPATH": str(paths.ROOT)},  # caffebox from this checkout
    )  # fmt: skip


@pytest.mark.parametrize("remove", [RELOAD, None])
def test_a_fake_without_a_contract_call_fails_the_type_check(tmp_path, remove):
    text = FAKES.read_text()
    assert RELOAD in text
    copy = tmp_path / "fakes_copy.py"
    copy.write_text(text.replace(remove, "") if remove else text)
    done = _mypy(copy, tmp_path / "cache")
    if remove is None:
        assert done.returncode == 0, done.stdout
    else:
        assert done.returncode == 1, done.stdout
        # mypy names the chain: the engine's containers, whose container lacks reload().
        assert 'expected "Engine"' in done.stdout, done.stdout
        assert 'containers: expected "Containers", got "_Containers"' in done.stdout
