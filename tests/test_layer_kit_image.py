"""The layer kit on real pycaffe in the image, and its agreement with the numpy stand-in."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from .support.cli import ROOT, invoke

pytestmark = pytest.mark.image


@pytest.fixture(scope="module")
def image(each_distro_image) -> str:
    """This module's tests run on the image of each Debian release (conftest)."""
    return each_distro_image
FIXTURES = "examples/layer_tests"

# (layer, inputs, param_str, expected verdict)
CASES = [
    ("caffebox_layers.losses.EuclideanLoss", ["a=4x3", "b=4x3"], "", "PASSED"),
    ("caffebox_layers.affine.ChannelAffine", ["x=2x3x2x2"], "'gamma': 1.5, 'beta': -0.2", "PASSED"),
    ("caffebox_layers.gpu.EuclideanLossGPU", ["a=4x3", "b=4x3"], "", "PASSED"),  # numpy path on cpu
    ("broken_layers.HalfGradientEuclidean", ["a=4x3", "b=4x3"], "", "FAILED"),
    ("broken_layers.WrongSignAffine", ["x=2x3x2x2"], "'beta': 0.5", "FAILED"),
]


def _inputs(shapes: list[str]) -> list[str]:
    return [arg for shape in shapes for arg in ("--input", shape)]


@pytest.mark.parametrize("layer,shapes,param_str,verdict", CASES, ids=[c[0] for c in CASES])
def test_gradcheck_on_pycaffe_agrees_with_standin(image, layer, shapes, param_str, verdict):
    in_image = invoke(
        "gradcheck", layer, *_inputs(shapes), "--param-str", param_str, "--layers", FIXTURES,
        "--image", image,
    )  # fmt: skip
    on_host = subprocess.run(
        [sys.executable, "-m", "caffebox_layers.testing", layer, *_inputs(shapes),
         "--param-str", param_str, "--backend", "standin"],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / FIXTURES}"},
    )  # fmt: skip
    assert f"on caffe: {verdict}" in in_image.stdout, in_image.stdout[-3000:] + in_image.stderr
    assert f"on standin: {verdict}" in on_host.stdout, on_host.stdout + on_host.stderr
    expected_code = 0 if verdict == "PASSED" else 1
    assert in_image.returncode == on_host.returncode == expected_code
    if verdict == "FAILED":
        assert "worst elements" in in_image.stdout and "analytic" in in_image.stdout


def test_param_str_error_in_image(image):
    done = invoke(
        "gradcheck", "caffebox_layers.affine.ChannelAffine", "--input", "x=2x3x2x2",
        "--param-str", "'gama': 2", "--image", image,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]  # the checker: a layer it cannot set up
    assert "ChannelAffine: unknown key 'gama' in param_str; allowed keys: beta, gamma" in (
        done.stdout + done.stderr
    )


def test_tutorial_interface_in_image(run_in_image):
    script = (
        "import numpy as np\n"
        "from test_gradient_for_python_layer import test_gradient_for_python_layer\n"
        "r = np.random.RandomState(0)\n"
        "report = test_gradient_for_python_layer([('a', r.randn(3, 4)), ('b', r.randn(3, 4))],\n"
        "    ['loss'], 'caffebox_layers.losses', 'EuclideanLoss', '', [True, False])\n"
        "print(report)\n"
    )
    code, out = run_in_image(["python3", "-c", script])
    assert code == 0, out[-3000:]
    assert "EuclideanLoss on caffe: PASSED" in out


def test_user_layer_suite_runs_in_image(image):
    done = invoke("test-layers", FIXTURES, "--image", image)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "3 passed" in done.stdout


def test_netspec_example_trains_its_parameter_layer(open_dir, image):
    work = open_dir / "netspec"
    shutil.copytree(ROOT / "examples", work / "examples")
    made = invoke("python", "examples/netspec/make_net.py", "--image", image, cwd=work)
    assert made.returncode == 0, made.stdout + made.stderr
    assert 'type: "Python"' in (work / "examples/netspec/net.prototxt").read_text()
    trained = invoke("train", "examples/netspec/solver.prototxt", "--image", image, cwd=work)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr
    assert "loss_ema" in trained.stdout
    (work / "params.py").write_text(
        "import caffe\n"
        "net = caffe.Net('examples/netspec/net.prototxt', "
        "'snapshots/netspec_iter_400.caffemodel', caffe.TEST)\n"
        "gamma, beta = net.params['affine'][0].data, net.params['affine'][1].data\n"
        "print('AFFINE', float(abs(gamma - 1).max()), float(abs(beta).max()))\n"
    )
    shown = invoke("python", "params.py", "--image", image, cwd=work)
    line = next(ln for ln in shown.stdout.splitlines() if ln.startswith("AFFINE"))
    gamma_moved, beta_moved = map(float, line.split()[1:])
    assert gamma_moved > 1e-4 and beta_moved > 1e-4, line


ITER_SIZE_SCRIPT = '''
import numpy as np, caffe
rng = np.random.RandomState(0)
np.savez("xy.npz", x=rng.randn(8, 3, 2, 2).astype("f4"), y=rng.randn(8, 3, 2, 2).astype("f4"))
NET = """
layer {{ name: "d" type: "Python" top: "x" top: "y" python_param {{ module: "caffebox_layers.data"
  layer: "ArrayData" param_str: "{{'source': 'xy.npz', 'keys': ['x', 'y'], "
  "'batch_size': {batch}, 'shuffle': False}}" }} }}
layer {{ name: "affine" type: "Python" bottom: "x" top: "z" python_param {{
  module: "caffebox_layers.affine" layer: "ChannelAffine"
  param_str: "'gamma': 0.5, 'beta': 0.1" }} }}
layer {{ name: "loss" type: "Python" bottom: "z" bottom: "y" top: "loss" loss_weight: 1
  python_param {{ module: "caffebox_layers.losses" layer: "EuclideanLoss" }} }}
"""
def update(batch, iter_size):
    open("net.prototxt", "w").write(NET.format(batch=batch))
    open("solver.prototxt", "w").write(
        'net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed" max_iter: 1 '
        'iter_size: %d solver_mode: CPU display: 0 snapshot_after_train: false' % iter_size)
    solver = caffe.SGDSolver("solver.prototxt")
    solver.step(1)
    return [b.data.copy() for b in solver.net.params["affine"]]
start = [np.full(3, 0.5), np.full(3, 0.1)]
for pa, pb, p0 in zip(update(8, 1), update(4, 2), start):
    print("DIFF", float(np.abs(pa - pb).max()), "MOVED", float(np.abs(pa - p0).max()))
'''


def test_iter_size_two_equals_doubled_batch(open_dir, image):
    work = open_dir / "iter_size"
    work.mkdir()
    (work / "check.py").write_text(ITER_SIZE_SCRIPT)
    done = invoke("python", "check.py", "--image", image, cwd=work)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    diffs = [ln.split() for ln in done.stdout.splitlines() if ln.startswith("DIFF")]
    assert len(diffs) == 2
    for row in diffs:
        assert float(row[1]) < 1e-5 and float(row[3]) > 1e-3, diffs


def test_gradcheck_options_reach_the_checker(image, tmp_path):
    """--propagate-down, --threshold, --step, --kink, --kink-range and --seed as the README
    lists them: the checker in the image honours each."""
    both = invoke("gradcheck", "caffebox_layers.losses.EuclideanLoss", "--input", "a=4x3",
                  "--input", "b=4x3", "--image", image, "--seed", "3", cwd=tmp_path)  # fmt: skip
    assert both.returncode == 0, both.stdout + both.stderr
    options = ["--step", "0.05", "--kink", "0", "--kink-range", "0.001", "--seed", "3"]
    one = invoke("gradcheck", "caffebox_layers.losses.EuclideanLoss", "--input", "a=4x3",
                 "--input", "b=4x3", "--propagate-down", "1,0", "--image", image, *options,
                 cwd=tmp_path)  # fmt: skip
    assert one.returncode == 0, one.stdout + one.stderr
    counts = [int(n) for n in re.findall(r"(\d+) elements", both.stdout + one.stdout)]
    assert counts[0] == 24 and counts[1] < 24, (both.stdout, one.stdout)
    strict = invoke("gradcheck", "caffebox_layers.affine.ChannelAffine", "--input", "x=2x3x2x2",
                    "--threshold", "1e-12", "--step", "0.1", "--image", image,
                    cwd=tmp_path)  # fmt: skip
    assert strict.returncode == 1, strict.stdout + strict.stderr


CUBE = '''import caffe


class Cube(caffe.Layer):
    """x**3, its exact gradient 3x**2: a central difference is off by step**2."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data ** 3

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 3 * bottom[0].data ** 2 * top[0].diff
'''


def test_gradcheck_step_reaches_the_checker(image, tmp_path):
    """--step is the finite difference's: on x**3 the default (1e-2) passes and a step of 1
    fails (the central difference's error is step**2), so the option is not lost."""
    (tmp_path / "cube.py").write_text(CUBE)
    args = ["gradcheck", "cube.Cube", "--input", "x=2x3", "--layers", ".", "--image", image]
    fine = invoke(*args, cwd=tmp_path)
    assert fine.returncode == 0, fine.stdout + fine.stderr
    coarse = invoke(*args, "--step", "1", cwd=tmp_path)
    assert coarse.returncode == 1 and "FAILED" in coarse.stdout, coarse.stdout + coarse.stderr
