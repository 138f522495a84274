"""docker/fix-caffe-source.sh on small trees: each fix fires on the old code, and only there."""

import subprocess
import sys

from caffebox import paths

SCRIPT = paths.DOCKER_DIR / "fix-caffe-source.sh"

COMMON_CPP = """\
void Caffe::DeviceQuery() {
  cudaDeviceProp prop;
  LOG(INFO) << "Clock rate: " << prop.clockRate;
  LOG(INFO) << "Overlap: " << (prop.deviceOverlap ? "Yes" : "No");
  LOG(INFO) << "Name: " << prop.name;
}
"""
IO_CPP = "  coded_input->SetTotalBytesLimit(kProtoReadBytesLimit, 536870912);\n"


def _tree(tmp_path, cuda_fields: str):
    tree = tmp_path / "caffe"
    (tree / "src").mkdir(parents=True)
    (tree / "src" / "common.cpp").write_text(COMMON_CPP)
    (tree / "src" / "io.cpp").write_text(IO_CPP)
    cuda = tmp_path / "cuda"
    (cuda / "include").mkdir(parents=True)
    (cuda / "include" / "driver_types.h").write_text(
        f"struct cudaDeviceProp {{\n    char name[256];\n{cuda_fields}}};\n"
    )
    return tree, cuda


def _fix(tree, cuda) -> str:
    out = subprocess.run(["bash", str(SCRIPT), str(tree), str(cuda)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return out.stdout


def test_cuda13_device_prop_fields_become_attribute_queries(tmp_path):
    tree, cuda = _tree(tmp_path, "    int major;\n")  # CUDA 13: no clockRate, no deviceOverlap
    log = _fix(tree, cuda)
    text = (tree / "src" / "common.cpp").read_text()
    assert "prop.clockRate" not in text and "prop.deviceOverlap" not in text
    assert "cudaDeviceGetAttribute(&caffebox_v, cudaDevAttrClockRate, caffebox_d)" in text
    assert "cudaDevAttrGpuOverlap" in text and "prop.name" in text
    assert "cudaDeviceProp.clockRate read by cudaDeviceGetAttribute in src/common.cpp" in log


def test_older_cuda_keeps_the_fields(tmp_path):
    tree, cuda = _tree(tmp_path, "    int clockRate;\n    int deviceOverlap;\n")
    assert "CUDA 13" not in _fix(tree, cuda)
    assert (tree / "src" / "common.cpp").read_text() == COMMON_CPP


def test_protobuf_two_argument_limit_rewritten(tmp_path):
    tree, cuda = _tree(tmp_path, "    int clockRate;\n    int deviceOverlap;\n")
    log = _fix(tree, cuda)
    assert (tree / "src" / "io.cpp").read_text() == (
        "  coded_input->SetTotalBytesLimit(kProtoReadBytesLimit);\n"
    )
    assert "one-argument SetTotalBytesLimit in src/io.cpp" in log
    assert _fix(tree, cuda) == ""  # a fixed tree needs nothing more


def test_nccl_uid_keeps_its_zero_bytes(tmp_path):
    """BVLC's Python 3 binding cut the uid at its first zero byte (NCCL then waited on
    0.0.0.0:0 and failed); the rewrite returns all NCCL_UNIQUE_ID_BYTES."""
    tree, cuda = _tree(tmp_path, "    int clockRate;\n    int deviceOverlap;\n")
    (tree / "python" / "caffe").mkdir(parents=True)
    binding = tree / "python" / "caffe" / "_caffe.cpp"
    binding.write_text("  PyObject* py_uid = PyBytes_FromString(uid.c_str());\n")
    log = _fix(tree, cuda)
    assert binding.read_text() == (
        "  PyObject* py_uid = PyBytes_FromStringAndSize(uid.data(), uid.size());\n"
    )
    assert "NCCL.new_uid returns the whole uid in python/caffe/_caffe.cpp" in log
    assert _fix(tree, cuda) == ""


# ---- docker/fix-caffe-source.py: the rewrites that read arguments and names ----------
# Each snippet is written here in the shape of the failing pattern (not copied from a tree).

MIXED_MAX = """template <typename Dtype>
void Loss<Dtype>::Forward() {
  Dtype dist = std::max(margin - sqrt(d[i]), 0.0);
  Dtype tol = std::max(std::max(fabs(a), fabs(b)), 1.);
  double both = std::min(b * 0.1 + 0.2, 1.0);
  Dtype kept = std::max(margin - d[i], Dtype(0.0));
}
"""
IO_PY = """import numpy as np
import skimage.io
from scipy.ndimage import zoom


def load(filename, color=True):
    return skimage.io.imread(filename, as_grey=not color)


def to_datum(arr, datum):
    datum.data = arr.tostring()
    return np.fromstring(datum.data, dtype=np.uint8).reshape(
        datum.channels, datum.height, datum.width)


def resize_image(im, dims):
    return resize(im, dims, order=1, mode="constant")
"""
PY2_SCRIPT = """import sys


def main():
    for row in sys.argv:
        print row
    print
    try:
        pass
    except Exception, e:
        print >>sys.stderr, e
"""


def _fix_tree(tree) -> str:
    done = subprocess.run(["python3", str(paths.DOCKER_DIR / "fix-caffe-source.py"), str(tree)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout


def test_mixed_float_double_max_gets_a_dtype_literal(tmp_path):
    """caffe-fast-rcnn's std::max(margin - sqrt(x), 0.0): GCC 12 finds no max(float, double)."""
    layer = tmp_path / "src" / "caffe" / "layers" / "contrastive_loss_layer.cpp"
    layer.parent.mkdir(parents=True)
    layer.write_text(MIXED_MAX)
    log = _fix_tree(tmp_path)
    text = layer.read_text()
    assert "std::max(margin - sqrt(d[i]), Dtype(0.0))" in text
    assert "std::max(std::max(fabs(a), fabs(b)), Dtype(1.))" in text
    assert "std::min(b * 0.1 + 0.2, 1.0)" in text  # double against double: left alone
    assert "std::max(margin - d[i], Dtype(0.0))" in text
    assert "mixed std::max/std::min in src/caffe/layers/contrastive_loss_layer.cpp" in log
    assert _fix_tree(tmp_path) == ""


def test_pycaffe_io_works_on_todays_numpy_and_scikit_image(tmp_path):
    io_py = tmp_path / "python" / "caffe" / "io.py"
    io_py.parent.mkdir(parents=True)
    io_py.write_text(IO_PY)
    log = _fix_tree(tmp_path)
    text = io_py.read_text()
    assert "imread(filename, as_gray=not color)" in text and "as_grey" not in text
    assert "arr.tobytes()" in text and "tostring" not in text
    assert "np.frombuffer(datum.data, dtype=np.uint8).copy().reshape(" in text
    assert "from scipy.ndimage import zoom\nfrom skimage.transform import resize\n" in text
    for kind in ("scikit-image", "numpy 2", "imports"):
        assert f"caffebox fix ({kind})" in log
    compile(text, "io.py", "exec")
    assert _fix_tree(tmp_path) == ""


def test_a_bound_name_gets_no_import(tmp_path):
    io_py = tmp_path / "python" / "caffe" / "io.py"
    io_py.parent.mkdir(parents=True)
    io_py.write_text("def resize(im, dims):\n    return im\n\n\nx = resize(1, 2)\n")
    assert _fix_tree(tmp_path) == ""


def test_python2_scripts_become_python3(tmp_path):
    script = tmp_path / "tools" / "extra" / "summarize.py"
    script.parent.mkdir(parents=True)
    script.write_text(PY2_SCRIPT)
    log = _fix_tree(tmp_path)
    text = script.read_text()
    compile(text, "summarize.py", "exec")
    assert "        print(row)\n    print()\n" in text
    assert "except Exception as e:" in text and "print(e, file=sys.stderr)" in text
    assert "Python 2 statements in tools/extra/summarize.py" in log
    assert _fix_tree(tmp_path) == ""


def test_python3_code_that_mentions_print_is_left_alone(tmp_path):
    script = tmp_path / "python" / "draw.py"
    script.parent.mkdir(parents=True)
    original = 'print ("spaced call")\nprinter = 1\n'
    script.write_text(original)
    assert _fix_tree(tmp_path) == "" and script.read_text() == original


OLD_MAKEFILE = """LIBRARIES += glog gflags protobuf leveldb snappy \\\\
\tlmdb boost_system hdf5_hl hdf5 m \\\\
\topencv_core opencv_highgui opencv_imgproc
PYTHON_LIBRARIES := boost_python python2.7
"""


def test_an_old_makefile_takes_the_configs_python_and_links_imgcodecs(tmp_path):
    """caffe-fast-rcnn's Makefile (2015) set PYTHON_LIBRARIES := boost_python python2.7 over
    the config's, and linked OpenCV without imgcodecs, where OpenCV 3+ keeps imread."""
    (tmp_path / "Makefile").write_text(OLD_MAKEFILE)
    log = _fix_tree(tmp_path)
    text = (tmp_path / "Makefile").read_text()
    assert "PYTHON_LIBRARIES ?= boost_python python2.7" in text
    assert "opencv_core opencv_highgui opencv_imgcodecs opencv_imgproc" in text
    assert "caffebox fix (Makefile): PYTHON_LIBRARIES ?=" in log and "imgcodecs" in log
    assert _fix_tree(tmp_path) == ""


def test_a_makefile_that_knows_opencv_3_is_left_alone(tmp_path):
    opencv3 = "ifeq ($(OPENCV_VERSION), 3)\n\tLIBRARIES += opencv_imgcodecs\nendif\n"
    text = OLD_MAKEFILE.replace(":=", "?=") + opencv3
    (tmp_path / "Makefile").write_text(text)
    assert _fix_tree(tmp_path) == "" and (tmp_path / "Makefile").read_text() == text


def test_pycaffe_gets_a_mode_getter(tmp_path):
    binding = tmp_path / "python" / "caffe" / "_caffe.cpp"
    binding.parent.mkdir(parents=True)
    binding.write_text("void set_mode_gpu() { Caffe::set_mode(Caffe::GPU); }\n"
                       "BOOST_PYTHON_MODULE(_caffe) {\n"
                       '  bp::def("set_mode_gpu", &set_mode_gpu);\n}\n')
    log = _fix_tree(tmp_path)
    text = binding.read_text()
    assert "int caffebox_mode() { return Caffe::mode(); }" in text
    assert 'bp::def("caffebox_mode", &caffebox_mode);' in text
    assert "caffebox_mode() reads Caffe's mode" in log and _fix_tree(tmp_path) == ""


# BVLC's _caffe.cpp before rc3 (2015), as a snippet: numpy initialised in the void init.
OLD_BINDING = """#include <Python.h>
#include <boost/python.hpp>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
BOOST_PYTHON_MODULE(_caffe) {
  import_array();
}
"""


def _compiles(tmp_path, code: str) -> subprocess.CompletedProcess:
    import sysconfig

    import numpy

    source = tmp_path / "binding.cpp"
    source.write_text(code)
    return subprocess.run(
        ["g++", "-fsyntax-only", f"-I{sysconfig.get_paths()['include']}",
         f"-I{numpy.get_include()}", "-include", "stdio.h", str(source)],
        capture_output=True, text=True,
    )  # fmt: skip


def test_a_void_module_init_gets_import_array1(tmp_path):
    """BVLC rc2's binding: under Python 3 import_array() returns NULL from a void function,
    an error for GCC; import_array1() returns nothing. Compiled against this Python's and
    numpy's headers, before and after (boost's header stands in as an empty macro)."""
    code = OLD_BINDING.replace("#include <boost/python.hpp>",
                               "#define BOOST_PYTHON_MODULE(name) void init_##name()")  # fmt: skip
    before = _compiles(tmp_path, code)
    assert before.returncode != 0 and "return-statement with a value" in before.stderr
    binding = tmp_path / "tree" / "python" / "caffe" / "_caffe.cpp"
    binding.parent.mkdir(parents=True)
    binding.write_text(code)
    log = _fix_tree(tmp_path / "tree")
    assert "import_array1() in the void module init" in log
    after = _compiles(tmp_path, binding.read_text())
    assert after.returncode == 0, after.stderr
    assert _fix_tree(tmp_path / "tree") == ""
    other = tmp_path / "other" / "python" / "caffe" / "_caffe.cpp"  # not a module init: kept
    other.parent.mkdir(parents=True)
    other.write_text("void* init_numpy() { import_array(); return NULL; }\n")
    assert _fix_tree(tmp_path / "other") == ""


CUDNN_V3_HPP = """inline void createPoolingDesc(cudnnPoolingDescriptor_t* pool_desc,
    cudnnPoolingMode_t* mode, int h, int w, int pad_h, int pad_w, int stride_h, int stride_w) {
  CUDNN_CHECK(cudnnSetPooling2dDescriptor(*pool_desc, *mode, h, w,
        pad_h, pad_w, stride_h, stride_w));
}
"""


def _cudnn_tree(tmp_path, hpp: str, config: str):
    (tmp_path / "include" / "caffe" / "util").mkdir(parents=True)
    (tmp_path / "include" / "caffe" / "util" / "cudnn.hpp").write_text(hpp)
    (tmp_path / "Makefile.config").write_text(config)
    return _fix_tree(tmp_path), (tmp_path / "Makefile.config").read_text()


def test_cudnn_code_older_than_cudnn_5_builds_without_cudnn(tmp_path):
    """caffe-fast-rcnn's cuDNN code (cuDNN v3's API: no NaN option in the pooling
    descriptor, among others) does not compile against cuDNN 9: Caffe's own CUDA
    convolution instead, said in the build log."""
    gpu = "CUDA_DIR := /usr/local/cuda\nUSE_CUDNN := 1\n"
    log, config = _cudnn_tree(tmp_path, CUDNN_V3_HPP, gpu)
    assert config == gpu.replace(":= 1", ":= 0")
    assert "caffebox adapts (cuDNN): this tree's cuDNN code predates cuDNN 5" in log
    assert _fix_tree(tmp_path) == ""


def test_cudnn_5_code_and_cpu_builds_keep_their_config(tmp_path):
    v5 = CUDNN_V3_HPP.replace("*mode, h, w", "*mode, CUDNN_PROPAGATE_NAN, h, w")
    assert _cudnn_tree(tmp_path / "v5", v5, "USE_CUDNN := 1\n") == ("", "USE_CUDNN := 1\n")
    cpu = "# USE_CUDNN := 1\nCPU_ONLY := 1\n"
    assert _cudnn_tree(tmp_path / "cpu", CUDNN_V3_HPP, cpu) == ("", cpu)


OLD_CLASSIFIER = """import numpy as np


class Classifier:
    def predict(self, inputs, oversample=True):
        if oversample:
            pass
        else:
            center = np.array(self.image_dims) / 2.0
            crop = np.tile(center, (1, 2))[0] + np.concatenate([
                -self.crop_dims / 2.0,
                self.crop_dims / 2.0
            ])
            input_ = input_[:, crop[0]:crop[2], crop[1]:crop[3], :]
        return input_
"""


def test_float_crop_indices_become_integers(tmp_path):
    """pycaffe's classifier.py before 2016 sliced with floats: numpy 1.12+ refuses them, so
    caffe.Classifier(...).predict failed on caffe-fast-rcnn's tree."""
    path = tmp_path / "python" / "caffe" / "classifier.py"
    path.parent.mkdir(parents=True)
    path.write_text(OLD_CLASSIFIER)
    log = _fix_tree(tmp_path)
    text = path.read_text()
    fixed = "            ])\n            crop = crop.astype(int)\n            input_ = input_["
    assert fixed in text
    assert "integer crop indices" in log and _fix_tree(tmp_path) == ""


OLD_PYCAFFE = """def _Net_forward_all(self, **kwargs):
    for in_, blob in kwargs.iteritems():
        pass
    pad = len(all_outs.itervalues().next()) - len(kwargs.itervalues().next())
    return pad


def _Net_batch(self, blobs):
    num = len(blobs.itervalues().next())
    batch_size = self.blobs.itervalues().next().num
    num_batches = num / batch_size
    half = num / 2.0
    for b in xrange(num_batches):
        yield b
    for b in range(num_batches):
        yield b
"""


def test_python2_idioms_that_compile_but_fail_when_called(tmp_path):
    """caffe-fast-rcnn's pycaffe (Python 2 only): Classifier.predict died on
    dict.itervalues(), then on range() of a float from Python 2's integer division."""
    path = tmp_path / "python" / "caffe" / "pycaffe.py"
    path.parent.mkdir(parents=True)
    path.write_text(OLD_PYCAFFE)
    log = _fix_tree(tmp_path)
    text = path.read_text()
    assert "for in_, blob in kwargs.items():" in text
    assert "pad = len(next(iter(all_outs.values()))) - len(next(iter(kwargs.values())))" in text
    assert "batch_size = next(iter(self.blobs.values())).num" in text
    assert "num_batches = num // batch_size" in text and "half = num / 2.0" in text
    assert "for b in range(num_batches):" in text and "xrange" not in text
    assert "integer division feeds range()" in log and _fix_tree(tmp_path) == ""


OLD_ITERTOOLS = """from itertools import izip_longest, chain, izip


def batches(forward, backward):
    pairs = list(izip_longest(forward, backward, fillvalue={}))
    return pairs, list(izip(forward, backward)), list(chain(forward))


def first_input(blobs, inputs):
    return [blobs.keys()[i] for i in inputs] + [blobs.values()[0]]
"""


def test_python2_itertools_names_import_under_python3(tmp_path):
    """BVLC rc2's pycaffe (2015): `from itertools import izip_longest` stops `import caffe`
    under Python 3 (the names stay, bound to Python 3's), and Net.inputs indexes
    blobs.keys(), a list in Python 2 only. The module then runs."""
    path = tmp_path / "python" / "caffe" / "pycaffe.py"
    path.parent.mkdir(parents=True)
    path.write_text(OLD_ITERTOOLS)
    log = _fix_tree(tmp_path)
    assert "for Python 2's iter*(), xrange(), itertools.izip* and indexed keys()" in log
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    assert namespace["batches"]([1, 2], [3]) == ([(1, 3), (2, {})], [(1, 3)], [1, 2])
    assert namespace["first_input"]({"data": 1, "label": 2}, [1]) == ["label", 1]
    assert _fix_tree(tmp_path) == ""


OLD_UNITTEST = """import unittest


class TestCoordMap(unittest.TestCase):
    def test_rect(self):
        self.assertEquals(1, 1)
        self.assertNotEquals(1, 2)
        with self.assertRaisesRegexp(TypeError, "bad"):
            raise TypeError("bad input")
        self.assert_(True)
"""


def test_unittest_aliases_python_3_12_removed(tmp_path):
    """Caffe's own suite (test_coord_map.py, test_net_spec.py) calls assertEquals and
    assertRaisesRegexp, which Python 3.12 removed: 8 of its tests failed on Debian 13."""
    path = tmp_path / "python" / "caffe" / "test" / "test_coord_map.py"
    path.parent.mkdir(parents=True)
    path.write_text(OLD_UNITTEST)
    log = _fix_tree(tmp_path)
    assert "unittest's assertEqual() and others for the removed aliases" in log
    text = path.read_text()
    assert "assertEquals" not in text and "self.assertEqual(1, 1)" in text
    assert "self.assertRaisesRegex(TypeError" in text and "self.assertTrue(True)" in text
    done = subprocess.run([sys.executable, "-m", "unittest", "-q", str(path)],
                          capture_output=True, text=True, cwd=path.parent)  # fmt: skip
    assert done.returncode == 0 and "Ran 1 test" in done.stderr, done.stderr
    assert _fix_tree(tmp_path) == ""


def test_a_packages_own_module_imported_the_python_2_way(tmp_path):
    """BVLC rc2's python/caffe/__init__.py says `import io`, meaning caffe/io.py: Python 3
    takes the standard library's io, and caffe.io.load_image is missing. A module without
    a sibling of its name (numpy, os) and modules other than __init__.py are left alone."""
    package = tmp_path / "python" / "caffe"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from .pycaffe import Net\nimport io\nimport os\n")
    (package / "pycaffe.py").write_text("Net = 1\n")
    (package / "io.py").write_text("import numpy\n\n\ndef load_image():\n    return 'caffe'\n")
    (package / "draw.py").write_text("import io\n")
    log = _fix_tree(tmp_path)
    assert "implicit relative imports in python/caffe/__init__.py" in log
    assert (package / "__init__.py").read_text() == (
        "from .pycaffe import Net\nfrom . import io\nimport os\n")
    assert (package / "draw.py").read_text() == "import io\n"
    done = subprocess.run([sys.executable, "-c", "import caffe; print(caffe.io.load_image())"],
                          cwd=tmp_path / "python", capture_output=True, text=True)  # fmt: skip
    assert done.stdout.strip() == "caffe", done.stderr
    assert _fix_tree(tmp_path) == ""


# A Python layer's setup as a 2015 fork assigns it (one name), as BVLC later does (the
# other), and as BVLC before rc3 (none, self_ a bare PyObject*): snippets written here.
LAYER_HPP = """class PythonLayer : public Layer<Dtype> {
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
    self_.attr("NAME") = bp::str(
        this->layer_param_.python_param().param_str());
    self_.attr("setup")(bottom, top);
  }
};
"""
OLD_LAYER_HPP = """class PythonLayer : public Layer<Dtype> {
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
    try {
      bp::call_method<bp::object>(self_, "setup", bottom, top);
    } catch (bp::error_already_set) {
    }
  }
};
"""
OLD_PROTO = """message PythonParameter {
  optional string module = 1;
  optional string layer = 2;
}
"""


def _layer_tree(tmp_path, header: str, proto: str = ""):
    hpp = tmp_path / "include" / "caffe" / "layers" / "python_layer.hpp"
    hpp.parent.mkdir(parents=True)
    hpp.write_text(header)
    if proto:
        (tmp_path / "src" / "caffe" / "proto").mkdir(parents=True)
        (tmp_path / "src" / "caffe" / "proto" / "caffe.proto").write_text(proto)
    return hpp


def test_python_layers_get_both_param_str_names(tmp_path):
    for given, added in (("param_str", "param_str_"), ("param_str_", "param_str")):
        tree = tmp_path / given
        hpp = _layer_tree(tree, LAYER_HPP.replace("NAME", given))
        log = _fix_tree(tree)
        text = hpp.read_text()
        assert f'self_.attr("{given}") = bp::str(' in text
        assert f'self_.attr("{added}") = bp::str(' in text
        assert text.index(f'attr("{added}")') < text.index('attr("setup")')
        assert "both param_str and param_str_" in log and _fix_tree(tree) == ""


def test_a_tree_before_rc3_gets_the_param_str_field_and_both_names(tmp_path):
    hpp = _layer_tree(tmp_path, OLD_LAYER_HPP, OLD_PROTO)
    log = _fix_tree(tmp_path)
    proto = (tmp_path / "src" / "caffe" / "proto" / "caffe.proto").read_text()
    assert "optional string param_str = 3 [default = ''];\n}" in proto
    text = hpp.read_text()
    assert "caffebox_self(bp::handle<>(bp::borrowed(self_)))" in text
    for name in ("param_str", "param_str_"):
        assert f'caffebox_self.attr("{name}") = bp::str(' in text
    assert text.index("caffebox_self.attr") < text.index('"setup"')
    assert "PythonParameter gains param_str" in log and _fix_tree(tmp_path) == ""


def test_an_uninitialised_python_thread_state_starts_as_null(tmp_path):
    """TSN's 2017 Caffe: the CPU_ONLY constructor leaves py_tstate_ unset; GetPythonLayer
    then skips Py_Initialize and dies in PyGILState_Ensure (exit 139 on Debian 13)."""
    tree, cuda = _tree(tmp_path, "    int clockRate;\n    int deviceOverlap;\n")
    header = tree / "include" / "caffe" / "common.hpp"
    header.parent.mkdir(parents=True)
    header.write_text("class Caffe {\n#ifdef WITH_PYTHON_LAYER\n  PyThreadState* py_tstate_;\n"
                      "#endif\n  int mode_;\n};\n")  # fmt: skip
    log = _fix(tree, cuda)
    assert "  PyThreadState* py_tstate_ = NULL;\n" in header.read_text()
    assert "py_tstate_ starts as NULL in every constructor in include/caffe/common.hpp" in log
    assert _fix(tree, cuda) == ""  # once


# A layer as forks declare them: both GPU passes in the header, no .cu defining them.
TOY_HEADER = """#include <vector>
namespace caffe {
using std::vector;
template <typename Dtype> class Blob;
template <typename Dtype> class ToyLayer {
 public:
  void Forward_cpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);
  void Backward_cpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                    const vector<Blob<Dtype>*>& bottom);
  void Forward_gpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);
  void Backward_gpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                    const vector<Blob<Dtype>*>& bottom);
};
}  // namespace caffe
"""
TOY_LIB = """#include "caffe/layers/toy_layer.hpp"
void use() {
  caffe::ToyLayer<float> f; f.Forward_gpu({}, {});
  caffe::ToyLayer<double> d; d.Backward_gpu({}, {}, {});
}
"""


def test_gpu_passes_a_tree_never_defines_run_the_cpu_pass(tmp_path):
    """build-caffe reads the GPU passes a linked libcaffe lacks and writes them as calls of
    the CPU pass: exactly those (float's forward, double's backward here), and they compile."""
    (tmp_path / "include/caffe/layers").mkdir(parents=True)
    (tmp_path / "include/caffe/layers/toy_layer.hpp").write_text(TOY_HEADER)
    (tmp_path / "src/caffe/layers").mkdir(parents=True)
    (tmp_path / "lib.cpp").write_text(TOY_LIB)
    (tmp_path / "build/lib").mkdir(parents=True)
    subprocess.run(["g++", "-shared", "-fPIC", "-Iinclude", "-o", "build/lib/libcaffe.so",
                    "lib.cpp"], cwd=tmp_path, check=True)  # fmt: skip
    function = ("source <(sed -n '/^CPU_FALLBACKS=/,/^gpu_build()/p' \"$0\"); "
                "log() { echo \"$*\"; }; BUILD=build; write_cpu_fallbacks")
    done = subprocess.run(["bash", "-c", function, str(paths.DOCKER_DIR / "build-caffe.sh")],
                          cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "caffebox adapts: ToyLayer declare GPU passes" in done.stdout
    written = (tmp_path / "src/caffe/layers/caffebox_cpu_fallbacks.cpp").read_text()
    assert '#include "caffe/layers/toy_layer.hpp"' in written
    assert "this->Forward_cpu(bottom, top);" in written
    assert "this->Backward_cpu(top, propagate_down, bottom);" in written
    instantiated = [line.split("::")[0] for line in written.splitlines()
                    if line.startswith("template void")]  # fmt: skip
    assert instantiated == ["template void ToyLayer<double>", "template void ToyLayer<float>"]
    fallbacks = "src/caffe/layers/caffebox_cpu_fallbacks.cpp"
    subprocess.run(["g++", "-c", "-Iinclude", "-o", "fallbacks.o", fallbacks], cwd=tmp_path,
                   check=True)  # fmt: skip
    symbols = subprocess.run(["nm", "-C", "fallbacks.o"], cwd=tmp_path, capture_output=True,
                             text=True).stdout  # fmt: skip
    assert " W caffe::ToyLayer<float>::Forward_gpu(" in symbols, symbols
    assert " W caffe::ToyLayer<double>::Backward_gpu(" in symbols, symbols
    # A library that lacks none: nothing written.
    (tmp_path / "src/caffe/layers/caffebox_cpu_fallbacks.cpp").unlink()
    subprocess.run(["g++", "-shared", "-fPIC", "-o", "build/lib/libcaffe.so", "-x", "c++",
                    "/dev/null"], cwd=tmp_path, check=True)  # fmt: skip
    done = subprocess.run(["bash", "-c", function, str(paths.DOCKER_DIR / "build-caffe.sh")],
                          cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0 and done.stdout == "", done.stdout
    assert not list((tmp_path / "src/caffe/layers").glob("caffebox_*"))
