"""The pre-flight read of a net's Python layers: Python 2 code is named before any container."""

from __future__ import annotations

import pytest

from caffebox import layer_sources, training
from caffebox.errors import CaffeboxError

NET = 'layer {{ name: "l" type: "Python" top: "x" python_param {{ module: "{}" layer: "L" }} }}\n'


@pytest.fixture
def project(tmp_path):
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt"\nsnapshot_prefix: "s/x"\n'
                                              "max_iter: 10\n")  # fmt: skip
    lib = tmp_path / "lib"
    (lib / "rpn").mkdir(parents=True)
    (lib / "rpn" / "__init__.py").write_text("")
    (lib / "rpn" / "layer.py").write_text("from fast_rcnn.config import cfg\nimport numpy\n")
    (lib / "fast_rcnn").mkdir()
    (lib / "fast_rcnn" / "__init__.py").write_text("")
    (lib / "fast_rcnn" / "config.py").write_text("cfg = {}\nprint 'loaded'\n")
    (lib / "unused.py").write_text("print 'never imported'\n")
    (tmp_path / "net.prototxt").write_text(NET.format("rpn.layer"))
    return tmp_path


def _plan(project):
    return training.plan(training.TrainOptions(solver="solver.prototxt", image="i",
                                               layer_dirs=["lib"]), cwd=project)  # fmt: skip


def test_python2_in_an_imported_module_is_named_before_any_container(project):
    with pytest.raises(CaffeboxError) as caught:
        _plan(project)
    said = str(caught.value)
    assert "Python 2 code" in said and "lib/fast_rcnn/config.py:2" in said
    assert "caffebox modernize lib" in said and "unused.py" not in said
    assert not (project / "s").exists()


def test_python3_layers_pass_and_unimported_python2_is_not_read(project):
    (project / "lib" / "fast_rcnn" / "config.py").write_text("cfg = {}\nprint('loaded')\n")
    assert _plan(project).spec.command[:2] == ["caffe", "train"]


def test_relative_imports_are_followed(project):
    (project / "lib" / "rpn" / "layer.py").write_text("from .anchors import make\n")
    (project / "lib" / "rpn" / "anchors.py").write_text("def make():\n    print 'x'\n")
    with pytest.raises(CaffeboxError, match=r"lib/rpn/anchors.py:2"):
        _plan(project)


def test_module_files_walks_packages(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for f in ("a/__init__.py", "a/b/__init__.py", "a/b/c.py", "top.py"):
        (tmp_path / f).write_text("")
    assert layer_sources.module_files("a.b.c", [tmp_path]) == [
        tmp_path / "a/__init__.py", tmp_path / "a/b/__init__.py", tmp_path / "a/b/c.py"]
    assert layer_sources.module_files("top", [tmp_path]) == [tmp_path / "top.py"]
    assert layer_sources.module_files("numpy", [tmp_path]) == []


@pytest.mark.parametrize("text,old", [
    ("print 'x'\n", True), ("except ValueError, e:\n", True), ("print\n", True),
    ("print('x')\n", False), ("printer = 1\n", False), ("print >>f, x\n", True),
])  # fmt: skip
def test_looks_python2(text, old):
    assert layer_sources.looks_python2(text) is old
