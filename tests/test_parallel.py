"""caffebox_layers.parallel's process orchestration, with a fake pycaffe (no GPU, no NCCL here).

The fake records what each rank did in files, so the test sees the ranks' real work:
chunked steps, one snapshot by rank 0, and the exit codes when a rank fails.
"""

from __future__ import annotations

import os
import sys
import types

import pytest

from caffebox_layers import parallel


class _Param:
    def __init__(self, max_iter: int, display: int, snapshot: int = 0) -> None:
        self.max_iter, self.display, self.snapshot = max_iter, display, snapshot
        self.layer_wise_reduce = True
        self.snapshot_after_train = True
        self.test_interval, self.test_iter = display, [3]


class _Net:
    """forward() returns its outputs, as pycaffe's Net does."""

    def __init__(self, outputs: dict) -> None:
        self.values, self.outputs = outputs, list(outputs)

    def forward(self):
        import numpy as np

        return {k: np.array(v, dtype=np.float32) for k, v in self.values.items()}

    def after_backward(self, nccl):
        pass

    def copy_from(self, path: str) -> None:
        self.copied = [*getattr(self, "copied", []), path]


def _fake_caffe(record_dir, max_iter=10, display=4, fail=None, snapshot=0):
    """A caffe module whose solver logs steps; `fail` = (rank, 'raise' | 'abort')."""
    state = {"rank": None}
    module = types.ModuleType("caffe")
    module.has_nccl = lambda: True
    module.set_mode_gpu = lambda: None
    module.set_device = lambda gpu: None
    module.set_solver_count = lambda n: None
    module.set_solver_rank = lambda rank: state.update(rank=rank)
    module.set_multiprocess = lambda on: None
    module.state = state

    class Solver:
        def __init__(self) -> None:
            self.param, self.iter = _Param(max_iter, display, snapshot), 0
            self.net = _Net({"loss": 0.25})
            self.test_nets = [_Net({"accuracy": 0.75, "loss": 0.5})]

        def add_callback(self, nccl):
            pass

        def step(self, n: int) -> None:
            rank = state["rank"]
            if fail and fail[0] == rank and self.iter >= display:
                if fail[1] == "abort":
                    os._exit(134)  # as a CHECK failure in C++ would
                raise RuntimeError("layer blew up")
            for _ in range(n):  # Caffe's Step: the root solver snapshots every `snapshot`
                self.iter += 1
                if rank == 0 and snapshot and self.iter % snapshot == 0:
                    self.snapshot()
            with open(os.path.join(record_dir, f"rank{rank}.steps"), "a") as f:
                f.write(f"{n}\n")

        def snapshot(self) -> None:
            with open(os.path.join(record_dir, f"rank{state['rank']}.snapshot"), "a") as f:
                f.write(f"{self.iter}\n")

    class NCCL:
        def __init__(self, solver, uid) -> None:
            pass

        @staticmethod
        def new_uid() -> bytes:
            return b"uid"

        def bcast(self) -> None:
            pass

    module.get_solver = lambda path: Solver()
    module.NCCL = NCCL
    return module


@pytest.fixture
def fake_caffe(monkeypatch, tmp_path):
    def install(**kwargs):
        monkeypatch.setitem(sys.modules, "caffe", _fake_caffe(str(tmp_path), **kwargs))
        return tmp_path

    return install


def test_ranks_step_in_display_chunks_and_rank0_snapshots(fake_caffe):
    out = fake_caffe(max_iter=10, display=4)
    assert parallel.run("solver.prototxt", [0, 1]) == 0
    for rank in (0, 1):
        assert (out / f"rank{rank}.steps").read_text().split() == ["4", "4", "2"]
    assert (out / "rank0.snapshot").read_text() == "10\n"
    assert not (out / "rank1.snapshot").exists()


def test_a_rank_that_raises_fails_the_run(fake_caffe):
    fake_caffe(max_iter=12, display=4, fail=(1, "raise"))
    assert parallel.run("solver.prototxt", [0, 1]) == 1


def test_a_rank_that_dies_in_cpp_ends_the_others(fake_caffe):
    # Rank 1 exits hard after its first chunk; rank 0 would wait at the barrier (in real
    # life: in an NCCL all-reduce) for ever unless the parent ends it.
    fake_caffe(max_iter=400, display=4, fail=(1, "abort"))
    assert parallel.run("solver.prototxt", [0, 1]) == 1  # returns: nothing waits for ever


def test_no_nccl_is_a_clear_error(monkeypatch, capsys):
    module = types.ModuleType("caffe")
    module.has_nccl = lambda: False
    monkeypatch.setitem(sys.modules, "caffe", module)
    assert parallel.run("solver.prototxt", [0, 1]) == 2
    assert "no NCCL" in capsys.readouterr().err


@pytest.mark.parametrize("given, used", [(None, "lo"), ("ib0", "ib0")])
def test_rank0_makes_the_uid_over_loopback_and_every_rank_gets_it(
    fake_caffe, monkeypatch, given, used
):
    """All ranks are children of one process on one machine: NCCL's bootstrap socket must be
    one the host routes to itself, whatever interface NCCL would pick first (a user's choice
    stands). The uid is made in rank 0, never in the parent, which must not touch CUDA
    before it forks."""
    if given is None:
        monkeypatch.delenv("NCCL_SOCKET_IFNAME", raising=False)
    else:
        monkeypatch.setenv("NCCL_SOCKET_IFNAME", given)
    out = fake_caffe(max_iter=4, display=4)
    caffe = sys.modules["caffe"]

    def new_uid() -> bytes:
        (out / "made").write_text(f"{os.getpid()} {os.environ.get('NCCL_SOCKET_IFNAME')}")
        return f"uid of {os.getpid()}".encode()

    class NCCL(caffe.NCCL):
        def __init__(self, solver, uid) -> None:
            (out / f"rank{caffe.state['rank']}.uid").write_bytes(uid)

    NCCL.new_uid = staticmethod(new_uid)
    monkeypatch.setattr(caffe, "NCCL", NCCL)
    assert parallel.run("solver.prototxt", [0, 1, 2]) == 0
    maker, ifname = (out / "made").read_text().split()
    assert int(maker) != os.getpid() and ifname == used
    uids = {(out / f"rank{rank}.uid").read_bytes() for rank in range(3)}
    assert uids == {f"uid of {maker}".encode()}


def test_one_snapshot_when_the_interval_divides_max_iter(fake_caffe):
    """Caffe's step() snapshots at max_iter when `snapshot` divides it: the end must not
    snapshot the same iteration again (it once did)."""
    out = fake_caffe(max_iter=12, display=4, snapshot=6)
    assert parallel.run("solver.prototxt", [0, 1]) == 0
    assert (out / "rank0.snapshot").read_text().split() == ["6", "12"]


def test_the_end_logs_what_caffes_solve_logs(fake_caffe, capfd):
    fake_caffe(max_iter=8, display=4)
    assert parallel.run("solver.prototxt", [0, 1]) == 0
    err = capfd.readouterr().err
    from caffebox.caffelog import parse

    log = parse(err)
    assert log.done and log.iteration == 8 and log.loss == 0.25, err
    assert log.final_test() == {"accuracy": 0.75, "loss": 0.5}, err
    assert err.count("Optimization Done.") == 1


class _LateReader:
    """A barrier after which this rank is descheduled until the other has asked to stop."""

    def __init__(self, barrier, requested) -> None:
        self.barrier, self.requested = barrier, requested

    def wait(self):
        self.barrier.wait()
        self.requested.wait()

    def abort(self):
        self.barrier.abort()


def _latch_rank(latch, first, seen, requested):
    barrier = latch.barrier
    if not first:
        latch.barrier = _LateReader(barrier, requested)
    decision = latch.wait()
    if first:
        latch.request()  # a Ctrl-C landing right after this rank passed the barrier
        requested.set()
    latch.barrier = barrier
    seen.put((first, decision, latch.wait()))


def test_the_stop_decision_is_one_for_all_ranks():
    """Ranks once read the stop flag after the barrier: one went on into NCCL's all-reduce,
    the other to the final barrier, and both waited for ever."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    latch = parallel.StopLatch(ctx, 2)
    seen, requested = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_latch_rank, args=(latch, first, seen, requested))
             for first in (True, False)]  # fmt: skip
    for proc in procs:
        proc.start()
    results = sorted(seen.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    # This round: both go on (the request came after the barrier); next round: both stop.
    assert [r[1:] for r in results] == [(False, True), (False, True)]


def test_finetuning_is_logged_as_caffe_logs_it(fake_caffe, capfd):
    """A multi-GPU run with Python layers and --weights exited 1 "trained from scratch":
    train checks the log for 'Finetuning from', which only Caffe's own tool wrote."""
    fake_caffe(max_iter=4, display=4)
    assert parallel.run("solver.prototxt", [0, 1], weights="w.caffemodel") == 0
    from caffebox.caffelog import parse

    err = capfd.readouterr().err
    assert parse(err).finetuned_from, err
    assert err.count("Finetuning from w.caffemodel") == 1
