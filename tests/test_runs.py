"""The container a run gets, as plain data: user, mounts, env, network, security."""

from pathlib import Path

import pytest

from caffebox import paths, runs, training
from caffebox.errors import CaffeboxError


@pytest.fixture
def project(tmp_path):
    (tmp_path / "net.prototxt").write_text("")
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt"\nsnapshot_prefix: "s/x"\n')
    (tmp_path / "mylayers").mkdir()
    return tmp_path


def test_container_options(project):
    spec = runs.RunSpec(
        image="caffebox:cpu",
        command=["caffe", "train", "-solver", "solver.prototxt"],
        cwd=project,
        layer_dirs=[project / "mylayers"],
        uid=1234,
        gid=5678,
    )
    opts = runs.container_options(spec)
    assert opts["user"] == "1234:5678"
    assert opts["working_dir"] == str(project)
    assert opts["volumes"][str(project)] == {"bind": str(project), "mode": "rw"}
    assert opts["volumes"][str(project / "mylayers")] == {
        "bind": str(project / "mylayers"),
        "mode": "ro",
    }
    assert opts["volumes"][str(paths.LAYERS_DIR)] == {"bind": paths.IMAGE_LAYERS_DIR, "mode": "ro"}
    assert opts["environment"]["PYTHONPATH"].split(":") == [
        str(project / "mylayers"),
        paths.IMAGE_CAFFE_PYTHON,
        paths.IMAGE_PYDEPS,
        paths.IMAGE_LAYERS_ROOT,
        paths.IMAGE_COMPAT_DIR,
    ]
    home = opts["environment"]["HOME"]
    assert "uid=1234" in opts["tmpfs"][home]
    assert opts["network_mode"] == "none"
    assert opts["security_opt"] == ["no-new-privileges"]
    assert opts["cap_drop"] == ["ALL"]
    assert opts["labels"] == {runs.RUN_LABEL: "1"}


def test_missing_layers_dir(project):
    with pytest.raises(CaffeboxError, match="--layers nope"):
        runs.check_layer_dirs(["nope"], project)


def test_train_plan_command_and_paths(project):
    (project / "w.caffemodel").write_bytes(b"")
    plan = training.plan(
        training.TrainOptions(
            solver="solver.prototxt", image="img", layer_dirs=["mylayers"], weights="w.caffemodel"
        ),
        cwd=project,
    )
    assert plan.spec.command == [
        "caffe",
        "train",
        "-solver",
        str(project / "solver.prototxt"),
        "-weights",
        str(project / "w.caffemodel"),
    ]
    assert plan.spec.layer_dirs == [project / "mylayers"]
    assert (project / "s").is_dir()


def test_resume_picks_latest_state(project):
    (project / "s").mkdir()
    (project / "s" / "x_iter_20.solverstate").write_text("")
    (project / "s" / "x_iter_100.solverstate").write_text("")
    plan = training.plan(
        training.TrainOptions(solver="solver.prototxt", image="img", resume=True), cwd=project
    )
    assert plan.spec.command[-2:] == ["-snapshot", str(project / "s" / "x_iter_100.solverstate")]


def test_weights_and_snapshot_together_refused(project):
    with pytest.raises(CaffeboxError, match="not both"):
        training.plan(
            training.TrainOptions(solver="solver.prototxt", image="i", weights="a", resume=True),
            cwd=project,
        )


def test_missing_weights_named(project):
    with pytest.raises(CaffeboxError, match=r"--weights gone\.caffemodel"):
        training.plan(
            training.TrainOptions(solver="solver.prototxt", image="i", weights="gone.caffemodel"),
            cwd=project,
        )


def test_lines_reassembles_split_chunks():
    chunks = [b"Itera", b"tion 1, loss = 2\nsecond", b" line\n", b"tail"]
    assert list(runs._lines(chunks)) == ["Iteration 1, loss = 2", "second line", "tail"]


def test_failure_hint_for_import_error(project):
    plan = training.plan(training.TrainOptions(solver="solver.prototxt", image="i"), cwd=project)
    result = runs.RunResult(
        exit_code=1,
        log=runs.TrainingLog(),
        tail=["ModuleNotFoundError: No module named 'my_layer'"],
    )
    assert "--layers DIR" in training.explain_failure(result, plan)


def test_failure_hint_for_gpu_image_without_gpu(project):
    # What BVLC's cuDNN convolution prints in a gpu image on a host with no GPU (seen here).
    tail = [
        "F1126 cudnn_conv_layer.cpp:52] Check failed: error == cudaSuccess (100 vs. 0)  "
        "no CUDA-capable device is detected",
        "*** Check failure stack trace: ***",
    ]
    result = runs.RunResult(exit_code=139, log=runs.TrainingLog(), tail=tail)
    plan = training.plan(training.TrainOptions(solver="solver.prototxt", image="i"), cwd=project)
    hint = training.explain_failure(result, plan)
    assert "needs a GPU even for solver_mode: CPU" in hint and "--gpu 0" in hint
    plan = training.plan(
        training.TrainOptions(solver="solver.prototxt", image="i", gpu="0"), cwd=project
    )
    assert "sees no usable GPU" in training.explain_failure(result, plan)


def test_paths_point_into_the_checkout():
    assert Path(paths.DOCKERFILE).is_file() and Path(paths.TEMPLATE).is_file()
