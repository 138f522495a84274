"""The Dockerfile's stages and the build args caffebox passes: no engine needed."""

import re

import pytest

from caffebox import images, paths
from caffebox.errors import CaffeboxError
from caffebox.source import CaffeSource
from caffebox.variants import CPU


def _stage_args() -> dict[str, set[str]]:
    """ARG names declared in each stage (before the first FROM: '(global)')."""
    stages: dict[str, set[str]] = {"(global)": set()}
    current = "(global)"
    for line in paths.DOCKERFILE.read_text().splitlines():
        if m := re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.I):
            current = m.group(1)
            stages[current] = set()
        elif m := re.match(r"ARG\s+([A-Za-z_][A-Za-z0-9_]*)", line):
            stages[current].add(m.group(1))
    return stages


def test_label_args_reach_only_the_final_stage():
    # The final build call passes these with values read from the runtime stage; were one
    # an ARG of the build stage, its cache would miss and Caffe would compile twice.
    stages = _stage_args()
    request = images.BuildRequest(variant=CPU, source=CaffeSource.from_options(None, None, None),
                                  tag="t")  # fmt: skip
    labels = images.label_args(request, {"CAFFE_COMMIT": "abc"}, "")
    assert labels["CAFFE_REVISION"] == "abc"
    assert set(labels) <= stages["final"]
    for stage in ("build", "runtime"):
        assert not set(labels) & stages[stage], f"{stage} declares {set(labels) & stages[stage]}"


def test_every_build_arg_is_declared():
    request = images.BuildRequest(variant=CPU, source=CaffeSource.from_options(None, None, None),
                                  tag="t")  # fmt: skip
    declared = set().union(*_stage_args().values())
    assert set(request.buildargs()) <= declared


def test_cuda_base_names_the_cudas_it_makes():
    with pytest.raises(CaffeboxError, match="11 and 13 only"):
        images.build_cuda_offline_base(None, "t", "debian:bookworm-slim", cuda="12")


def test_cuda13_wheels_form_one_toolkit():
    # One CUDA 13.0 family: nvcc, its crt/nvvm and the runtime must agree, or nvcc breaks.
    pins = dict(
        line.split("==")
        for line in (paths.DOCKER_DIR / "cuda13-wheels.txt").read_text().split()
        if "==" in line
    )
    toolkit = ("nvidia-cuda-nvcc", "nvidia-cuda-crt", "nvidia-nvvm", "nvidia-cuda-runtime",
               "nvidia-cuda-cccl")  # fmt: skip
    assert {pins[p][:4] for p in toolkit} == {"13.0"}
    assert pins["nvidia-cudnn-cu13"].startswith("9.")
