"""caffebox modernize on snippets written here in the style of 2015-2018 Caffe projects:
each fixer's snippet fails on today's Python, numpy, PyYAML or Cython before, and works after."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from caffebox.modernize import modernize, runs_directly

from .support.cli import assert_one_paragraph, assert_untouched, caffebox, fingerprint


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _run(folder: Path, *paths: str, write: bool = True):
    out = io.StringIO()
    report = modernize(list(paths) or ["."], write=write, cwd=folder, out=out)
    return report, out.getvalue()


def test_python2_statements_compile_after(tmp_path):
    layer = _write(tmp_path, "layer.py", """\
        import cPickle
        def setup(p):
            print 'params', p
            try:
                return cPickle.loads(p)
            except ValueError, e:
                print >>sys.stderr, e
            for k, v in p.iteritems():
                pass
        """)
    with pytest.raises(SyntaxError):
        compile(layer.read_text(), "layer.py", "exec")
    report, said = _run(tmp_path)
    text = layer.read_text()
    compile(text, "layer.py", "exec")
    assert "import pickle" in text and "except ValueError as e:" in text
    assert "p.items()" in text and "print('params', p)" in text
    assert report.fixes["fissix print"] == 2 and report.fixes["fissix except"] == 1
    assert "1 file(s) changed" in said and "fissix print" in said


def test_package_modules_import_relatively_scripts_keep_absolute_imports(tmp_path):
    _write(tmp_path, "lib/rpn/__init__.py", "")
    _write(tmp_path, "lib/rpn/anchors.py", "def make():\n    return 1\n")
    layer = _write(tmp_path, "lib/rpn/layer.py", "from anchors import make\n")
    script = _write(tmp_path, "lib/rpn/train_net.py", "import _init_paths\nfrom anchors import "
                    "make\nprint make()\n")  # fmt: skip
    _run(tmp_path, "lib")
    assert layer.read_text() == "from .anchors import make\n"
    assert "from anchors import make" in script.read_text()
    assert "print(make())" in script.read_text()
    sys.path.insert(0, str(tmp_path / "lib"))
    try:
        import rpn.layer  # noqa: F401 - imports only with the relative import

    finally:
        sys.path.remove(str(tmp_path / "lib"))
        for name in [m for m in sys.modules if m == "rpn" or m.startswith("rpn.")]:
            del sys.modules[name]


@pytest.mark.parametrize("text,expected", [
    ("#!/usr/bin/env python\nx = 1\n", True),
    ("def main():\n    pass\nif __name__ == '__main__':\n    main()\n", True),
    ("import _init_paths\n", True),
    ("import os\n", False),
])  # fmt: skip
def test_scripts_are_recognised(text, expected):
    assert runs_directly(text) is expected


def test_yaml_load_without_loader_becomes_safe_load(tmp_path):
    layer = _write(tmp_path, "layer.py", """\
        import yaml
        def params(text):
            return yaml.load(text)
        def kept(text):
            return yaml.load(text, Loader=yaml.SafeLoader)
        """)
    namespace: dict = {}
    exec(layer.read_text(), namespace)
    with pytest.raises(TypeError):  # PyYAML 6: Loader is required
        namespace["params"]("'feat_stride': 16")
    report, _ = _run(tmp_path)
    namespace = {}
    exec(layer.read_text(), namespace)
    assert namespace["params"]("'feat_stride': 16") == {"feat_stride": 16}
    assert "Loader=yaml.SafeLoader" in layer.read_text()
    assert report.fixes["caffebox yaml.load -> yaml.safe_load"] == 1
    assert int(yaml.__version__.split(".")[0]) >= 6


def test_numpy_removed_aliases_by_ruff_ignoring_the_users_settings(tmp_path):
    layer = _write(tmp_path, "layer.py", """\
        import numpy as np
        def boxes(n):
            return np.zeros((n, 4), dtype=np.float)
        """)
    # The user's own ruff settings must not change what modernize does.
    _write(tmp_path, "ruff.toml", "[lint]\nignore = ['NPY001']\nexclude = ['*.py']\n")
    namespace: dict = {}
    exec(layer.read_text(), namespace)
    with pytest.raises(AttributeError):
        namespace["boxes"](2)
    report, _ = _run(tmp_path)
    exec(layer.read_text(), namespace)
    assert namespace["boxes"](2).dtype == np.float64
    assert report.fixes["ruff NPY001"] == 1


def test_division_used_as_index_or_size_becomes_floor_division(tmp_path):
    layer = _write(tmp_path, "sample.py", """\
        import numpy as np
        BATCH_SIZE = 128
        def sample(num_images, labels):
            keep = np.zeros(BATCH_SIZE / num_images)
            first = labels[: BATCH_SIZE / num_images]
            rois_per_image = BATCH_SIZE / num_images
            picked = labels[rois_per_image]
            ratio = BATCH_SIZE / 3.0
            return [i for i in range(BATCH_SIZE / num_images)], keep, first, picked, ratio
        """)
    namespace: dict = {}
    exec(layer.read_text(), namespace)
    with pytest.raises(TypeError):
        namespace["sample"](2, np.arange(100))
    report, said = _run(tmp_path)
    text = layer.read_text()
    assert text.count("BATCH_SIZE // num_images") == 3
    assert "rois_per_image = BATCH_SIZE / num_images" in text  # listed, not changed
    assert "ratio = BATCH_SIZE / 3.0" in text
    assert "sample.py:6: 'rois_per_image = ... / ...' is a float" in said
    exec(text, namespace)
    with pytest.raises(IndexError):  # only the listed one is left: a float index
        namespace["sample"](2, np.arange(100))


def _cythonize(pyx: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cython", "-3", str(pyx)],
                          capture_output=True, text=True, cwd=pyx.parent)  # fmt: skip


def test_cython_numpy_names_and_stale_generated_c(tmp_path):
    pyx = _write(tmp_path, "utils/bbox.pyx", """\
        cimport numpy as np
        import numpy as np
        DTYPE = np.float
        ctypedef np.float_t DTYPE_t
        def overlaps(np.ndarray[DTYPE_t, ndim=2] boxes, np.float thresh):
            cdef np.int count = 0 if thresh else 1
            cdef np.ndarray[np.int_t, ndim=1] keep = np.zeros(3, dtype=np.int)
            return keep
        """)
    stale = _write(tmp_path, "utils/bbox.c", "/* Generated by Cython 0.20.1 */\nint old;\n")
    own = _write(tmp_path, "utils/helper.c", "int mine;\n")
    before = _cythonize(pyx)
    assert before.returncode != 0 and "Invalid type" in before.stdout + before.stderr
    stale.write_text("/* Generated by Cython 0.20.1 */\nint old;\n")  # cython overwrote it
    report, said = _run(tmp_path, "utils", write=False)
    assert stale.is_file() and "would remove utils/bbox.c" in said and "+DTYPE = np.float64" in said
    report, said = _run(tmp_path, "utils")
    text = pyx.read_text()
    assert "np.intp_t" in text and "dtype=np.intp" in text and "DTYPE = np.float64" in text
    assert "np.float_t" in text  # numpy 2 kept it
    assert "np.float64_t thresh" in text and "cdef np.intp_t count = 0 if" in text
    assert not stale.exists() and own.is_file() and "removed utils/bbox.c" in said
    assert _cythonize(pyx).returncode == 0


def test_a_diff_changes_nothing_and_a_second_write_nothing_more(tmp_path):
    _write(tmp_path, "a.py", "print 'x'\n")
    before = fingerprint(tmp_path)
    report, said = _run(tmp_path, write=False)
    assert "-print 'x'\n+print('x')" in said and "Apply with" in said
    assert_untouched(before, fingerprint(tmp_path))
    _run(tmp_path)
    report, said = _run(tmp_path)
    assert not report.changed and "0 file(s) changed" in said


def test_what_fissix_cannot_read_is_listed(tmp_path):
    _write(tmp_path, "broken.py", "def f(:\n    pass\n")
    report, said = _run(tmp_path)
    assert "broken.py:1: not Python 2 or 3 fissix can read" in said


def test_cli_bad_path_is_one_paragraph(tmp_path):
    _write(tmp_path, "a.py", "print 'x'\n")
    before = fingerprint(tmp_path)
    done = caffebox("modernize", "nowhere", cwd=tmp_path)
    assert_one_paragraph(done, 2, "does not exist")
    done = caffebox("modernize", "a.py", "--write", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a.py").read_text() == "print('x')\n"
    assert before != fingerprint(tmp_path)


def test_floats_that_are_no_index_are_not_listed(tmp_path):
    """What py-faster-rcnn's lib/ has: a mask, an array tiled, a shape unpacked, a name of
    the same spelling in another function, and sizes divided before use."""
    _write(tmp_path, "ok.py", """\
        import numpy as np
        def ap(rec, prec):
            return np.max(prec[rec >= 0.5])
        def recall(tp, npos):
            rec = tp / float(npos)
            return rec
        def tiled(rois, scale, top, ims):
            boxes = rois[:, 1:5] / scale
            ims = ims / 255.0
            top.reshape(*(ims.shape))
            return np.tile(boxes, (1, 3))
        """)
    report, said = _run(tmp_path, write=False)
    assert not report.left and not report.changed, said


def test_cython_len_halved_is_integer_division_again(tmp_path):
    pyx = _write(tmp_path, "masks.pyx", """\
        ctypedef unsigned long siz
        cdef void take(siz n):
            pass
        def from_polygon(poly):
            take(len(poly)/2)
            return len(poly) / 2.0, len(poly[0])/3
        """)
    before = _cythonize(pyx)
    assert before.returncode != 0 and "Cannot assign type 'double' to 'siz'" in before.stderr
    report, said = _run(tmp_path)
    text = pyx.read_text()
    assert "take(len(poly) // 2)" in text and "len(poly[0]) // 3" in text
    assert "len(poly) / 2.0" in text  # a float division was meant
    assert "caffebox .pyx len(...) / N -> //" in said
    assert _cythonize(pyx).returncode == 0


def test_nvcc_for_a_gpu_cuda_no_longer_compiles_is_listed(tmp_path):
    _write(tmp_path, "setup.py", """\
        ext = dict(extra_compile_args={'gcc': [], 'nvcc': ['-arch=sm_35', '-c']})
        other = ['-gencode', 'arch=compute_90,code=sm_90']
        """)
    report, said = _run(tmp_path)
    assert report.left == ["setup.py:1: nvcc for sm_35, which CUDA 13 does not compile (it "
                           "starts at sm_75, CUDA 12 at sm_50): name your GPU's, e.g. sm_90 "
                           "(see 'nvcc --list-gpu-arch')"]  # fmt: skip


def test_a_distutils_header_naming_a_missing_source_is_removed(tmp_path):
    _write(tmp_path, "coco/maskApi.c", "int mask_api;\n")
    pyx = _write(tmp_path, "coco/_mask.pyx", """\
        # distutils: language = c
        # distutils: sources = ../MatlabAPI/private/maskApi.c
        x = 1
        """)
    kept = _write(tmp_path, "coco/_kept.pyx", "# distutils: sources = maskApi.c\nx = 1\n")
    report, said = _run(tmp_path)
    assert pyx.read_text() == "# distutils: language = c\nx = 1\n"
    assert kept.read_text() == "# distutils: sources = maskApi.c\nx = 1\n"
    assert "'# distutils: sources' naming a missing file -> removed" in said
