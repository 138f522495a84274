"""Bounds on a runaway layer (processes, memory), an OOM kill said as such, and a full disk
that ends a run record without a traceback."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import pytest

from caffebox import launch, limits, records, runs, training
from caffebox.caffelog import TrainingLog
from caffebox.errors import CaffeboxError
from caffebox.progress import ProgressBar

from .support.fakes import FakeContainer, FakeEngine


@pytest.mark.parametrize("setting,total,expected", [
    ("auto", 8 * 2**30, 8 * 2**30 - 2**30 - 0),
    ("auto", 64 * 2**30, 64 * 2**30 - 64 * 2**30 // 10),
    ("auto", 2**30, 0),          # too small a host to take a tenth from: no limit
    ("none", 8 * 2**30, 0), ("", 8 * 2**30, 0),
    ("16g", 0, 16 * 2**30), ("512m", 0, 512 * 2**20), ("1.5GiB", 0, int(1.5 * 2**30)),
])  # fmt: skip
def test_memory_limit_setting(setting, total, expected):
    assert limits.memory_bytes(setting, total) == expected


def test_a_bad_memory_limit_is_one_paragraph():
    with pytest.raises(CaffeboxError, match="memory_limit setting is 'lots'"):
        limits.memory_bytes("lots", 0)


def _spec(tmp_path) -> runs.RunSpec:
    return runs.RunSpec(image="caffebox:cpu", command=["caffe"], cwd=tmp_path)


def test_runs_get_a_pids_and_memory_limit(tmp_path):
    target = launch.Target("caffebox:cpu", pids_limit=4096, memory_limit="auto")
    spec = launch._fit_to_engine(FakeEngine(), _spec(tmp_path), target)
    options = runs.container_options(spec)
    assert options["pids_limit"] == 4096
    assert options["mem_limit"] == options["memswap_limit"] == 7 * 2**30


def test_no_limits_when_set_off(tmp_path):
    target = launch.Target("caffebox:cpu", pids_limit=0, memory_limit="none")
    options = runs.container_options(launch._fit_to_engine(FakeEngine(), _spec(tmp_path), target))
    assert "pids_limit" not in options and "mem_limit" not in options


def test_an_oom_kill_is_said_as_such(tmp_path):
    engine = FakeEngine(container=FakeContainer(["I1204 solver.cpp:218] Iteration 0"],
                                                forever=False, oom_killed=True))  # fmt: skip
    spec = _spec(tmp_path)
    spec.memory = 2**30
    result = runs.run(engine, spec, out=io.StringIO())
    assert result.oom_killed
    said = runs.out_of_memory(result, spec)
    assert "went over its memory limit (1.0 GiB) and was killed" in said
    assert "memory_limit" in said


def test_training_explains_an_oom_kill(tmp_path):
    (tmp_path / "net.prototxt").write_text("")
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt"\nmax_iter: 10\n'
                                              'snapshot_prefix: "s/x"\n')  # fmt: skip
    plan = training.plan(training.TrainOptions(solver="solver.prototxt", image="i"),
                         cwd=tmp_path)  # fmt: skip
    result = training.TrainedRun(137, ["Killed"], oom_killed=True)
    said = training.explain_failure(result, plan)
    assert said.startswith("caffe was stopped: the container went over its memory limit")


class _FullDisk(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_stops_the_record_not_the_run():
    watch = training.LogWatch(ProgressBar(10, stream=io.StringIO()), _FullDisk())
    watch.line("I1204 solver.cpp:218] Iteration 5, loss = 0.5", 1.0)
    assert watch.record_error == "No space left on device"
    assert watch.log.iteration == 5  # the log is still read


def test_a_full_disk_at_the_end_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "net.prototxt").write_text("")
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt"\nmax_iter: 10\n'
                                              'snapshot_prefix: "s/x"\n')  # fmt: skip
    plan = training.plan(training.TrainOptions(solver="solver.prototxt", image="i"),
                         cwd=tmp_path)  # fmt: skip
    (tmp_path / "s").mkdir()
    record = records.Record.create(plan.solver)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(records, "finish", full)
    out = io.StringIO()
    result = training.TrainedRun(134, [], log=TrainingLog())
    watch = training.LogWatch(ProgressBar(10, stream=io.StringIO()), None)
    training._finish_record(record, plan, FakeEngine(), result, 134, "m", watch, out)
    assert out.getvalue() == (f"caffebox: the run record in {record.folder} is incomplete (No "
                              "space left on device): free space there; the run itself ended "
                              "as said above\n")  # fmt: skip
    assert Path(record.folder).is_dir()


def test_podman_is_asked_for_the_hosts_own_nofile_and_nproc(tmp_path, monkeypatch):
    """Root without CAP_SYS_RESOURCE (this CI machine): Podman's own defaults raise these
    limits and every container failed with 'error setting rlimit type 7'."""
    import resource

    from caffebox import engine

    monkeypatch.setattr(engine, "is_podman", lambda client: True)
    monkeypatch.setattr(engine, "is_rootless", lambda client: False)
    spec = launch._fit_to_engine(FakeEngine(), _spec(tmp_path), launch.Target("caffebox:cpu"))
    ulimits = {u["Name"]: (u["Soft"], u["Hard"]) for u in runs.container_options(spec)["ulimits"]}
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert ulimits["nofile"] == (soft, hard) and set(ulimits) == {"nofile", "nproc"}
    assert ulimits["nproc"][0] == ulimits["nproc"][1] <= 4096


def test_a_limit_the_engine_does_not_get_is_said_once(tmp_path, monkeypatch):
    from caffebox import engine

    monkeypatch.setattr(engine, "is_podman", lambda client: True)
    monkeypatch.setattr(engine, "is_rootless", lambda client: True)
    target = launch.Target("caffebox:cpu", memory_limit="auto", pids_limit=4096)
    spec = launch._fit_to_engine(FakeEngine(), _spec(tmp_path), target)
    assert spec.memory == 0 and spec.pids_limit == 4096
    assert "memory_limit is not applied under rootless Podman" in limits.unapplied(
        spec, target.runtime, target.memory_limit)
    none = launch.Target("caffebox:cpu", memory_limit="none")
    spec = launch._fit_to_engine(FakeEngine(), _spec(tmp_path), none)
    assert limits.unapplied(spec, none.runtime, none.memory_limit) == ""
    ch = launch.Target("/x", runtime="charliecloud")
    assert "ch-run applies no pids or memory limit" in limits.unapplied(
        _spec(tmp_path), ch.runtime, ch.memory_limit)
