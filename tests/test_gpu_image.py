"""The default gpu image builds offline and does what can be checked without a GPU.

No registry, no GitHub and no GPU here. The image is the one a user's `caffebox build-gpu`
makes: on caffebox's CUDA 12 base on Debian 13 (Debian's CUDA 12.4, cuDNN 9 and NCCL from
NVIDIA's PyPI wheels), made by the build itself when missing, for sm_90 alone (one
architecture keeps CI's time down). The source is the PyPI tree brocolli-caffe, whose GPU
code lacks some of its own layers' Forward_gpu/Backward_gpu: the build gives those their
CPU pass, so its tools link. Checked here: the build stage compiled cuDNN code; every
library of the runtime image resolves; CuPy imports and finds NVRTC; `caffe device_query`
without a driver ends with one caffebox paragraph; the gpu image has the cpu image's Python,
numpy and wheels. Running on a GPU is for a lent GPU machine (benchmarks/gpu_host.sh).
"""

from __future__ import annotations

import io
import json
import os
import re

import pytest
from invoke import Config

from caffebox import building, images, project
from caffebox.settings import DEFAULTS

from .conftest import GPU_ARCH, GPU_TEST_IMAGE
from .support.cli import caffebox, invoke
from .support.containers import TrackedContainer

pytestmark = pytest.mark.image
GPU_BUILD_STAGE = "caffebox:gpu-test-build"
GPU_OPTIONS = {"tag": GPU_TEST_IMAGE, "cuda_arch": GPU_ARCH}


@pytest.fixture(scope="session")
def gpu_build_stage(request, engine, gpu_image, caffe_src) -> str:
    """The build stage of gpu_image's build (objects, Makefile.config, the toolchain), taken
    from the engine's cache: the same request built to its build target compiles nothing."""
    if request.config.getoption("--caffebox-gpu-image"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI builds the gpu image: no --caffebox-gpu-image there")
        pytest.skip("an image was given: its build stage is not on this engine")
    settings = Config(defaults=DEFAULTS).caffebox
    made = building.request(settings, "gpu", building.BuildOptions(caffe_src=caffe_src,
                                                                   **GPU_OPTIONS))  # fmt: skip
    log = io.StringIO()
    images.stream_build(
        engine, images.build_context(made), tag=GPU_BUILD_STAGE, target="build",
        buildargs=made.buildargs(), nocache=False, out=log,
    )  # fmt: skip
    assert "==> caffebox: building with" not in log.getvalue(), "the build stage compiled again"
    return GPU_BUILD_STAGE


def _run(engine, image: str, script: str, network_mode: str = "none") -> str:
    tracked = TrackedContainer(engine, image, network_mode=network_mode)
    try:
        return tracked.run_ok(["sh", "-c", script])
    finally:
        tracked.remove_all()


def test_gpu_variant_compiles_cudnn_code(engine, gpu_build_stage):
    out = _run(
        engine, gpu_build_stage,
        ". /opt/caffe/build-info.env && cd /usr/src/caffe && cd $(make-var BUILD_DIR) &&"
        "echo cuda=$CUDA_VERSION &&"
        "grep -E '^(USE_CUDNN|USE_NCCL|CPU_ONLY) :=' /opt/caffe/Makefile.config &&"
        "ls src/caffe/layers/cudnn_conv_layer.o cuda/src/caffe/layers/cudnn_conv_layer.o &&"
        "find . -name '*.o' | wc -l &&"
        "ldd lib/libcaffe.so | grep -oE 'lib(cudnn|cudart|cublas)[^ ]*' | sort -u &&"
        "grep -c cudaDevAttrClockRate /usr/src/caffe/src/caffe/common.cpp;"
        "nm -D lib/libcaffe.so | grep -c cudnnGetConvolutionForwardAlgorithm_v7",
    )  # fmt: skip
    assert "USE_CUDNN := 1" in out and "USE_NCCL := 1" in out and "CPU_ONLY := \n" in out + "\n"
    major = re.search(r"^cuda=(\d+)\.", out, re.M).group(1)
    lines = out.strip().splitlines()
    assert int(lines[-1]) >= 1, "libcaffe does not call cuDNN's _v7 query: compat header unused"
    if int(major) >= 13:  # CUDA 13 removed the cudaDeviceProp fields device_query prints
        assert int(lines[-2]) >= 1, "CUDA 13's cudaDeviceProp fix did not reach device_query"
    for lib in ("libcudnn.so.9", f"libcudart.so.{major}", f"libcublas.so.{major}"):
        assert lib in out, out
    objects = next(int(x) for x in lines if x.strip().isdigit())
    assert objects > 150, f"only {objects} objects compiled"


def test_layers_without_gpu_code_run_their_cpu_pass(engine, gpu_build_stage):
    """The PyPI tree declares GPU passes it never defines (ReLU6, Upsample, PixelShuffle...):
    the build wrote them as calls of the CPU pass, and libcaffe lacks no symbol of its own."""
    out = _run(
        engine, gpu_build_stage,
        "cd /usr/src/caffe && cat src/caffe/layers/caffebox_cpu_fallbacks.cpp && "
        "echo undefined: $(nm -DC --undefined-only $(make-var BUILD_DIR)/lib/libcaffe.so "
        "| grep -c ' caffe::')",
    )  # fmt: skip
    assert "void ReLU6Layer<Dtype>::Forward_gpu(" in out
    assert "this->Forward_cpu(bottom, top);" in out
    assert "template void UpsampleLayer<float>::Backward_gpu(" in out, out
    assert "undefined: 0" in out, out


def test_the_runtime_image_resolves_every_library(engine, gpu_image):
    """Every library of Caffe's tools, libcaffe and pycaffe resolves in the runtime image
    (CUDA's from the runtime base's Debian packages, cuDNN's from its copy of the wheel).
    (No NCCL here: the PyPI tree never calls it, and --as-needed drops it.)"""
    out = _run(
        engine, gpu_image,
        "ldd /opt/caffe/bin/* /opt/caffe/lib/libcaffe*.so /opt/caffe/python/caffe/_caffe*.so "
        "2>/dev/null | grep -oE 'not found|lib(cudart|cublas|cudnn|curand)[^ ]*' | sort -u",
    )  # fmt: skip
    assert "not found" not in out, out
    for lib in ("libcudart.so.12", "libcublas.so.12", "libcudnn.so.9", "libcurand.so.10"):
        assert lib in out.split(), out


def test_cupy_imports_and_finds_nvrtc(engine, gpu_image):
    """caffebox_layers.gpu's zero-copy path: the CuPy for the image's CUDA and numpy (14.2
    beside numpy 2), and NVRTC, which CuPy compiles its kernels with, found without a GPU."""
    out = _run(
        engine, gpu_image,
        "python3 -c 'import cupy, numpy; from cupy_backends.cuda.libs import nvrtc; "
        "print(cupy.__version__, numpy.__version__, *nvrtc.getVersion())'",
    )  # fmt: skip
    cupy, numpy, major, minor = out.split()[-4:]
    assert cupy.startswith("14.2.") and numpy.startswith("2."), out
    assert (major, minor) == ("12", "4"), f"NVRTC {major}.{minor}: not the image's CUDA 12.4"


def test_device_query_without_a_driver_is_one_paragraph(tmp_path, engine, gpu_image):
    before = {c.id for c in engine.containers.list(all=True)}
    done = caffebox("run", "--image", gpu_image, "--", "caffe", "device_query", "-gpu", "0",
                    cwd=tmp_path)  # fmt: skip
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("caffebox: caffe exited with"), done.stderr[-2000:]
    assert "needs an NVIDIA driver R525 or newer" in last and "CUDA 12.4" in last, last
    assert "Traceback" not in done.stderr
    assert {c.id for c in engine.containers.list(all=True)} == before


VERSIONS = """import json, platform, numpy, scipy, skimage, PIL, google.protobuf, caffebox_layers
import hashlib, pathlib
layers = hashlib.sha256()
for path in sorted(pathlib.Path(caffebox_layers.__file__).parent.rglob('*.py')):
    layers.update(path.read_bytes())
print(json.dumps({'python': platform.python_version(), 'numpy': numpy.__version__,
    'scipy': scipy.__version__, 'scikit-image': skimage.__version__, 'pillow': PIL.__version__,
    'protobuf': google.protobuf.__version__, 'caffebox_layers': layers.hexdigest()}))
"""


def test_the_gpu_image_has_the_cpu_images_python_and_packages(engine, image, gpu_image):
    """A layer checked on the cpu image meets the same Python, numpy and wheels on the GPU."""
    cpu, gpu = (json.loads(_run(engine, i, f"python3 -c \"{VERSIONS}\"").splitlines()[-1])
                for i in (image, gpu_image))  # fmt: skip
    assert gpu == cpu, {k: (cpu[k], gpu[k]) for k in cpu if cpu[k] != gpu.get(k)}
    labels = engine.images.get(gpu_image).labels
    assert labels["io.caffebox.python.version"] == cpu["python"]
    assert labels["io.caffebox.numpy.version"] == cpu["numpy"]


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


def test_build_stage_installs_the_opencv_packages_a_link_needs(engine, gpu_build_stage):
    """prepare-caffe unpacks OpenCV's modules without their dependencies; build-caffe
    installs the packages of those libcaffe calls, and when a tool's link needs another
    (here highgui, whose Qt is then missing) installs the rest and links again."""
    # The full build installed highgui and its Qt (the PyPI tree's tools call it): Qt out,
    # highgui's files unpacked without it, as prepare-caffe leaves a tree's modules.
    undo = ("apt-get purge -y -qq $(dpkg-query -W -f '${Package}\\n' 'libqt5core5*') "
            ">/dev/null 2>&1; cd /tmp && apt-fresh download -qq libopencv-highgui410 "
            "libopencv-highgui-dev && for d in /tmp/*.deb; do dpkg -x $d /; done && ")
    out = _run(engine, gpu_build_stage, undo + "rm -rf /usr/src/caffe && " + _TREE,
               network_mode="host")
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


def test_a_projects_cuda_extension_compiles_through_caffebox_toml(engine, gpu_image,
                                                                  open_dir):  # fmt: skip
    """`nvcc = true` in caffebox.toml: the project image gains the CUDA toolkit of the gpu
    image's build base (its `io.caffebox.build.base` label), and `caffebox run` builds a
    project's .cu for sm_90 without a GPU, as the user, into the project's folder: a shared
    library exporting its entry point and a cubin whose ELF header says SM 90 (CUDA 12's
    cubins keep the SM in e_flags' low byte, CUDA 13's in its second: 0x6005a04 for sm_90).
    On the default CUDA 12 base (Debian's CUDA) the project image installs Debian's
    nvidia-cuda-toolkit of the same release; on CUDA 13's it copies the toolkit."""
    (open_dir / "caffebox.toml").write_text("[image]\nnvcc = true\n")
    (open_dir / "toy.cu").write_text(TOY_CU)
    script = (
        "nvcc -arch=sm_90 -Xcompiler -fPIC -shared -o libtoy.so toy.cu -lcudart && "
        "nvcc -arch=sm_90 -cubin -o toy.cubin toy.cu && "
        "nm -D libtoy.so | grep -c ' T toy_overlap_mask' && "
        "python3 -c \"import struct; d = open('toy.cubin', 'rb').read(); "
        "f = struct.unpack_from('<I', d, 48)[0]; "
        "print('elf', d[:4] == b'\\x7fELF', 'sm', 90 in (f & 0xff, f >> 8 & 0xff))\""
    )
    env = {**os.environ, "INVOKE_CAFFEBOX_IMAGE": gpu_image}
    try:
        done = caffebox("run", "--", "sh", "-c", script, cwd=open_dir, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert f"building the project image {gpu_image}-project-" in done.stdout
        assert "elf True sm True" in done.stdout, done.stdout[-2000:]
        assert (open_dir / "libtoy.so").stat().st_uid == os.getuid()
    finally:
        for made in engine.images.list(filters={"label": project.HASH_LABEL}):
            if any(t.startswith(f"{gpu_image}-project-") for t in made.tags):
                engine.images.remove(made.id, force=True)
