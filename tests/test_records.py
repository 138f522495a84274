"""Run records and their plots, from a Caffe log, without an engine."""

from __future__ import annotations

import builtins
import hashlib
import json

import pytest
from PIL import Image, ImageStat

from caffebox import caffelog, plots, records, solver

from .support.cli import assert_one_paragraph, caffebox

LOG = [
    "I1126 solver.cpp:218] Iteration 0 (0 iter/s, 0.01s/100 iters), loss = 2.31",
    "I1126 solver.cpp:237]     Train net output #0: loss = 2.31 (* 1 = 2.31 loss)",
    "I1126 sgd_solver.cpp:105] Iteration 0, lr = 0.05",
    "I1126 solver.cpp:330] Iteration 100, Testing net (#0)",
    "I1126 solver.cpp:397]     Test net output #0: accuracy = 0.52",
    "I1126 solver.cpp:218] Iteration 100 (120 iter/s, 0.8s/100 iters), loss = 0.9",
    "I1126 sgd_solver.cpp:105] Iteration 100, lr = 0.05",
    "I1126 solver.cpp:330] Iteration 200, Testing net (#0)",
    "I1126 solver.cpp:397]     Test net output #0: accuracy = 0.91",
    "I1126 solver.cpp:397]     Test net output #1: loss = 0.3 (* 1 = 0.3 loss)",
    "I1126 solver.cpp:218] Iteration 200 (120 iter/s, 0.8s/100 iters), loss = 0.2",
    "I1126 caffe.cpp:259] Optimization Done.",
]


@pytest.fixture
def project(tmp_path):
    (tmp_path / "net.prototxt").write_text("")
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nmax_iter: 200\nsnapshot_prefix: "snaps/d"\n'
    )
    return solver.load("solver.prototxt", tmp_path)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(project, lines=LOG):
    log = caffelog.TrainingLog()
    for n, line in enumerate(lines):
        log.feed(line, seconds=n * 0.5)
    record = records.Record.create(project)
    record.log.write("\n".join(lines))
    folder = records.finish(
        record, solver=project, command=["caffebox", "train", "solver.prototxt"],
        container_command=["caffe", "train"], image={"name": "img"}, layer_dirs=[],
        log=log, exit_code=0, outcome="",
    )  # fmt: skip
    plots.plot_record(folder)  # what training does after finish
    return folder


def test_record_has_log_csv_json_and_plot(project):
    folder = _record(project)
    assert folder.parent == project.cwd / "snaps" / "d.runs"
    rows = records.read_csv(folder / "iterations.csv")
    assert [r["iteration"] for r in rows] == [0, 100, 200]
    assert rows[0] == {"iteration": 0, "seconds": 0.0, "lr": 0.05, "loss": 2.31,
                       "train/loss": 2.31}  # fmt: skip
    assert rows[2]["test/accuracy"] == 0.91 and rows[2]["test/loss"] == 0.3
    meta = json.loads((folder / "run.json").read_text())
    assert meta["final"] == {"loss": 0.2, "test": {"accuracy": 0.91, "loss": 0.3}}
    assert meta["solver"] == {"path": "solver.prototxt", "sha256": _sha(project.path)}
    assert meta["nets"] == {"net.prototxt": _sha(project.cwd / "net.prototxt")}
    assert (folder / "train.log").read_text().startswith("I1126")
    _assert_curves(folder / "curves.png")


def test_a_second_run_gets_its_own_record(project):
    first, second = _record(project), _record(project)
    assert first != second and first.parent == second.parent
    assert (first / "run.json").is_file() and (second / "run.json").is_file()


def _assert_curves(png, size=(1000, 400)):
    """An image of the right size with curves on it: not one flat colour."""
    with Image.open(png) as img:
        assert img.size == size
        stat = ImageStat.Stat(img.convert("L"))
        assert stat.stddev[0] > 10, "blank plot"
        colours = img.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 20


def test_plot_compares_runs(project, tmp_path):
    first = _record(project)
    second = _record(project, [line.replace("= 0.2", "= 0.4") for line in LOG])
    out = plots.plot([first, second], tmp_path / "both.png")
    _assert_curves(out)
    assert records.find(project.cwd / "snaps") == [first, second]


def test_caffebox_plot_from_the_command_line(project):
    """`caffebox plot "RUN RUN" --out FILE` as the README gives it: a sweep's folder of runs
    or the runs themselves, one PNG with the curves; a folder with no record is one
    paragraph."""
    first, second = _record(project), _record(project)
    runs = f"{first.relative_to(project.cwd)} {second.relative_to(project.cwd)}"
    done = caffebox("plot", runs, "--out", "both.png", cwd=project.cwd)
    assert done.returncode == 0, done.stderr
    assert f"caffebox: plotted 2 run(s) into {project.cwd / 'both.png'}" in done.stdout
    _assert_curves(project.cwd / "both.png")
    (project.cwd / "empty").mkdir()
    missing = caffebox("plot", "empty", cwd=project.cwd)
    assert_one_paragraph(missing, 2, r"empty holds no run record \(no iterations.csv")


def test_without_matplotlib_the_csv_is_still_written(project, monkeypatch):
    real = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    folder = _record(project)
    assert (folder / "iterations.csv").is_file() and not (folder / "curves.png").exists()
    with pytest.raises(plots.NoMatplotlib, match=r"pip install 'caffebox\[plots\]'"):
        plots.plot([folder], folder / "x.png")
