"""caffebox as a user installs it: the wheel in a fresh venv, run from folders outside the
checkout; and a user project with a package of its own called `layers`."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .support.cli import ROOT

pytestmark = pytest.mark.image

USER_LAYERS = """\
import caffe


class Scale(caffe.Layer):
    def setup(self, bottom, top):
        self.factor = float(self.param_str or 2.0)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.factor * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = self.factor * top[0].diff
"""

USER_TESTS = """\
import numpy as np


def test_both_layers_packages(layer_net, gradient_check):
    net = layer_net("layers.scale.Scale", {"x": np.ones((2, 3))}, param_str="3")
    net.forward()
    assert (net.tops[0].data == 3).all()
    gradient_check("caffebox_layers.affine.ChannelAffine", {"x": np.ones((2, 3, 2, 2))})
"""


def _run(cmd, cwd):
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)


def test_the_wheel_is_a_real_install(user_install, wheel, tmp_path):
    python = user_install.parent / "python"
    done = _run([python, "-c", "import caffebox, caffebox_layers, caffebox.paths as p; "
                 "print(caffebox.__file__, caffebox_layers.__file__, p.DOCKERFILE.is_file(), "
                 "p.TEMPLATE.is_file())"], tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    files = done.stdout.split()
    assert all("site-packages" in f and str(ROOT) not in f for f in files[:2]), files
    assert files[2:] == ["True", "True"]
    shown = _run([user_install.parent / "pip", "show", "-f", "caffebox"], tmp_path).stdout
    assert "Editable project location" not in shown
    tops = {line.strip().split("/")[0] for line in shown.splitlines()[1:] if "/" in line}
    assert "layers" not in tops, "the wheel must not install a generic 'layers' package"
    suite = _run([user_install, "test", "--unit"], tmp_path)
    assert suite.returncode == 2 and "runs from a clone" in suite.stderr, suite.stderr
    config = _run([user_install, "config"], tmp_path)
    assert config.returncode == 0 and "WITH_PYTHON_LAYER := 1" in config.stdout, config.stderr
    print(f"\nwheel: {wheel.name} {wheel.stat().st_size / 1024:.0f} KiB")


def test_gradcheck_and_test_layers_from_the_wheel_with_a_users_layers_package(
    user_install, image, tmp_path
):
    """A project with its own `layers` package: once it shadowed caffebox's."""
    (tmp_path / "layers").mkdir()
    (tmp_path / "layers" / "__init__.py").write_text("")
    (tmp_path / "layers" / "scale.py").write_text(USER_LAYERS)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_mine.py").write_text(USER_TESTS)
    shutil.copytree(ROOT / "examples" / "layer_tests", tmp_path / "kit_tests")
    check = _run([user_install, "gradcheck", "layers.scale.Scale", "--input", "x=2x3",
                  "--param-str", "2.5", "--layers", ".", "--image", image], tmp_path)  # fmt: skip
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    assert "on caffe: PASSED" in check.stdout
    assert "RuntimeWarning" not in check.stderr  # once printed on every gradcheck
    ours = _run([user_install, "gradcheck", "caffebox_layers.losses.EuclideanLoss",
                 "--input", "a=4x3", "--input", "b=4x3", "--layers", ".", "--image", image],
                tmp_path)  # fmt: skip
    assert ours.returncode == 0, ours.stdout[-2000:] + ours.stderr[-2000:]
    suite = _run([user_install, "test-layers", "tests", "--layers", ".", "--image", image],
                 tmp_path)  # fmt: skip
    assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-2000:]
    assert "1 passed" in suite.stdout
    kit = _run([user_install, "test-layers", "kit_tests", "--image", image], tmp_path)
    assert kit.returncode == 0 and "3 passed" in kit.stdout, kit.stdout[-3000:]
