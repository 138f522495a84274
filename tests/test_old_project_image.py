"""A Caffe-era project (examples/oldproject: written here in the style of 2015-2018 papers'
code) through the whole path a new user takes, on the real image: Python 2 refused before
any container, `caffebox modernize --write`, the project image from its caffebox.toml, its
Cython extension built with `caffebox run`, then an RPN-like net (its anchor-target layer
reading `self.param_str_`, the Python SmoothL1Loss) and a Fast R-CNN-style head (the Python
ROIPooling) that train until their loss falls, the second run reusing the project image."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

from caffebox import project

from .support.cli import ROOT, assert_one_paragraph, assert_untouched, caffebox, fingerprint

pytestmark = pytest.mark.image


def _env(image: str) -> dict[str, str]:
    return {**os.environ, "INVOKE_CAFFEBOX_IMAGE": image}


def _remove_project_images(engine, image: str) -> None:
    for made in engine.images.list(filters={"label": project.HASH_LABEL}):
        if any(t.startswith(f"{image}-project-") for t in made.tags):
            engine.images.remove(made.id, force=True)


@pytest.fixture
def old_project(open_dir, engine, image):
    folder = open_dir / "oldproject"
    shutil.copytree(ROOT / "examples" / "oldproject", folder)
    _remove_project_images(engine, image)  # the first run builds it, as on a new machine
    yield folder
    _remove_project_images(engine, image)


def _losses(run_folder: Path) -> list[dict[str, str]]:
    (record,) = sorted(run_folder.glob("*"))
    with (record / "iterations.csv").open() as f:
        return list(csv.DictReader(f))


def test_an_old_project_trains_after_modernize(old_project, image):
    env = _env(image)
    train_rpn = ("train", "models/rpn_solver.prototxt", "--layers", "lib")
    before = fingerprint(old_project)
    done = caffebox(*train_rpn, cwd=old_project, env=env)
    said = r"Python 2 code in the layers this net imports: lib/boxnet/anchor_labels.py:\d+ "
    assert_one_paragraph(done, 2, said + r".*caffebox modernize lib")
    assert_untouched(before, fingerprint(old_project))

    done = caffebox("modernize", "lib", "--write", cwd=old_project, env=env)
    assert done.returncode == 0, done.stderr
    for fixer in ("fissix print", "fissix except", "fissix import", "ruff NPY001",
                  "caffebox yaml.load -> yaml.safe_load", "caffebox .pyx np.int_t -> np.intp_t",
                  "caffebox / -> // in an index, size or range()"):  # fmt: skip
        assert fixer in done.stdout, done.stdout
    assert "removed lib/geometry/iou.c" in done.stdout
    layer = (old_project / "lib/boxnet/anchor_labels.py").read_text()
    assert "yaml.safe_load(self.param_str_)" in layer  # still the 2015 name: the build sets it
    assert "from .config import cfg" in layer and "from geometry.iou import" in layer

    done = caffebox("run", "--layers", "lib", "--", "make", "-C", "lib", cwd=old_project, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "building the project image" in done.stdout
    assert list((old_project / "lib/geometry").glob("iou.cpython-*.so"))

    done = caffebox(*train_rpn, cwd=old_project, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "(from " in done.stdout and "reused)" in done.stdout
    rows = _losses(old_project / "output" / "rpn.runs")
    first, last = rows[0], rows[-2]  # the last row has the final (smoothed) loss only
    assert abs(float(first["train/rpn_cls_loss"]) - 0.693) < 0.02  # ln 2: untrained
    assert float(last["train/rpn_cls_loss"]) < 0.35, rows[-3:]
    assert float(rows[-1]["loss"]) < 0.5 * float(first["loss"])
    assert float(first["train/rpn_loss_bbox"]) > 0  # the Python SmoothL1Loss is in the loss

    done = caffebox("train", "models/head_solver.prototxt", "--layers", "lib", cwd=old_project,
                    env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "reused)" in done.stdout
    rows = _losses(old_project / "output" / "head.runs")
    assert float(rows[-1]["loss"]) < 0.5 * float(rows[0]["loss"]), rows[-3:]
    assert float(rows[-2]["train/loss_cls"]) < 0.4


def test_a_package_the_image_lacks_names_caffebox_toml(open_dir, image):
    (open_dir / "layers").mkdir()
    (open_dir / "layers" / "cfg_layer.py").write_text(
        "import caffe\nfrom easydict import EasyDict\n\nclass L(caffe.Layer):\n"
        "    def setup(self, bottom, top):\n        pass\n"
    )
    (open_dir / "net.prototxt").write_text(
        'layer { name: "l" type: "Python" top: "x" python_param { module: "cfg_layer" '
        'layer: "L" } }\n'
    )
    (open_dir / "solver.prototxt").write_text('net: "net.prototxt"\nmax_iter: 2\n'
                                              'snapshot_prefix: "out/x"\n')  # fmt: skip
    done = caffebox("train", "solver.prototxt", "--layers", "layers", cwd=open_dir,
                    env=_env(image))  # fmt: skip
    assert_one_paragraph(done, 1, r"the image has no Python package 'easydict'.*caffebox.toml")


def test_a_caffebox_toml_pip_cannot_satisfy_is_one_paragraph(open_dir, engine, image):
    (open_dir / "caffebox.toml").write_text('[image]\npip = ["no-such-package-caffebox-x"]\n')
    before = fingerprint(open_dir)
    done = caffebox("run", "--", "true", cwd=open_dir, env=_env(image))
    said = r"caffebox.toml: the project image did not build: pip says 'No matching distribution"
    assert_one_paragraph(done, 2, said + r" found for no-such-package-caffebox-x'")
    assert_untouched(before, fingerprint(open_dir))
    assert not [i for i in engine.images.list() if any("-project-" in t for t in i.tags)
                and any(t.startswith(image) for t in i.tags)]  # fmt: skip
