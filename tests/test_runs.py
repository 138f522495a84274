"""The container a run gets, as plain data: user, mounts, env, network, security."""

from dataclasses import replace
from pathlib import Path

import pytest

from caffebox import paths, runs, training
from caffebox.errors import CaffeboxError


@pytest.fixture
def project(tmp_path):
    (tmp_path / "net.prototxt").write_text("")
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nsnapshot_prefix: "s/x"\nmax_iter: 100\n'
    )
    (tmp_path / "mylayers").mkdir()
    return tmp_path


def _mount_modes(opts):
    return {m["Target"]: (m["Source"], m["ReadOnly"]) for m in opts["mounts"]}


def test_container_options(project, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    spec = runs.RunSpec(
        image="caffebox:cpu",
        command=["caffe", "train", "-solver", "solver.prototxt"],
        cwd=project,
        layer_dirs=[outside],
        uid=1234,
        gid=5678,
    )
    opts = runs.container_options(spec)
    assert opts["user"] == "1234:5678"
    assert opts["working_dir"] == str(project)
    assert opts["init"] is True  # Caffe is not PID 1: its crash handlers end the container
    mounts = _mount_modes(opts)
    assert mounts[str(project)] == (str(project), False)
    assert mounts[str(outside)] == (str(outside), True)
    assert mounts[paths.IMAGE_LAYERS_DIR] == (str(paths.LAYERS_DIR), True)
    assert opts["environment"]["PYTHONPATH"].split(":") == [
        str(outside),
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


@pytest.mark.parametrize("layers", [".", "mylayers"])
def test_layers_inside_the_project_stay_writable(project, layers):
    """--layers . (the README's own example) once made the whole project read-only."""
    folder = (project / layers).resolve()
    spec = runs.RunSpec(image="i", command=["x"], cwd=project, layer_dirs=[folder])
    opts = runs.container_options(spec)
    mounts = _mount_modes(opts)
    assert mounts[str(project)] == (str(project), False)
    assert [m for m in opts["mounts"] if m["ReadOnly"] and m["Source"] == str(folder)] == []
    assert opts["environment"]["PYTHONPATH"].split(":")[0] == str(folder)


def test_layers_named_like_the_checkout_keep_both_mounts(tmp_path):
    """The user's --layers and caffebox's own layers/ are different mounts, whatever the key."""
    spec = runs.RunSpec(
        image="i", command=["x"], cwd=tmp_path, layer_dirs=[paths.LAYERS_DIR.resolve()]
    )
    mounts = _mount_modes(runs.container_options(spec))
    assert mounts[str(paths.LAYERS_DIR.resolve())][1] is True
    assert mounts[paths.IMAGE_LAYERS_DIR] == (str(paths.LAYERS_DIR), True)


def test_missing_layers_dir(project):
    with pytest.raises(CaffeboxError, match="--layers nope"):
        runs.check_layer_dirs(["nope"], project)


def test_train_plan_command_and_paths(project):
    plan = training.plan(
        training.TrainOptions(solver="solver.prototxt", image="img", layer_dirs=["mylayers"]),
        cwd=project,
    )
    assert plan.spec.command == ["caffe", "train", "-solver", str(project / "solver.prototxt")]
    assert plan.spec.layer_dirs == [project / "mylayers"]
    assert not (project / "s").exists(), "planning must not touch the user's tree"
    with plan.lock():
        assert (project / "s").is_dir()
    assert not (project / "s").exists(), "an empty snapshot folder we made is removed again"


def test_weights_fine_tune_through_pycaffe(project):
    """Forks' caffe tools may ignore -weights; caffebox fine-tunes through pycaffe."""
    (project / "w.caffemodel").write_bytes(b"")
    plan = training.plan(
        training.TrainOptions(solver="solver.prototxt", image="img", weights="w.caffemodel"),
        cwd=project,
    )
    assert plan.spec.command == [
        "python3", "-m", "caffebox_layers.solve", "--solver", str(project / "solver.prototxt"),
        "--weights", str(project / "w.caffemodel"),
    ]  # fmt: skip
    assert plan.weights == [str(project / "w.caffemodel")]


@pytest.mark.parametrize("line", ["max_iter: 0", "max_iter: -5", ""])
def test_max_iter_must_be_positive(project, line):
    (project / "solver.prototxt").write_text(f'net: "net.prototxt"\n{line}\n')
    with pytest.raises(CaffeboxError, match="train no iteration at all"):
        training.plan(training.TrainOptions(solver="solver.prototxt", image="i"), cwd=project)


def test_earlier_snapshots_are_not_overwritten(project):
    (project / "s").mkdir()
    (project / "s" / "x_iter_100.caffemodel").write_text("")
    options = training.TrainOptions(solver="solver.prototxt", image="i")
    with pytest.raises(CaffeboxError, match=r"x_iter_100.caffemodel\) .*--resume.*--overwrite"):
        training.plan(options, cwd=project)
    training.plan(replace(options, overwrite=True), cwd=project)


def test_second_run_on_the_same_prefix_is_refused(project):
    plan = training.plan(training.TrainOptions(solver="solver.prototxt", image="i"), cwd=project)
    with plan.lock() as path:
        assert path.name == "x.caffebox-lock"
        with pytest.raises(CaffeboxError, match=r"Another caffebox run \(pid \d+\) is writing"):
            with plan.lock():
                pass
    with plan.lock():  # released when the first run ended
        pass


def test_resume_picks_latest_state(project):
    from .test_snapshots import caffemodel, solverstate

    (project / "s").mkdir()
    for it in (20, 100):  # 100 after 20, though "100" < "20" as text
        (project / "s" / f"x_iter_{it}.caffemodel").write_bytes(caffemodel())
        (project / "s" / f"x_iter_{it}.solverstate").write_bytes(
            solverstate(it, f"s/x_iter_{it}.caffemodel"))
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
    (project / "net.prototxt").write_text(
        'layer { name: "l" type: "Python" top: "x" python_param { module: "my_layer" '
        'layer: "L" } }\n'
    )
    plan = training.plan(training.TrainOptions(solver="solver.prototxt", image="i"), cwd=project)
    result = training.TrainedRun(
        exit_code=1, tail=["ModuleNotFoundError: No module named 'my_layer'"]
    )
    assert "--layers DIR" in training.explain_failure(result, plan)


def test_failure_hint_for_a_package_the_image_lacks_and_an_unbuilt_extension(project):
    (project / "mylayers" / "utils").mkdir()
    (project / "mylayers" / "utils" / "__init__.py").write_text("")
    (project / "mylayers" / "utils" / "cython_bbox.pyx").write_text("")
    plan = training.plan(training.TrainOptions(solver="solver.prototxt", image="i",
                                               layer_dirs=["mylayers"]), cwd=project)  # fmt: skip
    said = training.explain_failure(training.TrainedRun(
        exit_code=1, tail=["ModuleNotFoundError: No module named 'easydict'"]), plan)
    assert "no Python package 'easydict'" in said and 'pip = ["easydict"]' in said
    assert "caffebox.toml" in said
    said = training.explain_failure(training.TrainedRun(
        exit_code=1, tail=["ModuleNotFoundError: No module named 'utils.cython_bbox'"]), plan)
    assert "Cython extension" in said and "build_ext --inplace" in said


def test_failure_hint_for_gpu_image_without_gpu(project):
    # What BVLC's cuDNN convolution prints in a gpu image on a host with no GPU (seen here).
    tail = [
        "F1126 cudnn_conv_layer.cpp:52] Check failed: error == cudaSuccess (100 vs. 0)  "
        "no CUDA-capable device is detected",
        "*** Check failure stack trace: ***",
    ]
    result = training.TrainedRun(exit_code=139, tail=tail)
    plan = training.plan(training.TrainOptions(solver="solver.prototxt", image="i"), cwd=project)
    hint = training.explain_failure(result, plan)
    assert "needs a GPU even for solver_mode: CPU" in hint and "--gpu 0" in hint
    plan = training.plan(
        training.TrainOptions(solver="solver.prototxt", image="i", gpu="0"), cwd=project
    )
    assert "sees no usable GPU" in training.explain_failure(result, plan)


def test_paths_point_into_the_checkout():
    assert Path(paths.DOCKERFILE).is_file() and Path(paths.TEMPLATE).is_file()


@pytest.mark.parametrize(
    "cuda, gpus, driver, advice",
    [("12.4", [], "R525", "started without --gpu"), ("13.0", ["0"], "R580", "--gpu 0, so check"),
     ("11.8", [], "R450", "pass --gpu 0")],
)  # fmt: skip
def test_no_gpu_names_the_driver_the_images_cuda_needs(tmp_path, cuda, gpus, driver, advice):
    spec = runs.RunSpec(image="caffebox:gpu", command=["caffe", "device_query"], cwd=tmp_path,
                        gpus=gpus)  # fmt: skip
    said = ["F1204 common.cpp:152] Check failed: error == cudaSuccess (35 vs. 0)  CUDA driver "
            "version is insufficient for CUDA runtime version",
            "*** Check failure stack trace: ***"]
    paragraph = runs.no_gpu(runs.RunResult(exit_code=134, tail=said), spec, cuda)
    assert paragraph.startswith("caffe exited with 134: Caffe found no usable GPU")
    assert f"built with CUDA {cuda}, which needs an NVIDIA driver {driver} or newer" in paragraph
    assert advice in paragraph and "\n" not in paragraph
    # Not for a cpu image, a run that succeeded, or another failure.
    assert runs.no_gpu(runs.RunResult(exit_code=134, tail=said), spec, "") == ""
    assert runs.no_gpu(runs.RunResult(exit_code=0, tail=said), spec, cuda) == ""
    assert runs.no_gpu(runs.RunResult(exit_code=1, tail=["Segmentation fault"]), spec, cuda) == ""
