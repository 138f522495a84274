"""caffebox.charliecloud without ch-run: the command and environment a run gets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caffebox import charliecloud, launch, runs
from caffebox.errors import CaffeboxError


def _rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "img"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/caffebox-run").write_text("#!/bin/sh\nexec \"$@\"\n")
    (root / "etc/caffebox").mkdir(parents=True)
    (root / "etc/caffebox/image.json").write_text(
        json.dumps({"id": "sha256:abc", "labels": {"io.caffebox.variant": "cpu"}})
    )
    return root


def test_a_run_spec_becomes_a_ch_run_command(tmp_path):
    root = _rootfs(tmp_path)
    project = tmp_path / "home" / "me" / "project"
    layers = tmp_path / "pylayers"
    project.mkdir(parents=True)
    layers.mkdir()
    spec = runs.RunSpec(image=str(root), command=["caffe", "train", "-solver", "s.prototxt"],
                        cwd=project, layer_dirs=[layers], project_layers=None, gpus=["1"],
                        cpuset="0-1")  # fmt: skip
    container = charliecloud.ChClient(root).containers.create(**runs.container_options(spec))
    command = container._command()
    assert command[:1] == ["ch-run"] and f"{project}:{project}" in command
    assert f"{layers}:{layers}" in command
    # ch-run shares the host's /tmp: no mount point made for the project (it lives there)
    assert not (root / str(project).lstrip("/")).exists()
    at = command.index("--")
    assert command[at - 1] == str(root) and command[at - 3:at - 1] == ["-c", str(project)]
    assert command[-5:] == ["/usr/bin/caffebox-run", "caffe", "train", "-solver", "s.prototxt"]
    env = container._env()
    assert env["PYTHONPATH"].startswith(f"{layers}:") and env["CUDA_VISIBLE_DEVICES"] == "1"
    assert Path(env["HOME"]).is_dir()
    container.remove()
    assert not Path(env["HOME"]).exists()


def test_a_bind_outside_tmp_gets_its_mount_point_in_the_image(tmp_path):
    root = _rootfs(tmp_path)
    options = {"mounts": [{"Source": str(tmp_path), "Target": "/srv/data/project"}],
               "working_dir": "/srv/data/project", "command": ["true"]}  # fmt: skip
    command = charliecloud.ChContainer(root, options)._command()
    assert (root / "srv/data/project").is_dir() and f"{tmp_path}:/srv/data/project" in command


def test_image_facts_come_from_the_export(tmp_path):
    image = charliecloud.ChClient(_rootfs(tmp_path)).images.get("x")
    assert image.id == "sha256:abc" and image.labels["io.caffebox.variant"] == "cpu"


def test_not_an_export_is_one_paragraph(tmp_path):
    with pytest.raises(CaffeboxError, match="is not one .no /usr/bin/caffebox-run in it"):
        charliecloud.check_rootfs(tmp_path)


def test_the_runtime_setting(tmp_path):
    settings = type("S", (), {"image": "caffebox:cpu", "cpu_image": "caffebox:cpu",
                              "gpu_image": "caffebox:gpu", "registry": "", "runtime": ""})()
    assert launch.Target.from_settings(settings).runtime == "docker"
    target = launch.Target.from_settings(settings, str(tmp_path), "charliecloud")
    assert target.image == str(tmp_path) and target.build is None
    with pytest.raises(CaffeboxError, match="needs --image DIR"):
        launch.Target.from_settings(settings, "", "charliecloud")
    with pytest.raises(CaffeboxError, match="--runtime 'singularity'"):
        launch.Target.from_settings(settings, "", "singularity")
