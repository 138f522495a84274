"""Real Caffe snapshots cut short: --resume continues from the newest whole pair."""

from __future__ import annotations

import os
import re

import pytest

from .support.cli import caffebox, digits_project

pytestmark = pytest.mark.image


def _trained(open_dir, image: str, max_iter: int, snapshot: str):
    """The digits example trained to max_iter with `snapshot` lines in its solver."""
    project = digits_project(open_dir)
    solver = project / "examples" / "digits" / "solver.prototxt"
    text = solver.read_text().replace("max_iter: 1500", f"max_iter: {max_iter}")
    solver.write_text(text.replace("snapshot: 500", snapshot))
    env = {**os.environ, "INVOKE_CAFFEBOX_IMAGE": image}
    done = caffebox("train", "examples/digits/solver.prototxt", cwd=project, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return project, solver, env, done


def test_resume_passes_over_a_snapshot_cut_short(open_dir, image):
    project, solver, env, _ = _trained(open_dir, image, 300, "snapshot: 100")
    model = project / "snapshots" / "digits_iter_300.caffemodel"
    whole = model.stat().st_size
    model.write_bytes(model.read_bytes()[: whole // 2])  # what a kill mid-write leaves
    solver.write_text(solver.read_text().replace("max_iter: 300", "max_iter: 400"))
    done = caffebox("train", "examples/digits/solver.prototxt", "--resume", cwd=project, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    kb = round(whole / 1024)
    assert (f"caffebox: skipped snapshots/digits_iter_300.caffemodel: cut short at "
            f"{round(whole // 2 / 1024)} KB; the whole one before it is {kb} KB") in done.stdout
    assert re.search(r"Resuming from \S*snapshots/digits_iter_200\.solverstate", done.stdout)
    assert "finished at iteration 400 of 400" in done.stdout
    assert model.stat().st_size == whole  # the resumed run wrote iteration 300 again, whole
    assert "'snapshots/digits_iter_400.caffemodel', 'snapshots/digits_iter_400.solverstate'" \
        in done.stdout  # fmt: skip


def test_resume_passes_over_an_hdf5_snapshot_cut_short(open_dir, image):
    project, solver, env, done = _trained(open_dir, image, 200,
                                          "snapshot: 100\nsnapshot_format: HDF5")  # fmt: skip
    assert "'snapshots/digits_iter_200.caffemodel.h5', 'snapshots/digits_iter_200" \
        ".solverstate.h5'" in done.stdout  # fmt: skip
    model = project / "snapshots" / "digits_iter_200.caffemodel.h5"
    model.write_bytes(model.read_bytes()[:4096])
    solver.write_text(solver.read_text().replace("max_iter: 200", "max_iter: 300"))
    done = caffebox("train", "examples/digits/solver.prototxt", "--resume", cwd=project, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "caffebox: skipped snapshots/digits_iter_200.caffemodel.h5: cut short at 4 KB" \
        in done.stdout  # fmt: skip
    assert re.search(r"Resuming from \S*snapshots/digits_iter_100\.solverstate\.h5", done.stdout)
