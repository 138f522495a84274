"""caffebox.launch, the one way into the image, on a fake engine: what each task gets
before any container starts (image found, pulled or built; variant and GPU checks)."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest

from caffebox import engine, launch, runs
from caffebox import solver as solverlib
from caffebox.errors import CaffeboxError
from caffebox.settings import DEFAULTS

from .support.fakes import FakeEngine

DEFAULTS_NS = SimpleNamespace(**DEFAULTS["caffebox"])

SETTINGS = SimpleNamespace(image="caffebox:cpu", cpu_image="caffebox:cpu",
                           gpu_image="caffebox:gpu", registry="")  # fmt: skip


def _solver(tmp_path, mode: str) -> solverlib.Solver:
    (tmp_path / "net.prototxt").write_text("")
    (tmp_path / "solver.prototxt").write_text(
        f'net: "net.prototxt"\nmax_iter: 10\nsolver_mode: {mode}\nsnapshot_prefix: "s/d"\n'
    )
    return solverlib.load("solver.prototxt", tmp_path)


def test_caffebox_images_are_buildable_others_are_not():
    assert launch.Target.from_settings(SETTINGS).build is not None
    assert launch.Target.from_settings(SETTINGS, "caffebox:gpu").build is not None
    assert launch.Target.from_settings(SETTINGS, "mine:latest").build is None


def test_a_missing_image_is_built_when_caffebox_names_it():
    client = FakeEngine({})
    built = []

    def build():
        built.append(True)
        client.images_here["caffebox:cpu"] = "cpu"

    out = io.StringIO()
    image = launch.ready(client, launch.Target("caffebox:cpu", build=build), out=out)
    assert built and image == "caffebox:cpu"
    assert "building it first (once, about 3 to 4 minutes on 2 cores)" in out.getvalue()


def test_a_missing_image_of_the_user_is_one_paragraph():
    with pytest.raises(CaffeboxError, match=r"mine:1 does not exist and cannot be pulled \(no"):
        launch.ready(FakeEngine({}), launch.Target("mine:1"), out=io.StringIO())


def test_gpu_solver_on_the_cpu_image_refused(tmp_path):
    solver = _solver(tmp_path, "GPU")
    client = FakeEngine({"caffebox:cpu": "cpu"})
    with pytest.raises(CaffeboxError, match="sets solver_mode: GPU, but caffebox:cpu is the CPU"):
        launch.ready(client, launch.Target("caffebox:cpu"), solver=solver)
    launch.ready(client, launch.Target("caffebox:cpu"), solver=_solver(tmp_path, "CPU"))


def test_gpus_need_the_gpu_image_and_nvidias_runtime():
    with pytest.raises(CaffeboxError, match="is the CPU image"):
        launch.ready(FakeEngine({"c": "cpu"}), launch.Target("c"), ["0"])
    with pytest.raises(CaffeboxError, match="no NVIDIA runtime"):
        launch.ready(FakeEngine({"g": "gpu"}), launch.Target("g"), ["0"])
    launch.ready(FakeEngine({"g": "gpu"}, runtimes=("runc", "nvidia")), launch.Target("g"), ["0"])


def test_the_engines_init_only_for_images_without_their_own():
    """Podman's init needs catatonit on the host: caffebox images bring tini instead."""
    client = FakeEngine({"caffebox:cpu": "cpu", "debian:12": ""})
    assert engine.has_own_init(client, "caffebox:cpu")
    assert not engine.has_own_init(client, "debian:12")
    spec = runs.RunSpec(image="caffebox:cpu", command=["caffe"], cwd=Path("/tmp"))
    assert launch._fit_to_engine(client, spec, launch.Target(spec.image)).init is False
    assert runs.container_options(spec)["init"] is False
    spec.image = "debian:12"
    options = runs.container_options(launch._fit_to_engine(client, spec, launch.Target(spec.image)))
    assert options["init"] is True


def test_the_cudnn_tf32_setting_reaches_every_run():
    settings = SimpleNamespace(**vars(SETTINGS), cudnn_tf32=True)
    target = launch.Target.from_settings(settings)
    spec = runs.RunSpec(image="caffebox:cpu", command=["caffe"], cwd=Path("/tmp"))
    client = FakeEngine({"caffebox:cpu": "cpu"})
    options = runs.container_options(launch._fit_to_engine(client, spec, target))
    assert options["environment"]["CAFFEBOX_CUDNN_TF32"] == "1"
    plain = runs.RunSpec(image="caffebox:cpu", command=["caffe"], cwd=Path("/tmp"))
    default = launch.Target.from_settings(SETTINGS)
    opts = runs.container_options(launch._fit_to_engine(client, plain, default))
    assert "CAFFEBOX_CUDNN_TF32" not in opts["environment"]


def test_the_stop_grace_setting_reaches_every_run():
    """60 s by default (the README's promise, and what the first Ctrl-C says); the setting,
    from invoke.yaml or INVOKE_CAFFEBOX_STOP_GRACE (a string), for every run."""
    client = FakeEngine({"caffebox:cpu": "cpu"})
    five = SimpleNamespace(**vars(SETTINGS), stop_grace="5")
    for settings, seconds in ((SETTINGS, 60.0), (DEFAULTS_NS, 60.0), (five, 5.0)):
        target = launch.Target.from_settings(settings)
        spec = runs.RunSpec(image="caffebox:cpu", command=["caffe"], cwd=Path("/tmp"))
        assert launch._fit_to_engine(client, spec, target).stop_grace == seconds
    assert runs.GRACE_SECONDS == 60 == DEFAULTS["caffebox"]["stop_grace"]


@pytest.mark.parametrize("value", ["soon", "-1", None, "nan"])
def test_a_bad_stop_grace_is_one_paragraph(value):
    settings = SimpleNamespace(**vars(SETTINGS), stop_grace=value)
    with pytest.raises(CaffeboxError, match=r"stop_grace setting is .*number of seconds, 0 or "
                                            r"more.*INVOKE_CAFFEBOX_STOP_GRACE"):  # fmt: skip
        launch.Target.from_settings(settings)
