"""A project on a small filesystem (a 2 MB tmpfs the test mounts, as root): the disk fills
at a snapshot. The run ends with the full-disk paragraph, the earlier snapshots are whole,
the record's files are whole or absent, and the warning came after the first snapshot."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from caffebox import snapshots

from .support.cli import assert_one_paragraph, caffebox, digits_project
from .support.services import missing

pytestmark = pytest.mark.image


@pytest.fixture
def small_disk(open_dir):
    folder = open_dir / "small"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs here ({done.stderr.strip()}): run as root"
        missing(reason, f"{reason}; CI runs as root")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_ends_the_run_with_one_paragraph_and_keeps_what_was_saved(small_disk, image):
    project = digits_project(small_disk)
    solver = project / "examples" / "digits" / "solver.prototxt"
    solver.write_text(solver.read_text().replace("snapshot: 500", "snapshot: 100"))
    env = {**os.environ, "INVOKE_CAFFEBOX_IMAGE": image}
    done = caffebox("train", "examples/digits/solver.prototxt", cwd=project, env=env)
    assert "more snapshot(s) of 284 KB each" in done.stdout and "will not fit" in done.stdout
    assert_one_paragraph(done, 134, r"the disk is full: Caffe could not write its snapshot "
                         r".* The whole snapshots before it are untouched \(newest: "
                         r"snapshots/digits_iter_\d+\.solverstate\)")  # fmt: skip
    folder = project / "snapshots"
    pairs = snapshots.pairs(folder, "digits", project)
    whole = [p for p in pairs if p.whole]
    assert len(whole) >= 3 and whole == pairs[: len(whole)]  # only the last ones are cut
    assert not list(folder.rglob("*.part"))
    (record,) = (folder / "digits.runs").iterdir()
    for name in ("run.json", "iterations.csv"):
        if (record / name).exists():  # whole or absent
            assert (record / name).read_text().strip()
            if name == "run.json":
                json.loads((record / name).read_text())
    assert "Iteration 100" in (record / "train.log").read_text()
