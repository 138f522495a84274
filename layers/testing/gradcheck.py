"""Numerical gradient checking for Python layers, after Caffe's own GradientChecker.

Objective L = sum over tops of top^2 / 2 (so each top's diff is its data, as in
Caffe's checker). For every element x of each checked bottom and parameter blob,
the analytic dL/dx from backward() is compared with the central difference
(L(x + step) - L(x - step)) / (2 step); the check passes when
``|analytic - numeric| <= threshold * max(|analytic|, |numeric|, 1)``.
Elements within ``kink_range`` of ``kink`` are skipped (for ReLU-like kinks).

Run on real pycaffe inside the image, or on the numpy stand-in anywhere:

    python3 -m caffebox_layers.testing.gradcheck caffebox_layers.losses.EuclideanLoss \\
        --input pred=4x3 --input target=4x3

``--gpu 0`` runs Caffe in GPU mode, so layers that work on GPU memory (caffebox_layers.gpu) are
checked there: the net's blobs live on the device and ``blob.data`` syncs them back.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from caffebox_layers.testing.harness import Inputs, make_harness, normalise_inputs, split_layer

DEFAULT_STEP = 1e-2
DEFAULT_THRESHOLD = 1e-3


@dataclass
class Mismatch:
    """One element whose analytic and numeric gradients disagree."""

    blob: str
    index: tuple[int, ...]
    analytic: float
    numeric: float
    allowed: float

    @property
    def error(self) -> float:
        return abs(self.analytic - self.numeric)


@dataclass
class GradientReport:
    """The outcome of one check; ``str()`` gives the readable report."""

    layer: str
    backend: str
    threshold: float
    checked: int = 0
    skipped: int = 0
    failures: list[Mismatch] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        head = (
            f"gradient check of {self.layer} on {self.backend}: "
            f"{'PASSED' if self.passed else 'FAILED'} "
            f"({self.checked} elements checked, {self.skipped} skipped at the kink, "
            f"{len(self.failures)} outside the threshold {self.threshold:g})"
        )
        if self.passed:
            return head
        worst = sorted(self.failures, key=lambda m: m.error / m.allowed, reverse=True)[:10]
        rows = [f"  {'blob':<20} {'index':<16} {'analytic':>14} {'numeric':>14} {'|diff|':>12}"]
        for m in worst:
            rows.append(
                f"  {m.blob:<20} {str(m.index):<16} {m.analytic:>14.6g} {m.numeric:>14.6g} "
                f"{m.error:>12.4g}"
            )
        return head + "\nworst elements:\n" + "\n".join(rows)


def _blobs(vector) -> list:
    """A plain list from a bottom/top vector (pycaffe's cannot be iterated)."""
    return [vector[i] for i in range(len(vector))]


def _objective(tops) -> float:
    return float(sum(0.5 * np.sum(np.asarray(t.data, dtype=np.float64) ** 2) for t in _blobs(tops)))


def check_gradient(
    layer,
    inputs: Inputs,
    outputs: int | Sequence[str] = 1,
    param_str: str = "",
    propagate_down: Sequence[bool] | None = None,
    *,
    step: float = DEFAULT_STEP,
    threshold: float = DEFAULT_THRESHOLD,
    kink: float = 0.0,
    kink_range: float = -1.0,
    check_params: bool = True,
    phase: int = 0,
    backend: str = "auto",
) -> GradientReport:
    """Check a layer's backward against finite differences of its forward.

    `layer` is a class or 'module.Class'; `inputs` maps bottom names to arrays
    (a dict or (name, array) pairs); `outputs` is the number or the names of the tops.
    `backend` is 'caffe', 'standin' or 'auto' (real pycaffe where importable).
    """
    pairs = normalise_inputs(inputs)
    if propagate_down is None:
        propagate_down = [True] * len(pairs)
    harness = make_harness(layer, pairs, outputs, param_str, propagate_down, phase, backend)
    module, name = split_layer(layer)
    report = GradientReport(layer=f"{module}.{name}", backend=harness.backend, threshold=threshold)

    bottoms = _blobs(harness.bottoms)
    checked = [(f"bottom '{n}'", b) for (n, _), b, d in zip(pairs, bottoms, propagate_down) if d]
    if check_params:
        checked += [(f"param {i}", blob) for i, blob in enumerate(harness.params)]

    # Analytic gradients: forward, top diff = top data (dL/dtop for L = sum top^2/2), backward.
    harness.forward()
    for top in _blobs(harness.tops):
        top.diff[...] = top.data
    for _, blob in checked:
        blob.diff[...] = 0
    harness.backward()
    analytic = [np.array(blob.diff, dtype=np.float64) for _, blob in checked]

    # blob.data is fetched afresh for every write, as Caffe's checker calls mutable_cpu_data:
    # in GPU mode that marks the host copy current, so the next forward copies it to the
    # device (a view kept across forwards would write to a host copy Caffe no longer reads).
    for (label, blob), grad in zip(checked, analytic):
        for index in np.ndindex(*blob.data.shape):
            feature = float(blob.data[index])
            if kink_range >= 0 and kink - kink_range <= abs(feature) <= kink + kink_range:
                report.skipped += 1
                continue
            blob.data[index] = feature + step
            harness.forward()
            positive = _objective(harness.tops)
            blob.data[index] = feature - step
            harness.forward()
            negative = _objective(harness.tops)
            blob.data[index] = feature
            numeric = (positive - negative) / step / 2.0
            computed = float(grad[index])
            scale = max(abs(computed), abs(numeric), 1.0)
            report.checked += 1
            if abs(computed - numeric) > threshold * scale:
                report.failures.append(
                    Mismatch(
                        label, tuple(int(i) for i in index), computed, numeric, threshold * scale
                    )
                )
    harness.forward()
    return report


def assert_gradient(*args, **kwargs) -> GradientReport:
    """`check_gradient`, raising AssertionError with the report when it fails."""
    report = check_gradient(*args, **kwargs)
    if not report.passed:
        raise AssertionError(str(report))
    return report


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 2x3x4x4") from None


def _input(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, shape = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--input {text!r}: write NAME=SHAPE, e.g. data=2x3x4x4")
    return name, _shape(shape)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gradcheck", description="Check a Python layer's gradient numerically."
    )
    parser.add_argument("layer", help="module.Class of the layer, e.g. my_layers.MyLoss")
    parser.add_argument("--input", action="append", type=_input, required=True,
                        help="a bottom as NAME=SHAPE (repeat, in bottom order)")  # fmt: skip
    parser.add_argument("--outputs", type=int, default=1, help="number of tops (default 1)")
    parser.add_argument("--param-str", default="", help="the layer's param_str")
    parser.add_argument("--propagate-down", default="",
                        help="comma-separated 1/0 per bottom (default: all 1)")  # fmt: skip
    parser.add_argument("--step", type=float, default=DEFAULT_STEP)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--kink", type=float, default=0.0)
    parser.add_argument("--kink-range", type=float, default=-1.0)
    parser.add_argument("--seed", type=int, default=1701, help="seed of the random inputs")
    parser.add_argument("--backend", choices=["auto", "caffe", "standin"], default="auto")
    parser.add_argument("--gpu", type=int, default=None, metavar="N",
                        help="run Caffe in GPU mode on device N (a gpu image)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.gpu is not None:
        if args.backend == "standin":
            parser.error("--gpu needs real pycaffe, not the stand-in")
        import caffe

        caffe.set_mode_gpu()
        caffe.set_device(args.gpu)
    rng = np.random.RandomState(args.seed)
    inputs = [(name, rng.standard_normal(shape)) for name, shape in args.input]
    down = [d.strip() not in ("0", "false", "False") for d in args.propagate_down.split(",")] \
        if args.propagate_down else None  # fmt: skip
    try:
        report = check_gradient(
            args.layer, inputs, args.outputs, args.param_str, down, step=args.step,
            threshold=args.threshold, kink=args.kink, kink_range=args.kink_range,
            backend=args.backend,
        )  # fmt: skip
    except (ImportError, AttributeError, ValueError, RuntimeError) as exc:
        print(f"gradcheck: {args.layer}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(report)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
