"""The gpu variant without a GPU: rendered config, arch lists, device requests, errors."""

import pytest

from caffebox import gpus, makeconfig, runs, training
from caffebox.errors import CaffeboxError
from caffebox.variants import GPU, cuda_arch_flags, parse_cuda_archs

from .test_makeconfig import _settings


def test_gpu_config():
    s = _settings(makeconfig.render(GPU))
    assert s["WITH_PYTHON_LAYER"] == "1"
    assert s["CPU_ONLY"] == "" and s["USE_CUDNN"] == "1" and s["USE_NCCL"] == "1"
    assert s["CUDA_DIR"] == "/usr/local/cuda"
    for arch in (60, 61, 70, 75, 80, 86, 89, 90):
        assert f"arch=compute_{arch},code=sm_{arch}" in s["CUDA_ARCH"]
    assert s["CUDA_ARCH"].endswith("-gencode arch=compute_90,code=compute_90")  # PTX
    assert s["CAFFEBOX_CUDNN_COMPAT"].endswith("cudnn_compat.h")
    assert "NVCCFLAGS += -include $(CAFFEBOX_CUDNN_COMPAT)" in makeconfig.render(GPU)


def test_gpu_bases_are_cuda12_cudnn():
    assert GPU.base_image.startswith("nvidia/cuda:12.") and "cudnn-devel" in GPU.base_image
    assert GPU.runtime_image == GPU.base_image.replace("cudnn-devel", "cudnn-runtime")


@pytest.mark.parametrize("text", ["80,90", "sm_80 sm_90", "8.0 9.0", "compute_90, sm_80"])
def test_parse_cuda_archs(text):
    assert sorted(parse_cuda_archs(text)) == [80, 90]


def test_cuda_arch_flags_and_errors():
    assert cuda_arch_flags([90, 80]) == (
        "-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 "
        "-gencode arch=compute_90,code=compute_90"
    )
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
    (tmp_path / "py_solver.prototxt").write_text('net: "py.prototxt"\nsolver_mode: GPU\n')
    (tmp_path / "plain_solver.prototxt").write_text('net: "plain.prototxt"\n')
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
    assert plan.spec.command[:3] == ["python3", "-m", "layers.parallel"]
    assert plan.spec.command[-2:] == ["--gpus", "0,1"]


def test_multi_gpu_without_python_layers_stays_on_caffe(project):
    plan = _plan(project, "plain_solver.prototxt", "all")
    assert plan.spec.command[:2] == ["caffe", "train"] and plan.spec.command[-1] == "all"


def test_no_gpu_no_device_requests(project):
    plan = _plan(project, "plain_solver.prototxt", "")
    assert runs.container_options(plan.spec)["device_requests"] == []


class FakeEngine:
    def __init__(self, runtimes):
        self._runtimes = runtimes

    def info(self):
        return {"Runtimes": self._runtimes}


def test_engine_without_nvidia_runtime():
    with pytest.raises(CaffeboxError, match="no NVIDIA runtime.*nvidia-ctk"):
        gpus.check_engine_has_gpus(FakeEngine({"runc": {}}))
    gpus.check_engine_has_gpus(FakeEngine({"runc": {}, "nvidia": {}}))


def test_gpu_on_cpu_image_refused():
    with pytest.raises(CaffeboxError, match="is the CPU image"):
        gpus.check_image_variant("cpu", "caffebox:cpu", ["0"])
    gpus.check_image_variant("gpu", "caffebox:gpu", ["0"])
    gpus.check_image_variant("cpu", "caffebox:cpu", [])
