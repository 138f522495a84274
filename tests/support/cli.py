"""The CLI as users call it (`caffebox ...`, or `invoke ...` from the checkout), and what
every bad input must give: one paragraph, a non-zero exit, no traceback of caffebox's
code, no container left and no user file changed (a digits project to break, and its
fingerprint)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# The `caffebox` command, run from whatever folder the test chooses.
CAFFEBOX = [
    sys.executable, "-c",
    "import sys; from caffebox.cli import program; program.run(['caffebox', *sys.argv[1:]])",
]  # fmt: skip


# The image fixtures' build output, line by line, by image ('' when an image was given).
BUILD_LOG: dict[str, list[str]] = {}


def build_log(image: str) -> str:
    """The output of the build that made `image` ('' when the image was given)."""
    return "".join(BUILD_LOG.get(image, []))


def digits_project(dest: Path) -> Path:
    """The digits example, as a user's project folder."""
    shutil.copytree(ROOT / "examples" / "digits", dest / "examples" / "digits")
    return dest


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder` with its content hash: any change shows."""
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_dir():
            found[rel + "/"] = "dir"
        elif path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def caffebox(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900):
    """Run the `caffebox` command in `cwd`; returns the CompletedProcess."""
    return subprocess.run(
        [*CAFFEBOX, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout
    )


def assert_one_paragraph(done: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    """Exit `code`, and stderr ends with one paragraph (no blank line in it) that starts
    'caffebox:' and matches `message`; no traceback of caffebox's own code."""
    assert done.returncode == code, (done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    found = re.search(message, done.stderr, re.S)
    assert found, done.stderr[-3000:]
    start = done.stderr.rfind("caffebox:", 0, found.start() + 1)
    assert start >= 0, f"the message is not caffebox's: {done.stderr[-3000:]}"
    paragraph = done.stderr[start:].strip()
    assert "\n\n" not in paragraph, f"more than one paragraph: {paragraph!r}"
    own = [line for line in done.stderr.splitlines() if "caffebox/" in line and "File " in line]
    assert "Traceback (most recent call last)" not in done.stderr or not own, done.stderr


def assert_untouched(before: dict[str, str], after: dict[str, str], outputs: str = "") -> None:
    """No user file changed or went away; new files only under `outputs` (a run's record
    and snapshots), or none at all when it is empty."""
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"user files changed: {changed}"
    new = [k for k in after if k not in before]
    stray = [k for k in new if not (outputs and k.startswith(outputs))]
    assert not stray, f"files made outside {outputs or 'nowhere'}: {stray}"


def invoke(*args: str, cwd: Path = ROOT, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`invoke ARGS` from the checkout's tasks.py (the repo's own entry), in `cwd`."""
    cmd = [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kwargs)
