"""The gpu variant compiles offline, cuDNN and NCCL included, and refuses GPUs it cannot have.

No registry and no GPU here: the build base is `invoke cuda-base` (Debian's CUDA 11.8,
cuDNN 9 and NCCL from PyPI), compiled for sm_80 and sm_90 to keep CI's time. Running
on a GPU is checked on a lent GPU machine, not here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT, invoke

pytestmark = pytest.mark.image
GPU_TEST_IMAGE = "caffebox:gpu-test"
# Sources whose tree has no NCCL code at all (no caffe::NCCL, no USE_NCCL in the Makefile):
# USE_NCCL := 1 cannot show there. BVLC master has it.
FORKS_WITHOUT_NCCL = ("brocolli-caffe",)
CUDA_BASE = "caffebox/cuda-offline:11.8"


@pytest.fixture(scope="session")
def gpu_image(request, engine, caffe_src) -> str:
    given = request.config.getoption("--caffebox-gpu-image")
    if given:
        return given
    for args in (
        ["base-image"],
        ["cuda-base", "--tag", CUDA_BASE],
        ["build-gpu", "--caffe-src", caffe_src, "--tag", GPU_TEST_IMAGE, "--base-image",
         CUDA_BASE, "--runtime-image", CUDA_BASE, "--cuda-arch", "80,90"],
    ):  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT)
        assert done.returncode == 0, f"invoke {' '.join(args)} failed (log above)"
    return GPU_TEST_IMAGE


def _run(engine, image: str, script: str) -> str:
    from caffebox.runs import RUN_LABEL

    container = engine.containers.create(
        image, ["sh", "-c", script], network_mode="none", labels={RUN_LABEL: "1"}
    )
    try:
        container.start()
        code = container.wait()["StatusCode"]
        out = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert code == 0, out
    return out


def test_gpu_image_compiled_cudnn_and_nccl(engine, gpu_image):
    labels = engine.images.get(gpu_image).labels
    assert labels["io.caffebox.variant"] == "gpu"
    out = _run(
        engine, gpu_image,
        "grep -E '^(USE_CUDNN|USE_NCCL|CPU_ONLY) :=' /opt/caffe/Makefile.config;"
        "ldd /opt/caffe/lib/libcaffe.so | grep -oE 'lib(cudnn|nccl|cudart|cublas)[^ ]*' | sort -u;"
        "python3 -c 'import caffe; print(\"Python\", \"Python\" in caffe.layer_type_list())';"
        "nm -DC /opt/caffe/lib/libcaffe.so | grep -c 'caffe::NCCL<float>::';"
        "nm -DC /opt/caffe/lib/libcaffe.so | grep -c 'CuDNNConvolutionLayer<float>::Reshape'",
    )  # fmt: skip
    assert "USE_CUDNN := 1" in out and "USE_NCCL := 1" in out
    for lib in ("libcudnn", "libcudart", "libcublas"):
        assert lib in out, out
    assert "Python True" in out
    nccl_symbols, cudnn_symbols = (int(n) for n in out.strip().splitlines()[-2:])
    assert cudnn_symbols >= 1, "the cuDNN convolution layer is missing from libcaffe"
    source = labels.get("org.opencontainers.image.source", "")
    if not any(fork in source for fork in FORKS_WITHOUT_NCCL):
        assert "libnccl" in out and nccl_symbols >= 1, "NCCL support is missing from libcaffe"


def test_gpu_request_without_nvidia_runtime_is_refused_before_any_container(
    tmp_path, engine, gpu_image
):
    if "nvidia" in (engine.info().get("Runtimes") or {}):
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
