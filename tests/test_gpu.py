"""The gpu variant without a GPU: rendered config, arch lists, device requests, errors."""

import dataclasses
import shutil
import subprocess

import pytest

from caffebox import gpus, makeconfig, runs, training
from caffebox.errors import CaffeboxError
from caffebox.variants import GPU, NVIDIA_BASE_IMAGE, NVIDIA_RUNTIME_IMAGE, parse_cuda_archs

from .support.fakes import FakeEngine
from .support.makeconfig import settings_of as _settings


def test_gpu_config():
    s = _settings(makeconfig.render(GPU))
    assert s["WITH_PYTHON_LAYER"] == "1"
    assert s["CPU_ONLY"] == "" and s["USE_CUDNN"] == "1" and s["USE_NCCL"] == "1"
    assert s["CUDA_DIR"] == "/usr/local/cuda"
    assert "\nCAFFEBOX_CUDA_ARCHS := 60 61 70 75 80 86 89 90 100 120\n" in makeconfig.render(GPU)
    assert s["CAFFEBOX_CUDA_ARCHS_NAMED"] == ""
    assert s["CAFFEBOX_CUDNN_COMPAT"].endswith("cudnn_compat.h")
    assert "NVCCFLAGS += -include $(CAFFEBOX_CUDNN_COMPAT)" in makeconfig.render(GPU)


def _make_cuda_arch(
    tmp_path, variant, nvcc_knows: str, var: str = "CUDA_ARCH"
) -> subprocess.CompletedProcess:
    """`var` (CUDA_ARCH) as Make computes it from the rendered config, with a fake nvcc."""
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    cuda = tmp_path / "cuda"
    (cuda / "bin").mkdir(parents=True, exist_ok=True)
    nvcc = cuda / "bin" / "nvcc"
    nvcc.write_text(f"#!/bin/sh\nfor a in {nvcc_knows}; do echo $a; done\n")
    nvcc.chmod(0o755)
    config = tmp_path / "Makefile.config"
    config.write_text(makeconfig.render(variant))
    (tmp_path / "print.mk").write_text(f"print:\n\t@echo $({var})\n")
    return subprocess.run(
        ["make", "-s", "-f", str(config), "-f", str(tmp_path / "print.mk"), f"CUDA_DIR={cuda}",
         "PYTHON_CMD=true", "print"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip


def _gencode(*archs: int) -> str:
    flags = [f"-gencode arch=compute_{a},code=sm_{a}" for a in archs]
    return " ".join([*flags, f"-gencode arch=compute_{archs[-1]},code=compute_{archs[-1]}"])


def test_default_archs_follow_the_bases_nvcc(tmp_path):
    cuda12_4 = "sm_50 sm_52 sm_60 sm_61 sm_70 sm_75 sm_80 sm_86 sm_89 sm_90"
    out = _make_cuda_arch(tmp_path, GPU, cuda12_4)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == _gencode(60, 61, 70, 75, 80, 86, 89, 90).split()
    cuda13 = "sm_75 sm_80 sm_86 sm_87 sm_88 sm_89 sm_90 sm_100 sm_110 sm_103 sm_120 sm_121"
    out = _make_cuda_arch(tmp_path, GPU, cuda13)
    assert out.stdout.split() == _gencode(75, 80, 86, 89, 90, 100, 120).split()


def test_named_archs_are_kept_or_refused(tmp_path):
    named = dataclasses.replace(GPU, cuda_archs=(90, 80), cuda_archs_named=True)
    out = _make_cuda_arch(tmp_path, named, "sm_75 sm_80 sm_90")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == _gencode(80, 90).split()
    old = dataclasses.replace(GPU, cuda_archs=(60, 90), cuda_archs_named=True)
    out = _make_cuda_arch(tmp_path, old, "sm_75 sm_80 sm_90")
    assert out.returncode != 0
    assert "--cuda-arch named 60, which" in out.stderr and "sm_" not in out.stderr.split("knows")[0]


def test_cuda13_cccl_headers_reach_gxx(tmp_path):
    # CUDA 13 keeps Thrust under include/cccl; Caffe's .cpp files include it through g++.
    out = _make_cuda_arch(tmp_path, GPU, "sm_90", var="INCLUDE_DIRS")
    assert "cccl" not in out.stdout  # CUDA 12 and older: no such folder
    (tmp_path / "cuda" / "include" / "cccl").mkdir(parents=True)
    out = _make_cuda_arch(tmp_path, GPU, "sm_90", var="INCLUDE_DIRS")
    assert f"{tmp_path}/cuda/include/cccl" in out.stdout.split()


def test_default_archs_none_supported_is_an_error(tmp_path):
    out = _make_cuda_arch(tmp_path, GPU, "sm_200")
    assert out.returncode != 0 and "compiles none of the default" in out.stderr


def test_gpu_bases_are_cuda12_on_debian_13_and_nvidias_pair_up():
    assert GPU.base_image == "caffebox/cuda-offline:12-trixie"
    assert GPU.runtime_image == GPU.base_image + "-runtime"
    assert NVIDIA_BASE_IMAGE.startswith("nvidia/cuda:12.") and "cudnn-devel" in NVIDIA_BASE_IMAGE
    assert NVIDIA_RUNTIME_IMAGE == NVIDIA_BASE_IMAGE.replace("cudnn-devel", "cudnn-runtime")


@pytest.mark.parametrize("text", ["80,90", "sm_80 sm_90", "8.0 9.0", "compute_90, sm_80"])
def test_parse_cuda_archs(text):
    assert sorted(parse_cuda_archs(text)) == [80, 90]


def test_cuda_arch_errors():
    with pytest.raises(CaffeboxError, match="'turing' is not a compute capability"):
        parse_cuda_archs("80,turing")


def test_parse_gpus_and_requests():
    assert gpus.parse_gpus("0") == ["0"]
    assert gpus.parse_gpus(" 0, 2 ") == ["0", "2"]
    assert gpus.device_requests(["all"]) == [
        {"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    ]
    [request] = gpus.device_requests(["0", "2"])
    assert request["DeviceIDs"] == ["0", "2"] and request["Capabilities"] == [["gpu"]]
    assert gpus.caffe_gpu_flag(["0", "2"]) == "0,1"  # renumbered inside the container
    assert gpus.caffe_gpu_flag(["all"]) == "all"
    for bad in ("", "a", "0,0", "-1"):
        with pytest.raises(CaffeboxError):
            gpus.parse_gpus(bad)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "py.prototxt").write_text(
        'layer { name: "d" type: "Python" top: "x" python_param { module: "m" layer: "L" } }\n'
    )
    (tmp_path / "plain.prototxt").write_text('layer { name: "d" type: "Input" top: "x" }\n')
    (tmp_path / "py_solver.prototxt").write_text(
        'net: "py.prototxt"\nsolver_mode: GPU\nmax_iter: 10\n'
    )
    (tmp_path / "plain_solver.prototxt").write_text('net: "plain.prototxt"\nmax_iter: 10\n')
    return tmp_path


def _plan(project, solver, gpu):
    options = training.TrainOptions(solver=solver, image="caffebox:gpu", gpu=gpu)
    return training.plan(options, cwd=project)


def test_single_gpu_uses_caffe_cli(project):
    plan = _plan(project, "py_solver.prototxt", "1")
    assert plan.spec.command[:2] == ["caffe", "train"]
    assert plan.spec.command[-2:] == ["-gpu", "0"]
    assert runs.container_options(plan.spec)["device_requests"][0]["DeviceIDs"] == ["1"]


def test_multi_gpu_python_layers_use_one_process_per_gpu(project):
    plan = _plan(project, "py_solver.prototxt", "0,1")
    assert plan.spec.command[:3] == ["python3", "-m", "caffebox_layers.parallel"]
    assert plan.spec.command[-2:] == ["--gpus", "0,1"]


def test_multi_gpu_without_python_layers_stays_on_caffe(project):
    plan = _plan(project, "plain_solver.prototxt", "all")
    assert plan.spec.command[:2] == ["caffe", "train"] and plan.spec.command[-1] == "all"


def test_no_gpu_no_device_requests(project):
    plan = _plan(project, "plain_solver.prototxt", "")
    assert runs.container_options(plan.spec)["device_requests"] == []


def test_engine_without_nvidia_runtime():
    with pytest.raises(CaffeboxError, match="no NVIDIA runtime.*nvidia-ctk"):
        gpus.check_engine_has_gpus(FakeEngine(runtimes=("runc",)))
    gpus.check_engine_has_gpus(FakeEngine(runtimes=("runc", "nvidia")))


def test_gpu_on_cpu_image_refused():
    with pytest.raises(CaffeboxError, match="is the CPU image"):
        gpus.check_image_variant("cpu", "caffebox:cpu", ["0"])
    gpus.check_image_variant("gpu", "caffebox:gpu", ["0"])
    gpus.check_image_variant("cpu", "caffebox:cpu", [])
