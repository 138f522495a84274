"""caffebox.building: from a build task's options and the settings to one BuildRequest
(the Debian release included), with no engine."""

from __future__ import annotations

import pytest
from invoke import Config

from caffebox import building
from caffebox.errors import CaffeboxError
from caffebox.settings import DEFAULTS


def _settings(**values):
    config = Config(defaults=DEFAULTS)
    config.caffebox.update(values)
    return config.caffebox


def _bases(variant: str, settings=None, **options) -> tuple[str, str]:
    made = building.request(settings or _settings(), variant, building.BuildOptions(**options))
    return made.buildargs()["BASE_IMAGE"], made.runtime_base_args()["RUNTIME_IMAGE"]


def test_the_cpu_image_builds_on_the_distro_setting():
    assert _bases("cpu") == ("debian:trixie-slim", "debian:trixie-slim")
    assert _bases("cpu", _settings(distro="bookworm")) == ("debian:bookworm-slim",) * 2
    assert _bases("cpu", distro="bookworm") == ("debian:bookworm-slim",) * 2


def test_the_gpu_image_builds_on_the_cuda_12_base_of_the_distro_setting():
    """The default gpu image is the one CI builds: caffebox's CUDA 12 base on Debian 13, the
    cpu image's release (so the same Python and numpy); NVIDIA's images only when named."""
    offline12 = ("caffebox/cuda-offline:12-trixie", "caffebox/cuda-offline:12-trixie-runtime")
    assert _bases("gpu") == offline12
    assert _bases("gpu", _settings(distro="trixie")) == offline12
    assert _bases("gpu", cuda="13") == (
        "caffebox/cuda-offline:13-trixie", "caffebox/cuda-offline:13-trixie-runtime")
    # Debian 12 has no CUDA 12: its default is 13 (NVIDIA's wheels), or its own 11.8.
    assert _bases("gpu", distro="bookworm") == (
        "caffebox/cuda-offline:13", "caffebox/cuda-offline:13-runtime")
    assert _bases("gpu", distro="bookworm", cuda="11")[0] == "caffebox/cuda-offline:11.8"
    nvidia = _bases("gpu", base_image="nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04",
                    runtime_image="nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04")
    assert nvidia[0].startswith("nvidia/cuda:") and "ubuntu" in nvidia[1]


@pytest.mark.parametrize(
    "options, says",
    [({"cuda": "12", "distro": "bookworm"}, "Debian bookworm has CUDA 13 or 11"),
     ({"cuda": "10"}, "offline CUDA bases for CUDA 12, 13, 11"),
     ({"cuda": "11"}, "Debian trixie has CUDA 12 or 13")],
)  # fmt: skip
def test_a_cuda_no_base_has_is_one_sentence(options, says):
    with pytest.raises(CaffeboxError, match=says):
        _bases("gpu", **options)


def test_cuda_is_the_gpu_images_option():
    with pytest.raises(CaffeboxError, match="--cuda applies to the gpu variant only"):
        _bases("cpu", cuda="12")


class _Engine:
    """Which images exist; what ensure_cuda_base asked to build."""

    def __init__(self, present):
        self.present, self.built = set(present), []


def test_a_missing_offline_base_is_made_before_the_build(monkeypatch):
    made = []
    monkeypatch.setattr(building.engine, "image_exists", lambda c, name: name in c.present)
    def build_base(client, tag, base, ca, cuda):
        made.append((tag, base, cuda))

    monkeypatch.setattr(building.images, "build_cuda_offline_base", build_base)
    request = building.request(_settings(), "gpu", building.BuildOptions())
    building.ensure_cuda_base(_Engine([]), request, "auto")
    assert made == [("caffebox/cuda-offline:12-trixie", "debian:trixie-slim", "12")]
    made.clear()
    present = ["caffebox/cuda-offline:12-trixie", "caffebox/cuda-offline:12-trixie-runtime"]
    building.ensure_cuda_base(_Engine(present), request, "auto")
    assert made == []  # both there: nothing made
    nvidia = building.request(_settings(), "gpu", building.BuildOptions(
        base_image="nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04",
        runtime_image="nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"))
    building.ensure_cuda_base(_Engine([]), nvidia, "auto")
    assert made == []  # another base is pulled by the build, never made here


def test_named_bases_win_over_the_distro():
    assert _bases("cpu", distro="trixie", base_image="mine:1", runtime_image="mine:2") == (
        "mine:1", "mine:2")
    assert _bases("cpu", _settings(distro="trixie", cpu_base_image="mine:3"))[0] == "mine:3"


@pytest.mark.parametrize("distro", ["bullseye", "Trixie", "ubuntu"])
def test_an_unknown_distro_is_one_sentence_naming_the_known(distro):
    with pytest.raises(CaffeboxError, match=r"builds on Debian trixie and bookworm"):
        _bases("cpu", distro=distro)
