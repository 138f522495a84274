"""caffebox/sweeping.py on a fake engine: a sweep gets the checks `train` gets."""

from __future__ import annotations

import io

import pytest

from caffebox import engine, sweeping
from caffebox.errors import CaffeboxError

from .support.fakes import FakeEngine


def _solver(folder, mode: str) -> None:
    (folder / "net.prototxt").write_text("")
    (folder / "solver.prototxt").write_text(
        f'net: "net.prototxt"\nmax_iter: 10\nsolver_mode: {mode}\nsnapshot_prefix: "s/d"\n'
    )


def test_the_sweep_gets_the_same_checks_as_train(tmp_path, monkeypatch):
    """The sweep once checked only that the image existed: a GPU solver on the cpu image
    started every variant and each failed inside Caffe."""
    _solver(tmp_path, "GPU")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(engine, "connect", lambda: FakeEngine({"caffebox:cpu": "cpu"}))
    options = sweeping.SweepOptions(solver="solver.prototxt", image="caffebox:cpu",
                                    settings=["base_lr=0.1,0.2"])  # fmt: skip
    with pytest.raises(CaffeboxError, match="sets solver_mode: GPU"):
        sweeping.sweep(options, out=io.StringIO())
    _solver(tmp_path, "CPU")
    options.gpu, options.resume = "0", True
    with pytest.raises(CaffeboxError, match="--gpu was given, but caffebox:cpu is the CPU"):
        sweeping.sweep(options, out=io.StringIO())


def test_states_line_counts_each_state():
    line = sweeping._states_line({0: "COMPLETED", 1: "FAILED", 2: "COMPLETED"})
    assert line == "caffebox: Slurm tasks: 2 COMPLETED, 1 FAILED"


def test_a_slurm_sweep_hands_its_memory_limit_to_every_task(tmp_path, monkeypatch):
    import shutil

    from caffebox import launch, slurm, sweeping
    from caffebox.paths import ROOT

    shutil.copytree(ROOT / "examples" / "digits", tmp_path / "examples" / "digits")
    monkeypatch.chdir(tmp_path)
    sent = {}

    def submit(root, variants, todo, cwd, train_args, slurm_args, started=frozenset()):
        sent["args"] = train_args
        return "42"

    monkeypatch.setattr(slurm, "submit", submit)
    options = sweeping.SweepOptions(
        solver="examples/digits/solver.prototxt", settings=["base_lr=0.01,0.1"], slurm=True,
        image="img", target=launch.Target("img", memory_limit="8g"),
    )  # fmt: skip
    assert sweeping.sweep(options, out=io.StringIO()) == 0
    assert sent["args"][:4] == ["--image", "img", "--memory", "8g"]
