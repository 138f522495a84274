"""Every shell script caffebox ships or writes passes shellcheck (warnings and up): the
in-image build scripts, .ci/run, the example's run.sh, and the scripts rendered from
caffebox/templates (an export's caffebox-run, a sweep's sbatch array) as they are written."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from caffebox import export, paths, slurm
from caffebox.grid import GridPoint

from .support.services import missing

ROOT = paths.ROOT


@pytest.fixture(scope="module")
def shellcheck() -> str:
    found = shutil.which("shellcheck")
    if not found:
        missing("shellcheck is not installed (apt-get install shellcheck)",
                "shellcheck is not installed (apt-get install shellcheck); CI runs it")
    return found


def _check(shellcheck: str, *files: Path) -> None:
    done = subprocess.run([shellcheck, "-S", "warning", *map(str, files)], capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout


def test_build_scripts_and_ci(shellcheck):
    _check(shellcheck, *sorted(paths.DOCKER_DIR.glob("*.sh")), ROOT / ".ci" / "run",
           ROOT / "examples" / "imagefolder" / "run.sh",
           *sorted((ROOT / "benchmarks").glob("*.sh")))  # fmt: skip


@pytest.mark.parametrize("cuda_from_host", [False, True])
def test_export_entry_script(shellcheck, tmp_path, cuda_from_host):
    path = tmp_path / "caffebox-run"
    env = ["PATH=/opt/caffe/bin:/usr/bin", "PYTHONPATH=/opt/caffe/python"]
    path.write_text(export.entry_script("img", env, cuda_from_host))
    _check(shellcheck, path)


def test_sweep_array_script(shellcheck, tmp_path):
    points = [GridPoint(values={"base_lr": v}, folder=tmp_path / v,
                        solver_file=tmp_path / v / "solver.prototxt") for v in ("0.1", "0 2")]
    path = tmp_path / "array.sbatch"
    path.write_text(slurm.script(tmp_path, points, [0, 1], tmp_path, ["--image", "a b"]))
    _check(shellcheck, path)
