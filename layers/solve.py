"""`caffe train -weights` in pycaffe: fine-tuning that works on every Caffe fork.

Some forks' `caffe` tool accepts -weights and never loads them (the PyPI tree
brocolli-caffe 9.0.2 does this): training silently starts from scratch. caffebox runs
fine-tuning here instead, the way BVLC's tool does it: the solver, then each weights
file copied into the train and test nets ("Finetuning from ..."), then Caffe's own
Solve. Ctrl-C, SIGTERM and SIGHUP snapshot and stop at the next `display` boundary, as
the caffe tool's SIGINT handling does.

    python3 -m caffebox_layers.solve --solver solver.prototxt --weights a.caffemodel[,b.caffemodel]
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence


def _log(message: str) -> None:
    print(f"caffebox solve: {message}", file=sys.stderr, flush=True)


def solver_param(solver_file: str):
    """The solver file as Caffe's SolverParameter (some forks' pycaffe lacks solver.param)."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    param = caffe_pb2.SolverParameter()
    with open(solver_file) as f:
        text_format.Merge(f.read(), param)
    return param


def _fingerprint(net) -> list[tuple[float, float]]:
    """A cheap summary of every learnable blob: it changes when copy_from copied a layer."""
    return [
        (float(blob.data.sum()), float(blob.data.flat[0]) if blob.data.size else 0.0)
        for blobs in net.params.values()
        for blob in blobs
    ]


def run(solver_file: str, weights: list[str], gpu: int | None = None) -> int:
    """Fine-tune; 0 when done or stopped by a signal (after a snapshot), as `caffe train`."""
    import caffe
    from caffe.proto import caffe_pb2

    param = solver_param(solver_file)
    if gpu is not None or param.solver_mode == caffe_pb2.SolverParameter.GPU:
        caffe.set_device(gpu or 0)
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()
    stop: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: stop.append(signum))
    solver = caffe.get_solver(solver_file)
    for path in weights:
        _log(f"Finetuning from {path}")
        before = _fingerprint(solver.net)
        solver.net.copy_from(path)
        for net in solver.test_nets:
            net.copy_from(path)
        if before and _fingerprint(solver.net) == before:
            # Caffe copies layers by name and says nothing when none matches.
            _log(f"{path} shares no layer with this net: no weight was copied (layers are "
                 "matched by name)")  # fmt: skip
            return 2
    max_iter = int(param.max_iter)
    chunk = max(1, int(param.display) or 100)
    # Step in chunks so a signal is seen between them; Caffe's Solve does the last
    # chunk and what follows the loop (final snapshot, loss, test, "Optimization Done.").
    while max_iter - solver.iter > chunk and not stop:
        solver.step(chunk)
    if stop:
        solver.snapshot()
        _log("Optimization stopped early.")
        return 0
    solver.solve()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="caffebox_layers.solve", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--solver", required=True)
    parser.add_argument("--weights", required=True, help="comma-separated .caffemodel files")
    parser.add_argument("--gpu", type=int, default=None)
    args = parser.parse_args(argv)
    return run(args.solver, [w for w in args.weights.split(",") if w], args.gpu)


if __name__ == "__main__":
    sys.exit(main())
