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
    def __init__(self, max_iter: int, display: int) -> None:
        self.max_iter, self.display = max_iter, display
        self.layer_wise_reduce = True
        self.snapshot_after_train = True


def _fake_caffe(record_dir, max_iter=10, display=4, fail=None):
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
            self.param, self.iter = _Param(max_iter, display), 0
            self.net = types.SimpleNamespace(after_backward=lambda nccl: None)

        def add_callback(self, nccl):
            pass

        def step(self, n: int) -> None:
            rank = state["rank"]
            if fail and fail[0] == rank and self.iter >= display:
                if fail[1] == "abort":
                    os._exit(134)  # as a CHECK failure in C++ would
                raise RuntimeError("layer blew up")
            self.iter += n
            with open(os.path.join(record_dir, f"rank{rank}.steps"), "a") as f:
                f.write(f"{n}\n")

        def snapshot(self) -> None:
            with open(os.path.join(record_dir, f"rank{state['rank']}.snapshot"), "w") as f:
                f.write(str(self.iter))

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
    assert (out / "rank0.snapshot").read_text() == "10"
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
