"""Multi-GPU training for nets with Python layers: one process per GPU, joined by NCCL.

The `caffe` binary refuses Python layers with several GPUs ("PythonLayer does not
support CLI Multi-GPU, use train.py"): each GPU needs its own Python interpreter. This is
what Caffe's python/train.py does, made a complete `caffe train`: solver type from the
solver file, --weights and --snapshot, the final snapshot, Ctrl-C, and exit codes.

    python3 -m caffebox_layers.parallel --solver solver.prototxt --gpus 0,1

`caffebox train --gpu 0,1` runs it for you when the net has Python layers. Rank 0 is
Caffe's root solver: it logs, tests and snapshots. Every rank steps in chunks of
`display` iterations and, between chunks, all ranks agree (through a barrier) whether a
Ctrl-C asked them to stop, so none is left waiting in an NCCL all-reduce.
"""

from __future__ import annotations

import argparse
import glob
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Sequence


def _log(message: str) -> None:
    print(f"caffebox parallel: {message}", file=sys.stderr, flush=True)


def visible_gpu_count() -> int:
    """GPUs the container was given (/dev/nvidia0, /dev/nvidia1, ...)."""
    return len([d for d in glob.glob("/dev/nvidia[0-9]*") if d[len("/dev/nvidia") :].isdigit()])


def _chunk(solver) -> int:
    display = int(solver.param.display) or 100
    return max(1, display)


class StopLatch:
    """Ctrl-C's "stop" decided once for all ranks at each barrier.

    Reading the flag after the barrier let a Ctrl-C that landed between two ranks' reads
    send one rank into NCCL's all-reduce and the other to the final barrier: a deadlock.
    The barrier's action (run by the last rank to arrive, before any is released) copies
    the request into `decided`, and every rank reads that copy.
    """

    def __init__(self, ctx, parties: int) -> None:
        self.requested, self.decided = ctx.Value("i", 0), ctx.Value("i", 0)
        self.barrier = ctx.Barrier(parties, action=self._latch)

    def _latch(self) -> None:
        self.decided.value = self.requested.value

    def request(self) -> None:
        self.requested.value = 1

    def wait(self) -> bool:
        """Wait for every rank; True when they all stop here."""
        self.barrier.wait()
        return bool(self.decided.value)

    def abort(self) -> None:
        self.requested.value = 1
        self.barrier.abort()


def _test_all(solver) -> None:
    """What Caffe's Solve does after its last step, in its log's words: the loss at
    max_iter and each test net's outputs (the step loop itself tests only before a step)."""
    param, it = solver.param, solver.iter
    if int(param.display) and it % int(param.display) == 0:
        loss = float(solver.net.forward()[_loss_name(solver.net)].sum())
        print(f"caffebox parallel] Iteration {it}, loss = {loss:g}", file=sys.stderr)
    if not (int(getattr(param, "test_interval", 0) or 0) and
            it % int(param.test_interval) == 0):  # fmt: skip
        return
    test_iters = list(getattr(param, "test_iter", []) or [])
    for n, net in enumerate(getattr(solver, "test_nets", []) or []):
        print(f"caffebox parallel] Iteration {it}, Testing net (#{n})", file=sys.stderr)
        sums: dict[str, float] = {}
        count = int(test_iters[n]) if n < len(test_iters) else 1
        for _ in range(count):
            for name, value in net.forward().items():
                sums[name] = sums.get(name, 0.0) + float(value.mean())
        for k, (name, total) in enumerate(sums.items()):
            print(f"caffebox parallel]     Test net output #{k}: {name} = {total / count:g}",
                  file=sys.stderr)  # fmt: skip


def _loss_name(net) -> str:
    outputs = list(net.outputs)
    return "loss" if "loss" in outputs else outputs[0]


def worker(rank: int, gpus: list[int], solver_file: str, weights: str, snapshot: str,
           uids, latch: StopLatch, failed) -> None:  # fmt: skip
    """One rank: its own GPU, its own copy of the net, gradients all-reduced by NCCL."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        import caffe

        caffe.set_mode_gpu()
        caffe.set_device(gpus[rank])
        caffe.set_solver_count(len(gpus))
        caffe.set_solver_rank(rank)
        caffe.set_multiprocess(True)
        solver = caffe.get_solver(solver_file)
        if snapshot:
            solver.restore(snapshot)
        elif weights:
            for path in weights.split(","):
                if rank == 0:  # what `caffe train -weights` logs: caffebox train checks it
                    _log(f"Finetuning from {path}")
                solver.net.copy_from(path)
                for net in solver.test_nets:
                    net.copy_from(path)
        if rank == 0:
            # Rank 0 makes NCCL's uid, not the parent: its bootstrap root (a thread and a
            # socket) lives in the process that made it, and making it may touch CUDA
            # (with NCCL_DEBUG set, each log line asks for the current device), which a
            # parent must not do before it forks: every rank then fails with CUDA's
            # "initialization error" (seen on an H100).
            uid = caffe.NCCL.new_uid()
            for _ in gpus[1:]:
                uids.put(uid)
        else:
            uid = uids.get()
        nccl = caffe.NCCL(solver, uid)
        nccl.bcast()
        solver.add_callback(nccl)
        if solver.param.layer_wise_reduce:
            solver.net.after_backward(nccl)
        max_iter = int(solver.param.max_iter)
        stopped = False
        while solver.iter < max_iter and not stopped:
            stopped = latch.wait()
            if not stopped:
                solver.step(min(_chunk(solver), max_iter - solver.iter))
        if not stopped:
            stopped = latch.wait()  # the last chunk done everywhere: one last decision
        if rank == 0:
            _finish(solver, stopped)
    except BaseException as exc:  # report, and release the other ranks
        failed.value = 1
        latch.abort()
        print(f"caffebox parallel: rank {rank} failed: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)  # fmt: skip
        raise


def _finish(solver, stopped: bool) -> None:
    """Rank 0's end, as Caffe's Solve: one snapshot (none where step() just took one at
    this iteration), the final loss and tests, and how it ended."""
    every = int(getattr(solver.param, "snapshot", 0) or 0)
    taken = bool(every) and solver.iter % every == 0
    if getattr(solver.param, "snapshot_after_train", True) and not taken:
        solver.snapshot()
    if stopped:
        print("caffebox parallel] Optimization stopped early.", file=sys.stderr, flush=True)
        return
    _test_all(solver)
    print("caffebox parallel] Optimization Done.", file=sys.stderr, flush=True)


def run(solver_file: str, gpus: list[int], weights: str = "", snapshot: str = "") -> int:
    """Train on `gpus`; returns 0, 1 when a rank failed, or 130 after Ctrl-C."""
    import caffe

    if not getattr(caffe, "has_nccl", lambda: False)():
        _log("this pycaffe has no NCCL (built without USE_NCCL := 1, or a fork without the "
             "bindings BVLC master has); use the gpu image built from BVLC master.")  # fmt: skip
        return 2
    _log(f"Using GPUs {gpus} (one process each, NCCL)")
    # Every rank is a child of this process on this machine, so NCCL's bootstrap (the uid
    # names a socket of rank 0) needs no network: lo, rather than the first other
    # interface NCCL would take (which a cluster node may firewall). A user's choice stands.
    os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
    ctx = mp.get_context("fork")
    latch = StopLatch(ctx, len(gpus))
    failed = ctx.Value("i", 0)
    uids = ctx.Queue()  # rank 0's uid, to the other ranks
    procs = [
        ctx.Process(target=worker,
                    args=(rank, gpus, solver_file, weights, snapshot, uids, latch, failed))
        for rank in range(len(gpus))
    ]  # fmt: skip
    for proc in procs:
        proc.start()
    interrupted = False
    while any(p.is_alive() for p in procs):
        try:
            for proc in procs:
                proc.join(timeout=1.0)
        except KeyboardInterrupt:
            interrupted = True
            latch.request()  # the ranks stop together at the next chunk; rank 0 snapshots
            _log("Ctrl-C: stopping after the current chunk, then snapshotting")
        if any(p.exitcode not in (None, 0) for p in procs):
            # A rank that died in C++ (a CHECK abort, a segfault) never reaches the barrier:
            # the others would wait in NCCL for ever, so end them.
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
            for proc in procs:
                proc.join()
            dead = [f"rank {r} exit {p.exitcode}" for r, p in enumerate(procs) if p.exitcode]
            _log(f"stopped all ranks: {', '.join(dead)}")
            return 1
    if failed.value:
        return 1
    return 130 if interrupted else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="caffebox_layers.parallel", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--solver", required=True)
    parser.add_argument("--gpus", required=True, help="'0,1' or 'all'")
    parser.add_argument("--weights", default="")
    parser.add_argument("--snapshot", default="")
    args = parser.parse_args(argv)
    if args.gpus == "all":
        gpus = list(range(visible_gpu_count()))
    else:
        gpus = [int(g) for g in args.gpus.split(",")]
    if not gpus:
        print("caffebox parallel: no GPU is visible in this container.", file=sys.stderr)
        return 2
    return run(args.solver, gpus, args.weights, args.snapshot)


if __name__ == "__main__":
    sys.exit(main())
