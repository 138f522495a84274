"""docker/fix-caffe-source.sh on small trees: each fix fires on the old code, and only there."""

import subprocess

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
