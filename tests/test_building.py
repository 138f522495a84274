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


def test_the_gpu_image_takes_a_distro_only_when_told():
    nvidia = _bases("gpu", _settings(distro="trixie"))
    assert nvidia[0].startswith("nvidia/cuda:") and "ubuntu" in nvidia[0]
    assert _bases("gpu", distro="trixie") == (
        "caffebox/cuda-offline:13-trixie", "caffebox/cuda-offline:13-trixie-runtime")
    assert _bases("gpu", distro="bookworm") == (
        "caffebox/cuda-offline:13", "caffebox/cuda-offline:13-runtime")


def test_named_bases_win_over_the_distro():
    assert _bases("cpu", distro="trixie", base_image="mine:1", runtime_image="mine:2") == (
        "mine:1", "mine:2")
    assert _bases("cpu", _settings(distro="trixie", cpu_base_image="mine:3"))[0] == "mine:3"


@pytest.mark.parametrize("distro", ["bullseye", "Trixie", "ubuntu"])
def test_an_unknown_distro_is_one_sentence_naming_the_known(distro):
    with pytest.raises(CaffeboxError, match=r"builds on Debian trixie and bookworm"):
        _bases("cpu", distro=distro)
