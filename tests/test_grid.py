"""Sweeps without an engine: the grid, the variant files, CPU shares, the table, the
Slurm array script."""

from __future__ import annotations

import shutil

import pytest

from caffebox import grid, prototxt, slurm
from caffebox import solver as solverlib
from caffebox.errors import CaffeboxError

from .support.cli import ROOT, fingerprint


@pytest.fixture
def digits(tmp_path):
    shutil.copytree(ROOT / "examples" / "digits", tmp_path / "examples" / "digits")
    return solverlib.load("examples/digits/solver.prototxt", tmp_path)


def test_parse_setting():
    assert grid.parse_setting("base_lr=0.01, 0.1") == grid.Setting("base_lr", ("0.01", "0.1"))
    assert grid.parse_setting("loss.param_str.delta=1").layer == "loss"
    for bad in ("base_lr", "=1", "base_lr="):
        with pytest.raises(CaffeboxError, match="NAME=VALUE"):
            grid.parse_setting(bad)


def test_variants_change_copies_never_the_users_files(digits):
    before = fingerprint(digits.cwd / "examples")
    settings = [
        grid.parse_setting("base_lr=0.01,0.1"),
        grid.parse_setting("lr_policy=fixed"),
        grid.parse_setting("digits.param_str.batch_size=32,64"),
    ]
    root = grid.sweep_root(digits, settings)
    variants = grid.write_variants(digits, settings, root)
    assert fingerprint(digits.cwd / "examples") == before
    assert len(variants) == 4 and len({v.folder for v in variants}) == 4
    first = variants[0]
    assert first.values == {"base_lr": "0.01", "lr_policy": "fixed",
                            "digits.param_str.batch_size": "32"}  # fmt: skip
    params = prototxt.parse_file(first.solver_file)
    assert params.first("base_lr") == 0.01
    assert params.first("lr_policy") == "fixed" and not isinstance(
        params.first("lr_policy"), prototxt.Word
    ), "a string field stays quoted"
    assert params.first("solver_mode") == "CPU"
    net_path = digits.cwd / params.first("net")
    assert net_path.parent == first.folder
    assert params.first("snapshot_prefix") == str(
        (first.folder / "snapshots" / "digits").relative_to(digits.cwd)
    )
    layers = prototxt.parse_file(net_path).all("layer")
    strings = [l.first("python_param").first("param_str") for l in layers[:2]]  # noqa: E741
    assert all("'batch_size': 32" in s for s in strings)  # TRAIN and TEST layers named digits
    # The variant solver loads: every path it names resolves from the project folder.
    assert solverlib.load(str(first.solver_file.relative_to(digits.cwd)), digits.cwd).max_iter


def test_unknown_layer_is_named(digits):
    with pytest.raises(CaffeboxError, match="no layer named 'los'"):
        grid.write_variants(digits, [grid.parse_setting("los.param_str.d=1")], digits.cwd)


def test_same_grid_same_folder(digits):
    a = [grid.parse_setting("base_lr=0.01,0.1")]
    assert grid.sweep_root(digits, a) == grid.sweep_root(digits, list(a))
    assert grid.sweep_root(digits, a) != grid.sweep_root(
        digits, [grid.parse_setting("base_lr=0.01")]
    )


def test_cpu_slots_share_the_cores():
    assert grid.cpu_slots(1, cpus=2) == ["0-1"]
    assert grid.cpu_slots(2, cpus=2) == ["0", "1"]
    assert grid.cpu_slots(2, cpus=8) == ["0-3", "4-7"]
    assert grid.cpu_slots(3, cpus=2) == ["0", "1", "0"]


def test_table_sorts_by_the_test_metric(tmp_path):
    def row(lr, acc, code=0):
        variant = grid.GridPoint({"base_lr": lr}, tmp_path / lr, tmp_path / lr / "s")
        meta = {"exit_code": code, "iterations": 300,
                "final": {"loss": 0.1, "test": {"accuracy": acc, "loss": 0.2}}}  # fmt: skip
        return grid.Row(variant, meta)

    text = grid.table([row("0.01", 0.9), row("0.1", 0.97), row("1", float("nan"), 134)])
    lines = text.splitlines()
    assert lines[0].split() == ["variant", "exit", "iter", "loss", "test", "accuracy"]
    assert [line.split()[0] for line in lines[2:]] == ["base_lr=0.1", "base_lr=0.01", "base_lr=1"]


def test_slurm_script(digits, tmp_path):
    settings = [grid.parse_setting("base_lr=0.01,0.1,1")]
    root = grid.sweep_root(digits, settings)
    variants = grid.write_variants(digits, settings, root)
    text = slurm.script(root, variants, [0, 2], digits.cwd, ["--image", "caffebox:cpu"], "py")
    assert "#SBATCH --array=0,2" in text
    assert f"#SBATCH --chdir={digits.cwd}" in text
    assert 'exec py -m caffebox train "$solver" "$mode" --image caffebox:cpu' in text
    assert "modes=(--overwrite --overwrite --overwrite)" in text
    assert text.count(".prototxt") == 3


def test_a_resumed_slurm_sweep_continues_started_variants(digits, tmp_path):
    """The array script once ran `train --overwrite` for every task: a resumed sweep
    restarted runs that had snapshots. Run as Slurm would run task 2 (python: echo)."""
    import subprocess

    settings = [grid.parse_setting("base_lr=0.01,0.1,1")]
    root = grid.sweep_root(digits, settings)
    variants = grid.write_variants(digits, settings, root)
    text = slurm.script(root, variants, [0, 2], digits.cwd, ["--image", "i"], "echo",
                        started=frozenset({2}))  # fmt: skip
    script = tmp_path / "array.sbatch"
    script.write_text(text)
    said = {}
    for task in (0, 2):
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                              env={"SLURM_ARRAY_TASK_ID": str(task), "PATH": "/usr/bin:/bin",
                                   "DOCKER_HOST": "unix:///x"})  # fmt: skip
        assert done.returncode == 0, done.stderr
        said[task] = done.stdout.strip().splitlines()[-1]
    assert said[0].startswith("-m caffebox train ") and " --overwrite --image i" in said[0]
    assert " --resume --image i" in said[2]
