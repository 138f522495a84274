"""A run's life on a fake engine: signals, the bounded wait, engine refusals, removal."""

from __future__ import annotations

import dataclasses
import io
import os
import signal

import docker
import pytest

from caffebox import runs, training
from caffebox.caffelog import TrainingLog
from caffebox.errors import CaffeboxError
from caffebox.progress import ProgressBar

from .support.fakes import FakeContainer, FakeEngine


def FakeClient(container: FakeContainer, create_error=None) -> FakeEngine:  # noqa: N802
    return FakeEngine(container=container, create_error=create_error)


SPEC = runs.RunSpec(image="img", command=["caffe"], cwd=runs.Path("/tmp"), project_layers=None)
TRAINING = ["I1126 solver.cpp:218] Iteration 300 (50 iter/s), loss = 0.5"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_asks_caffe_to_snapshot_and_removes_the_container(sig):
    """SIGTERM/SIGHUP once exited caffebox and left Caffe training in its container."""
    container = FakeContainer(TRAINING)
    out, caught = io.StringIO(), []
    container.on_running = lambda: caught.append(sig)  # what the signal handler does
    watch = training.LogWatch(ProgressBar(1000, stream=io.StringIO()))
    result = runs.run(FakeClient(container), SPEC, watch=watch, out=out, caught=caught,
                      asking=training.ASKING)  # fmt: skip
    assert container.killed == [signal.SIGINT]  # Caffe's own "snapshot, then stop"
    assert container.removed
    assert result.stop_signal == sig and result.exit_code == 0
    assert watch.log.solverstates() == ["my snaps/d_iter_300.solverstate"]
    text = out.getvalue()
    assert "asking Caffe to snapshot and stop" in text
    assert text.count("Iteration 300") == 1, "log lines must not be printed twice"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_stop_signals_are_caught_then_the_old_handlers_restored(sig):
    def before(signum, frame):
        raise AssertionError("the old handler ran while caffebox was catching")

    previous = signal.signal(sig, before)
    try:
        with runs.caught_signals() as caught:
            os.kill(os.getpid(), sig)  # delivered to this (main) thread before kill returns
            assert caught == [sig]
        assert signal.getsignal(sig) is before
    finally:
        signal.signal(sig, previous)


def test_a_non_stop_program_is_asked_to_stop_in_plain_words():
    container = FakeContainer(["collected 3 items"])
    out, caught = io.StringIO(), []
    container.on_running = lambda: caught.append(signal.SIGINT)
    runs.run(FakeClient(container), SPEC, out=out, caught=caught)
    assert "Ctrl-C: asking it to stop" in out.getvalue() and "Caffe" not in out.getvalue()


def test_caffe_that_ignores_the_request_is_killed_after_the_grace_period():
    container = FakeContainer(TRAINING, deaf=True)
    caught: list[int] = []
    container.on_running = lambda: caught.append(signal.SIGTERM)
    spec = dataclasses.replace(SPEC, stop_grace=0.5)  # the stop_grace setting's value
    result = runs.run(FakeClient(container), spec, out=io.StringIO(), caught=caught)
    assert container.killed == [signal.SIGINT, signal.SIGKILL]
    assert result.exit_code == 137 and container.removed


def test_a_second_signal_kills_at_once():
    """Even when both arrive before caffebox looks (the second was once lost)."""
    container = FakeContainer(TRAINING, deaf=True)
    caught: list[int] = []
    container.on_running = lambda: caught.extend([signal.SIGINT, signal.SIGINT])
    spec = dataclasses.replace(SPEC, stop_grace=3600)
    runs.run(FakeClient(container), spec, out=io.StringIO(), caught=caught)
    assert container.killed == [signal.SIGINT, signal.SIGKILL]


@pytest.mark.parametrize("where", ["create", "start"])
def test_engine_refusal_is_one_paragraph_and_leaves_no_container(where):
    error = docker.errors.APIError("boom", explanation="OCI runtime create failed: no python3")
    container = FakeContainer([], start_error=error if where == "start" else None)
    client = FakeClient(container, create_error=error if where == "create" else None)
    with pytest.raises(CaffeboxError, match="refused to start a container from img: OCI"):
        runs.run(client, SPEC, out=io.StringIO())
    assert container.removed == (where == "start")


def _plan(tmp_path, **options):
    (tmp_path / "net.prototxt").write_text("")
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nmax_iter: 1000\nsnapshot_prefix: "my snaps/d"\n'
    )
    return training.plan(
        training.TrainOptions(solver="solver.prototxt", image="i", **options), cwd=tmp_path
    )


def _result(lines: list[str], exit_code: int = 0, stop_signal: int = 0) -> training.TrainedRun:
    log = TrainingLog()
    for line in lines:
        log.feed(line)
    return training.TrainedRun(exit_code=exit_code, log=log, tail=lines, stop_signal=stop_signal)


STOPPED = [
    *TRAINING,
    "Snapshotting solver state to binary proto file my snaps/d_iter_300.solverstate",
    "Optimization stopped early.",
]
DONE = [*TRAINING, "I1126 caffe.cpp:259] Optimization Done."]


@pytest.mark.parametrize(
    ("sig", "code", "name"),
    [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "")],
)
def test_an_interrupted_run_never_exits_0(tmp_path, sig, code, name):
    """Ctrl-C once exited 0 with "finished at iteration 1300"."""
    from .test_snapshots import caffemodel, solverstate

    result = _result(STOPPED, stop_signal=sig)
    plan = _plan(tmp_path)
    (tmp_path / "my snaps").mkdir()
    (tmp_path / "my snaps/d_iter_300.caffemodel").write_bytes(caffemodel())
    (tmp_path / "my snaps/d_iter_300.solverstate").write_bytes(
        solverstate(300, "my snaps/d_iter_300.caffemodel"))
    got, message = training.outcome(result, plan)
    assert got == code
    assert f"stopped by {name}" in message and "at iteration 300 of 1000" in message
    assert "--snapshot 'my snaps/d_iter_300.solverstate'" in message
    assert training.summary(result, 1000).startswith("caffebox: stopped at iteration 300 of 1000")


def test_exit_0_without_optimization_done_is_a_failure(tmp_path):
    code, message = training.outcome(_result(TRAINING), _plan(tmp_path))
    assert code == 1 and "did not finish" in message


def test_weights_that_the_log_never_loaded_fail(tmp_path):
    (tmp_path / "w.caffemodel").write_bytes(b"x")
    plan = _plan(tmp_path, weights="w.caffemodel")
    code, message = training.outcome(_result(DONE), plan)
    assert code == 1 and "no 'Finetuning from'" in message
    loaded = ["caffebox solve: Finetuning from /p/w.caffemodel", *DONE]
    assert training.outcome(_result(loaded), plan) == (0, "")


def test_nan_loss_is_shown_and_fails(tmp_path):
    lines = ["I1126 solver.cpp:218] Iteration 20 (1 iter/s), loss = nan", DONE[-1]]
    result = _result(lines)
    assert "loss is NaN" in training.summary(result, 1000)
    code, message = training.outcome(result, _plan(tmp_path))
    assert code == 1 and "diverged" in message
    crashed = _result([*lines, "double free or corruption (out)"], exit_code=134)
    assert "became NaN" in training.outcome(crashed, _plan(tmp_path))[1]


def test_summary_keeps_snapshot_paths_with_spaces():
    lines = [
        *DONE,
        "Snapshotting to binary proto file my snaps/d_iter_1000.caffemodel",
        "Snapshotting solver state to binary proto file my snaps/d_iter_1000.solverstate",
    ]
    text = training.summary(_result(lines), 1000)
    assert "'my snaps/d_iter_1000.caffemodel', 'my snaps/d_iter_1000.solverstate'" in text


def test_wrong_class_name_gets_its_own_hint(tmp_path):
    tail = [
        "Traceback (most recent call last):",
        "AttributeError: module 'my_layers' has no attribute 'Scal'",
    ]
    message = training.explain_failure(_result(tail, exit_code=1), _plan(tmp_path))
    assert "has no class of the name" in message and "did not import" not in message


def test_an_engine_whose_wait_hangs_is_read_from_the_containers_state():
    """Rootless Podman 4.3's wait hung on a container that had exited: caffebox read its
    state instead (exit status as the engine records it)."""
    import requests

    class Hangs(FakeContainer):
        def __init__(self):
            super().__init__(["done"], forever=False)
            self.attrs = {"State": {"Status": "exited", "Running": False, "ExitCode": 3}}

        def wait(self, timeout=None):
            raise requests.exceptions.ReadTimeout("read timed out")

        def reload(self):
            pass

    assert runs.run(FakeClient(Hangs()), SPEC, out=io.StringIO()).exit_code == 3


def test_a_log_that_never_ends_is_closed_once_the_container_has_exited(monkeypatch):
    """Rootless Podman 4.3 kept the followed log open after the container exited: caffebox
    waited for ever. It asks the engine, and stops reading once the container is gone."""
    monkeypatch.setattr(runs, "QUIET_CHECK", 0.05)

    class Exited(FakeContainer):
        def __init__(self):
            super().__init__(["I1126 caffe.cpp:259] Optimization Done."], forever=True)
            self.attrs = {"State": {"Status": "exited", "Running": False, "ExitCode": 0}}

        def reload(self):
            pass

    container = Exited()
    result = runs.run(FakeClient(container), SPEC, out=io.StringIO())
    assert result.exit_code == 0 and container.removed
    container.ended.set()  # let the fake's reader thread go
