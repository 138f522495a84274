"""The gpu variant compiles offline, cuDNN code included, and refuses GPUs it cannot have.

No registry, no GitHub and no GPU here: the build base is `invoke cuda-base --cuda 13`
(CUDA 13.0, cuDNN 9 and NCCL, all from NVIDIA's PyPI wheels: the newest toolchain, so the
CUDA 13 fixes are compiled for real) and the source is the PyPI tree brocolli-caffe, whose
GPU code lacks some layers' Forward_gpu/Backward_gpu, so its tools cannot link as a GPU
build. The check therefore compiles every object, libcaffe and pycaffe (`build-gpu
--compile-only`, the build stage) for sm_90 alone (one architecture keeps CI's time
down). Running on a GPU is for a lent GPU machine.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from caffebox import project

from .support.cli import ROOT, caffebox, invoke
from .support.containers import TrackedContainer

pytestmark = pytest.mark.image
GPU_TEST_IMAGE = "caffebox:gpu-test-build"


@pytest.fixture(scope="session")
def gpu_image(request, engine, caffe_src) -> str:
    given = request.config.getoption("--caffebox-gpu-image")
    if given:
        return given
    base = request.getfixturevalue("cuda_base")
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "build-gpu", "--caffe-src", caffe_src, "--tag",
         GPU_TEST_IMAGE, "--base-image", base, "--runtime-image", f"{base}-runtime",
         "--cuda-arch", "90", "--compile-only"],
        cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, "invoke build-gpu failed (log above)"
    return GPU_TEST_IMAGE


def _run(engine, image: str, script: str, network_mode: str = "none") -> str:
    tracked = TrackedContainer(engine, image, network_mode=network_mode)
    try:
        return tracked.run_ok(["sh", "-c", script])
    finally:
        tracked.remove_all()


def test_gpu_variant_compiles_cudnn_code(engine, gpu_image):
    out = _run(
        engine, gpu_image,
        ". /opt/caffe/build-info.env && cd $CAFFE_BUILD_DIR &&"
        "grep -E '^(USE_CUDNN|USE_NCCL|CPU_ONLY) :=' /opt/caffe/Makefile.config &&"
        "ls src/caffe/layers/cudnn_conv_layer.o cuda/src/caffe/layers/cudnn_conv_layer.o &&"
        "find . -name '*.o' | wc -l &&"
        "ldd lib/libcaffe.so | grep -oE 'lib(cudnn|cudart|cublas)[^ ]*' | sort -u &&"
        "grep -c cudaDevAttrClockRate /usr/src/caffe/src/caffe/common.cpp &&"
        "nm -D lib/libcaffe.so | grep -c cudnnGetConvolutionForwardAlgorithm_v7",
    )  # fmt: skip
    assert "USE_CUDNN := 1" in out and "USE_NCCL := 1" in out and "CPU_ONLY := \n" in out + "\n"
    lines = out.strip().splitlines()
    assert int(lines[-1]) >= 1, "libcaffe does not call cuDNN's _v7 query: compat header unused"
    assert int(lines[-2]) >= 1, "CUDA 13's cudaDeviceProp fix did not reach device_query"
    for lib in ("libcudnn.so.9", "libcudart.so.13", "libcublas.so.13"):
        assert lib in out, out
    objects = next(int(x) for x in lines if x.strip().isdigit())
    assert objects > 150, f"only {objects} objects compiled"


def test_cupy_and_nvrtc_in_the_cuda13_build(engine, gpu_image):
    """caffebox_layers.gpu's zero-copy path: the CuPy for the base's numpy in pydeps (14.2
    on Debian 13's numpy 2, 13.6 on Debian 12's numpy 1.x), NVRTC (CuPy compiles its
    kernels with it) in the CUDA 13 base, the pycaffe binding that says Caffe's mode. (The
    CUDA 13 image once had no CuPy: the numpy fallback ran.)"""
    out = _run(
        engine, gpu_image,
        "PYTHONPATH=/opt/caffe/pydeps python3 -c 'import cupy, numpy; "
        "print(cupy.__version__, numpy.__version__)' && ls /usr/local/cuda/lib64/ && "
        "grep -c caffebox_mode /usr/src/caffe/python/caffe/_caffe.cpp",
    )  # fmt: skip
    lines = out.strip().splitlines()
    cupy, numpy = lines[0].split()
    pairs = {("14.2", "2"), ("13.6", "1")}  # CuPy for the numpy major it runs beside
    assert (cupy.rsplit(".", 1)[0], numpy.split(".")[0]) in pairs, out
    assert "libnvrtc.so.13" in out and "libnvrtc-builtins.so.13.0" in out, out
    assert int(lines[-1]) >= 2, "pycaffe's binding has no caffebox_mode()"


# A stand-in Caffe tree: libcaffe calls imgcodecs only, a tool calls highgui itself.
_TREE = r"""
mkdir -p /usr/src/caffe/tools && cd /usr/src/caffe
cat > Makefile <<'M'
.PHONY: lib all pycaffe
BUILD_DIR := build
CUDA_DIR :=
LIBS := -I/usr/include/opencv4 -Wl,--as-needed -lopencv_core -lopencv_imgcodecs -lopencv_highgui
lib:
	mkdir -p build/lib && g++ -shared -fPIC -o build/lib/libcaffe.so lib.cpp $(LIBS)
all: lib
	mkdir -p build/tools && g++ -o build/tools/show.bin tools/show.cpp -Lbuild/lib -lcaffe \
		$(LIBS) -Wl,-rpath,'$$ORIGIN/../lib'
pycaffe:
	mkdir -p python/caffe && touch python/caffe/__init__.py
M
cat > lib.cpp <<'C'
#include <opencv2/imgcodecs.hpp>
int caffe_read(const char* p) { return cv::imread(p).empty(); }
C
cat > tools/show.cpp <<'C'
#include <opencv2/highgui.hpp>
int caffe_read(const char*);
int main(int c, char** v) { if (c > 9) cv::imshow("x", cv::Mat()); return caffe_read(v[0]); }
C
echo libopencv-highgui-dev > /tmp/caffebox/opencv-packages
build-caffe 2>&1 | grep -E '^==> caffebox' && ldd /opt/caffe/bin/show
"""


def test_build_stage_installs_the_opencv_packages_a_link_needs(engine, gpu_image):
    """prepare-caffe unpacks OpenCV's modules without their dependencies; build-caffe
    installs the packages of those libcaffe calls, and when a tool's link needs another
    (here highgui, whose Qt is then missing) installs the rest and links again."""
    out = _run(engine, gpu_image, "rm -rf /usr/src/caffe && " + _TREE, network_mode="host")
    first = next(line for line in out.splitlines() if "installing the OpenCV packages" in line)
    assert "imgcodecs" in first and "highgui" not in first, first  # what libcaffe calls
    assert "a link needs more of OpenCV than libcaffe calls" in out, out
    assert "linking again" in out, out
    assert re.search(r"libopencv_highgui\.so\.\d+ =>", out) and "not found" not in out, out


def test_gpu_request_without_nvidia_runtime_is_refused_before_any_container(
    tmp_path, engine, gpu_image
):
    if "nvidia" in (engine.info().get("Runtimes") or {}):
        # Under CI no image test skips: there, the refusal must be shown on this engine.
        if os.environ.get("CI") == "true":
            pytest.fail("CI's engine has an NVIDIA runtime: run this test where it has none")
        pytest.skip("this engine has an NVIDIA runtime; the refusal cannot be shown here")
    (tmp_path / "net.prototxt").write_text('layer { name: "x" type: "Input" top: "x" }\n')
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt"\nmax_iter: 1\n')
    before = {c.id for c in engine.containers.list(all=True)}
    done = invoke("train", "solver.prototxt", "--gpu", "0", "--image", gpu_image, cwd=tmp_path)
    assert done.returncode == 2
    assert "no NVIDIA runtime" in done.stderr
    assert {c.id for c in engine.containers.list(all=True)} == before


def test_gpu_on_cpu_image_is_refused(tmp_path, image):
    (tmp_path / "net.prototxt").write_text('layer { name: "x" type: "Input" top: "x" }\n')
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt"\nmax_iter: 1\n')
    done = invoke("train", "solver.prototxt", "--gpu", "0", "--image", image, cwd=tmp_path)
    assert done.returncode == 2
    assert "is the CPU image" in done.stderr


@pytest.mark.parametrize(
    "task",
    [
        ["python", "script.py"],
        ["gradcheck", "caffebox_layers.losses.EuclideanLoss", "--input", "a=2", "--input", "b=2"],
        ["test-layers", "."],
    ],
)
def test_tools_refuse_gpus_they_cannot_have(tmp_path, engine, image, gpu_image, task):
    before = {c.id for c in engine.containers.list(all=True)}
    done = invoke(*task, "--gpu", "0", "--image", image, cwd=tmp_path)
    assert done.returncode == 2 and "is the CPU image" in done.stderr, done.stderr
    if "nvidia" not in (engine.info().get("Runtimes") or {}):
        done = invoke(*task, "--gpu", "0", "--image", gpu_image, cwd=tmp_path)
        assert done.returncode == 2 and "no NVIDIA runtime" in done.stderr, done.stderr
    assert {c.id for c in engine.containers.list(all=True)} == before


def test_gradcheck_checks_on_one_gpu(tmp_path, image):
    done = invoke("gradcheck", "caffebox_layers.losses.EuclideanLoss", "--input", "a=2",
                  "--input", "b=2", "--gpu", "0,1", "--image", image, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and "name one GPU" in done.stderr


# A project's own CUDA code (as py-faster-rcnn's gpu_nms), written here: a kernel marking
# the box pairs that overlap more than a threshold, and a C entry point a Cython or ctypes
# wrapper would call.
TOY_CU = r"""
#include <cuda_runtime.h>
__global__ void overlap_mask(int n, const float* boxes, float thresh, unsigned char* mask) {
  int i = blockIdx.x * blockDim.x + threadIdx.x, j = blockIdx.y * blockDim.y + threadIdx.y;
  if (i >= n || j >= n) return;
  const float *a = boxes + 4 * i, *b = boxes + 4 * j;
  float w = fminf(a[2], b[2]) - fmaxf(a[0], b[0]) + 1;
  float h = fminf(a[3], b[3]) - fmaxf(a[1], b[1]) + 1;
  float inter = (w > 0 && h > 0) ? w * h : 0;
  float sa = (a[2] - a[0] + 1) * (a[3] - a[1] + 1), sb = (b[2] - b[0] + 1) * (b[3] - b[1] + 1);
  mask[i * n + j] = inter / (sa + sb - inter) > thresh;
}
extern "C" int toy_overlap_mask(int n, const float* boxes, float thresh, unsigned char* mask) {
  float* d_boxes; unsigned char* d_mask;
  cudaMalloc(&d_boxes, 16 * n); cudaMalloc(&d_mask, n * n);
  cudaMemcpy(d_boxes, boxes, 16 * n, cudaMemcpyHostToDevice);
  dim3 block(16, 16), grid((n + 15) / 16, (n + 15) / 16);
  overlap_mask<<<grid, block>>>(n, d_boxes, thresh, d_mask);
  cudaMemcpy(mask, d_mask, n * n, cudaMemcpyDeviceToHost);
  cudaFree(d_boxes); cudaFree(d_mask);
  return (int)cudaGetLastError();
}
"""


def test_a_projects_cuda_extension_compiles_through_caffebox_toml(engine, image, cuda_base,
                                                                  open_dir):  # fmt: skip
    """`nvcc = true` in caffebox.toml: the project image gains the CUDA toolkit of the gpu
    image's build base (its `io.caffebox.build.base` label), and `caffebox run` builds a
    project's .cu for sm_90 without a GPU, as the user, into the project's folder: a shared
    library exporting its entry point and a cubin whose ELF header says SM 90 (CUDA 13's
    cubins keep the SM in e_flags' second byte: 0x6005a04 for sm_90, seen here). The gpu
    image is a stand-in: the cpu test image with the labels a gpu image built on the offline
    CUDA base carries (CI compiles the gpu variant but does not build its runtime image)."""
    stand_in = "caffebox:gpu-stand-in-test"
    recipe = (f"FROM {image}\nLABEL {project.CUDA_LABEL}=13.0 "
              f"{project.BUILD_BASE_LABEL}={cuda_base}\n")  # fmt: skip
    engine.images.build(fileobj=io.BytesIO(recipe.encode()), tag=stand_in, rm=True)
    (open_dir / "caffebox.toml").write_text("[image]\nnvcc = true\n")
    (open_dir / "toy.cu").write_text(TOY_CU)
    script = (
        "nvcc -arch=sm_90 -Xcompiler -fPIC -shared -o libtoy.so toy.cu -lcudart && "
        "nvcc -arch=sm_90 -cubin -o toy.cubin toy.cu && "
        "nm -D libtoy.so | grep -c ' T toy_overlap_mask' && "
        "python3 -c \"import struct; d = open('toy.cubin', 'rb').read(); "
        "print('elf', d[:4] == b'\\x7fELF', 'sm', struct.unpack_from('<I', d, 48)[0] >> 8 & 0xff)\""
    )
    env = {**os.environ, "INVOKE_CAFFEBOX_IMAGE": stand_in}
    try:
        done = caffebox("run", "--", "sh", "-c", script, cwd=open_dir, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert f"building the project image {stand_in}-project-" in done.stdout
        assert "elf True sm 90" in done.stdout, done.stdout[-2000:]
        assert (open_dir / "libtoy.so").stat().st_uid == os.getuid()
    finally:
        for made in engine.images.list(filters={"label": project.HASH_LABEL}):
            if any(t.startswith(f"{stand_in}-project-") for t in made.tags):
                engine.images.remove(made.id, force=True)
        engine.images.remove(stand_in, force=True)
