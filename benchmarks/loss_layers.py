"""Step time of the Python Euclidean losses against Caffe's C++ EuclideanLoss.

Run in the image (the baseline runs in the same process, so only ratios matter):

    invoke python "benchmarks/loss_layers.py --batch 256 --dim 4096"
    invoke python "benchmarks/loss_layers.py --gpu" --gpu 0 --image caffebox:gpu   # on a GPU

Each net is Input(x, target) -> Power (a copy: the predictions a real net makes anew each
step, on the GPU in GPU mode) -> loss; one step is forward + backward. The inputs are filled
once: a DummyData layer would refill them on the CPU every step and time its own random
numbers (it made every loss look alike on an H100).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("GLOG_minloglevel", "2")  # warnings and up: keep the table readable
import caffe  # noqa: E402
import numpy as np  # noqa: E402

LOSSES = {
    "C++ EuclideanLoss": 'type: "EuclideanLoss"',
    "caffebox_layers.losses.EuclideanLoss": 'type: "Python" python_param { '
    'module: "caffebox_layers.losses" layer: "EuclideanLoss" }',
    "caffebox_layers.gpu.EuclideanLossGPU": 'type: "Python" python_param { '
    'module: "caffebox_layers.gpu" layer: "EuclideanLossGPU" }',
}


def net_text(loss: str, batch: int, dim: int) -> str:
    shape = f"shape {{ dim: {batch} dim: {dim} }}"
    return (
        "force_backward: true\n"
        f'layer {{ name: "in" type: "Input" top: "x" top: "target" '
        f"input_param {{ {shape} {shape} }} }}\n"
        'layer { name: "pred" type: "Power" bottom: "x" top: "pred" }\n'
        f'layer {{ name: "loss" bottom: "pred" bottom: "target" top: "loss" loss_weight: 1 '
        f"{loss} }}\n"
    )


def step_time(loss: str, batch: int, dim: int, steps: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(net_text(loss, batch, dim))
    try:
        net = caffe.Net(f.name, caffe.TRAIN)
    finally:
        os.unlink(f.name)
    rng = np.random.default_rng(0)
    for name in ("x", "target"):
        net.blobs[name].data[...] = rng.standard_normal(net.blobs[name].data.shape)
    for _ in range(3):  # warm up: allocations, first GPU copies
        net.forward()
        net.backward()
    start = time.perf_counter()
    for _ in range(steps):
        net.forward()
        net.backward()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--gpu", action="store_true", help="run on GPU 0")
    args = parser.parse_args()
    if args.gpu:
        caffe.set_mode_gpu()
        caffe.set_device(0)
    else:
        caffe.set_mode_cpu()
    mode = "GPU" if args.gpu else "CPU"
    print(f"{mode}, batch {args.batch} x {args.dim} floats, {args.steps} steps (forward+backward)")
    base = None
    for name, loss in LOSSES.items():
        seconds = step_time(loss, args.batch, args.dim, args.steps)
        base = base or seconds
        print(f"  {name:<30} {seconds * 1e3:9.3f} ms/step   x{seconds / base:6.2f} of C++")


if __name__ == "__main__":
    main()
