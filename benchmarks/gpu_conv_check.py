"""cuDNN against Caffe's own convolution on the same input and weights.

Builds one small conv net twice, `engine: CUDNN` and `engine: CAFFE` (convolution,
ReLU, pooling), copies the weights across, runs forward and backward on the same input
and prints the largest differences of outputs and gradients; writes both nets as
prototxt for `caffe time`. Exercises caffebox's cudnn_compat.h algorithm choice and its
workspace limits on a real cuDNN.

On Ampere and later, cuDNN may compute FP32 convolutions in TF32 (10-bit mantissa) unless
told not to, and Caffe's own engine (cuBLAS) does not: run it with NVIDIA_TF32_OVERRIDE=0
to compare FP32 with FP32 (differences ~1e-6), without it (`--report`: no verdict) to see
what TF32 costs: ~1e-3 in outputs, more in gradients, where ReLU's mask flips with a
value's sign (on an H100, 8e-2 of the input gradient's largest value).
Pooling averages: with MAX, a rounding difference can flip which element of a near-tied
window takes the whole gradient, which compares tie-breaking rather than cuDNN.

    python3 benchmarks/gpu_conv_check.py [--cpu] [--out DIR] [--limit 1e-3 | --report]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402
import numpy as np  # noqa: E402

SHAPE = (16, 32, 28, 28)
NET = """force_backward: true
layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ {dims} }} }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "x" top: "c1" convolution_param {{
  num_output: 64 kernel_size: 3 pad: 1 engine: {e}
  weight_filler {{ type: "gaussian" std: 0.05 }} bias_filler {{ type: "constant" value: 0.1 }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "c1" top: "c1" relu_param {{ engine: {e} }} }}
layer {{ name: "conv2" type: "Convolution" bottom: "c1" top: "c2" convolution_param {{
  num_output: 32 kernel_size: 5 stride: 2 engine: {e}
  weight_filler {{ type: "gaussian" std: 0.05 }} }} }}
layer {{ name: "pool" type: "Pooling" bottom: "c2" top: "p" pooling_param {{
  pool: AVE kernel_size: 2 stride: 2 engine: {e} }} }}
layer {{ name: "loss" type: "Reduction" bottom: "p" top: "loss" loss_weight: 1
  reduction_param {{ operation: SUMSQ }} }}
"""


def write_net(engine: str, folder: str) -> str:
    path = os.path.join(folder, f"conv_{engine.lower()}.prototxt")
    dims = " ".join(f"dim: {d}" for d in SHAPE)
    with open(path, "w") as f:
        f.write(NET.format(e=engine, dims=dims))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="CAFFE engine both times, on the CPU")
    parser.add_argument("--out", default=".", help="where to write the two nets")
    parser.add_argument("--limit", type=float, default=1e-3,
                        help="largest relative difference that still agrees")  # fmt: skip
    parser.add_argument("--report", action="store_true",
                        help="the differences only, no verdict (TF32 may differ)")  # fmt: skip
    args = parser.parse_args()
    if args.cpu:
        caffe.set_mode_cpu()
    else:
        caffe.set_device(0)
        caffe.set_mode_gpu()
    engines = ("CAFFE", "CAFFE") if args.cpu else ("CUDNN", "CAFFE")
    nets = [caffe.Net(write_net(e, args.out), caffe.TRAIN) for e in engines]
    for name, params in nets[0].params.items():
        for i, blob in enumerate(params):
            nets[1].params[name][i].data[...] = blob.data
    x = np.random.RandomState(0).standard_normal(SHAPE).astype(np.float32)
    for net in nets:
        net.blobs["x"].data[...] = x
        net.forward()
        for params in net.params.values():
            for blob in params:
                blob.diff[...] = 0
        net.backward()
    worst = 0.0
    print(f"{engines[0]} vs {engines[1]}, input {SHAPE}:")
    rows = [(f"top {b}", nets[0].blobs[b].data, nets[1].blobs[b].data) for b in ("c1", "c2", "p")]
    rows.append(("d input", nets[0].blobs["x"].diff, nets[1].blobs["x"].diff))
    for name in nets[0].params:
        for i, label in enumerate(("weights", "bias")[: len(nets[0].params[name])]):
            rows.append((f"d {name} {label}", nets[0].params[name][i].diff,
                         nets[1].params[name][i].diff))  # fmt: skip
    for label, a, b in rows:
        diff = float(np.abs(a - b).max())
        scale = float(np.abs(b).max()) or 1.0
        worst = max(worst, diff / scale)
        print(f"  {label:<18} max |diff| {diff:.3e}   relative {diff / scale:.3e}")
    ok = worst < args.limit
    tf32 = os.environ.get("NVIDIA_TF32_OVERRIDE") == "0"
    math = "FP32 only (NVIDIA_TF32_OVERRIDE=0)" if tf32 else "cuDNN's default math"
    math = "Caffe's engine on the CPU" if args.cpu else math
    if args.report:
        print(f"with {math}: largest relative difference {worst:.3e} (reported, not judged)")
        return 0
    print(f"{'AGREE' if ok else 'DISAGREE'} with {math}: largest relative difference "
          f"{worst:.3e} (limit {args.limit:g})")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
