"""The training step against its limit: what a data layer costs the step.

Runs on the host with an engine and a caffebox image (default caffebox:cpu):

    python benchmarks/data_layers.py [--image IMAGE] [--images 2000] [--batch 16]
                                     [--iterations 20] [--repeats 7] [--dir DIR]

Makes a benchmark set in DIR (default /tmp/caffebox-data-layers): IMAGES PNGs of 256x256
(smooth random colours, so they decode like photos, not like flat fills) in 10 classes,
listed in Caffe's ImageData format, and the same set as an LMDB (convert_imageset). Then
one small convolutional net (224x224 crops, mirrored) is fed six ways, in one container,
interleaved, REPEATS rounds of ITERATIONS solver steps each (a pause before each round, so
no round pays for another's prefetchers refilling), the median and the best round per step:

    fixed       an Input layer holding one batch: the compute alone, the limit
    Data        Caffe's C++ Data layer from the LMDB (it prefetches in a thread)
    ImageData   Caffe's C++ ImageData layer from the list file
    python 0    caffebox_layers.data.ImageListData, workers 0 (decoding inside forward)
    python 1    the same, 1 worker
    python 2    the same, 2 workers

and `caffebox time` gives the Python share of the step for python 0 and python 2. One
table: milliseconds per step and each as a ratio to `fixed`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

CAFFEBOX = [sys.executable, "-m", "caffebox"]
CROP = 224

MAKE_SET = """
import numpy as np
from pathlib import Path
from PIL import Image

rng = np.random.default_rng(0)
Path("images").mkdir(exist_ok=True)
lines = []
for i in range({images}):
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((256, 256), Image.BICUBIC)
    image.save(f"images/{{i:05d}}.png")
    lines.append(f"{{i:05d}}.png {{i % 10}}\\n")
Path("train.txt").write_text("".join(lines))
print("made", len(lines), "images")
"""

BODY = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 32 kernel_size: 7 stride: 2 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  convolution_param { num_output: 64 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv3" type: "Convolution" bottom: "pool2" top: "conv3"
  convolution_param { num_output: 128 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "pool3" type: "Pooling" bottom: "conv3" top: "pool3"
  pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "pool3" top: "fc"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""

TRANSFORM = f"transform_param {{ crop_size: {CROP} mirror: true scale: 0.00390625 }}"


def data_layers(batch: int) -> dict[str, str]:
    """The data layer of each variant, as prototxt."""
    python = (
        "layer {{ name: \"data\" type: \"Python\" top: \"data\" top: \"label\"\n"
        "  python_param {{ module: \"caffebox_layers.data\" layer: \"ImageListData\"\n"
        "    param_str: \"{{'source': 'train.txt', 'root_folder': 'images/', 'batch_size': "
        f"{batch}, 'shuffle': True, 'crop_size': {CROP}, 'mirror': True, 'scale': 0.00390625, "
        "'workers': {workers}}}\" }} }}\n"
    )
    return {
        "fixed": (
            'layer { name: "data" type: "Input" top: "data" top: "label"\n'
            f"  input_param {{ shape {{ dim: {batch} dim: 3 dim: {CROP} dim: {CROP} }} "
            f"shape {{ dim: {batch} }} }} }}\n"
        ),
        "Data": (
            'layer { name: "data" type: "Data" top: "data" top: "label"\n'
            f"  {TRANSFORM}\n"
            f'  data_param {{ source: "train_lmdb" batch_size: {batch} backend: LMDB }} }}\n'
        ),
        "ImageData": (
            'layer { name: "data" type: "ImageData" top: "data" top: "label"\n'
            f"  {TRANSFORM}\n"
            f'  image_data_param {{ source: "train.txt" root_folder: "images/" '
            f"batch_size: {batch} shuffle: true }} }}\n"
        ),
        **{f"python {w}": python.format(workers=w) for w in (0, 1, 2)},
    }


TIMING = """
import json, statistics, time
import numpy as np
import caffe

caffe.set_mode_cpu()
names = {names!r}
solvers = {{}}
for name in names:
    solvers[name] = caffe.SGDSolver(f"solver_{{names.index(name)}}.prototxt")
    if name == "fixed":
        net = solvers[name].net
        net.blobs["data"].data[...] = np.random.default_rng(0).random(net.blobs["data"].shape)
        net.blobs["label"].data[...] = np.arange(net.blobs["label"].count) % 10
    solvers[name].step(3)  # warm up: first batches, memory, workers started
times = {{name: [] for name in names}}
for _ in range({repeats}):
    for name in names:  # interleaved: each round sees the machine as the others do
        # Every prefetcher refills its queue after its own round (workers, Caffe's
        # threads): let that settle, so no round pays for another's background work.
        time.sleep(2)
        started = time.perf_counter()
        solvers[name].step({iterations})
        times[name].append((time.perf_counter() - started) / {iterations} * 1000)
print("RESULT " + json.dumps({{n: [statistics.median(t), min(t)] for n, t in times.items()}}))
"""


def run(args: list[str], cwd: Path, image: str) -> str:
    env = {**os.environ, "INVOKE_CAFFEBOX_IMAGE": image}
    done = subprocess.run([*CAFFEBOX, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def python_share(out: str) -> str:
    """The Python layers' share of the step from `caffebox time`'s table."""
    found = re.search(r"Python layers?[^\n]*?([0-9.]+)\s*%", out)
    return f"{found.group(1)}%" if found else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="caffebox:cpu")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dir", default="/tmp/caffebox-data-layers")
    options = parser.parse_args()
    work = Path(options.dir)
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "train.txt").is_file():
        (work / "make_set.py").write_text(MAKE_SET.format(images=options.images))
        print(run(["python", "make_set.py"], work, options.image).strip())
    if not (work / "train_lmdb").is_dir():
        run(["run", "--", "convert_imageset", "--shuffle", "images/", "train.txt",
             "train_lmdb"], work, options.image)  # fmt: skip
    layers = data_layers(options.batch)
    names = list(layers)
    for i, name in enumerate(names):
        (work / f"net_{i}.prototxt").write_text(f'name: "bench"\n{layers[name]}{BODY}')
        (work / f"solver_{i}.prototxt").write_text(textwrap.dedent(f"""\
            net: "net_{i}.prototxt"
            base_lr: 0.001
            momentum: 0.9
            lr_policy: "fixed"
            max_iter: 100000
            display: 0
            snapshot: 0
            snapshot_after_train: false
            solver_mode: CPU
            """))
    script = TIMING.format(names=names, repeats=options.repeats, iterations=options.iterations)
    (work / "timing.py").write_text(script)
    out = run(["python", "timing.py"], work, options.image)
    medians = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    shares = {}
    for name in ("python 0", "python 2"):
        net = f"net_{names.index(name)}.prototxt"
        shares[name] = python_share(run(["time", net, "--iterations", "10"], work, options.image))
    base, best = medians["fixed"]
    print(f"\n{options.images} PNGs 256x256, crop {CROP} + mirror, batch {options.batch}, "
          f"median of {options.repeats} x {options.iterations} steps, image {options.image}, "
          f"{os.cpu_count()} CPUs\n")  # fmt: skip
    print("| data layer | ms per step (median) | ratio to fixed | ms per step (best round) | "
          "ratio to fixed | Python share (caffebox time) |")
    print("|---|---|---|---|---|---|")
    for name in names:
        median, low = medians[name]
        print(f"| {name} | {median:.0f} | {median / base:.2f} | {low:.0f} | {low / best:.2f} | "
              f"{shares.get(name, '')} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
