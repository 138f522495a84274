"""`train`: check everything on the host, make sure the image exists, run caffe train."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import docker

from caffebox import gpus, runs
from caffebox import solver as solverlib
from caffebox.engine import image_exists, image_variant
from caffebox.errors import CaffeboxError

_IMPORT_ERRORS = ("ModuleNotFoundError", "ImportError", "No module named")
_NO_GPU_ERRORS = ("no CUDA-capable device is detected", "CUDA driver version is insufficient")


@dataclass
class TrainOptions:
    """What the user asked `train` to do (paths as given, relative to cwd)."""

    solver: str
    image: str
    layer_dirs: Sequence[str] = ()
    weights: str = ""
    snapshot: str = ""
    resume: bool = False
    gpu: str = ""


@dataclass
class TrainPlan:
    """A checked run: the solver, the container spec and the max_iter for progress."""

    solver: solverlib.Solver
    spec: runs.RunSpec


def _existing(name: str, cwd: Path, option: str) -> Path:
    path = (cwd / name).resolve()
    if not path.is_file():
        raise CaffeboxError(
            f"{option} {name}: {path} does not exist. Give the path relative to the current "
            f"directory ({cwd})."
        )
    try:
        path.relative_to(cwd)
    except ValueError:
        raise CaffeboxError(
            f"{option} {name}: {path} is outside the current directory {cwd}, the only folder "
            "the container sees. Copy it inside, or run from a folder that contains it."
        ) from None
    return path


def plan(options: TrainOptions, cwd: Path | None = None) -> TrainPlan:
    """Every check that needs no engine; the result says exactly what will run."""
    cwd = (cwd or Path.cwd()).resolve()
    solver = solverlib.load(options.solver, cwd)
    layer_dirs = runs.check_layer_dirs(options.layer_dirs, cwd)
    for net, module, _cls in solver.python_layers():
        if not module:
            raise CaffeboxError(
                f"{net} has a Python layer without python_param {{ module: ... }}. Name the "
                "module that defines the layer class."
            )
    if options.weights and (options.snapshot or options.resume):
        raise CaffeboxError(
            "Give --weights (fine-tune) or --snapshot/--resume (continue training), not both: "
            "Caffe refuses the pair."
        )
    weights = ""
    if options.weights:
        weights = ",".join(str(_existing(w, cwd, "--weights")) for w in options.weights.split(","))
    state = ""
    if options.snapshot:
        state = str(_existing(options.snapshot, cwd, "--snapshot"))
    elif options.resume:
        state = str(solverlib.latest_solverstate(solver))
    solverlib.check_snapshot_dir(solver)
    gpu_list = gpus.parse_gpus(options.gpu) if options.gpu else []
    several = gpu_list == ["all"] or len(gpu_list) > 1
    if several and solver.python_layers():
        # The caffe binary refuses Python layers on several GPUs: one process per GPU.
        command = ["python3", "-m", "layers.parallel", "--solver", str(solver.path)]
        command += ["--gpus", gpus.caffe_gpu_flag(gpu_list)]
        command += ["--weights", weights] if weights else []
        command += ["--snapshot", state] if state else []
    else:
        command = ["caffe", "train", "-solver", str(solver.path)]
        command += ["-weights", weights] if weights else []
        command += ["-snapshot", state] if state else []
        command += ["-gpu", gpus.caffe_gpu_flag(gpu_list)] if gpu_list else []
    spec = runs.RunSpec(
        image=options.image, command=command, cwd=cwd, layer_dirs=layer_dirs, gpus=gpu_list
    )
    return TrainPlan(solver=solver, spec=spec)


def check_image(
    client: docker.DockerClient,
    train_plan: TrainPlan,
    build: Callable[[], None] | None,
    out: TextIO = sys.stdout,
) -> None:
    """The image must exist (built now when `build` can make it) and fit the solver."""
    image = train_plan.spec.image
    if not image_exists(client, image):
        if build is None:
            raise CaffeboxError(
                f"The image {image} does not exist. Build it with 'invoke build-cpu --tag "
                f"{image}' (or build-gpu) or pass --image with an image you have "
                "('docker images')."
            )
        out.write(
            f"caffebox: the image {image} does not exist yet; building it first "
            "(once, about 15 minutes on 2 cores)\n"
        )
        build()
    variant = image_variant(client, image)
    mode = train_plan.solver.params.first("solver_mode")
    if variant == "cpu" and mode == "GPU":
        raise CaffeboxError(
            f"{train_plan.solver.path} sets solver_mode: GPU, but {image} is the CPU image. "
            "Set solver_mode: CPU there, or train on a GPU image with --gpu."
        )
    gpus.check_gpu_run(client, image, variant, train_plan.spec.gpus)


def explain_failure(result: runs.RunResult, train_plan: TrainPlan) -> str:
    """One paragraph after a failed run, pointing at the likely cause."""
    text = "\n".join(result.tail)
    if any(marker in text for marker in _IMPORT_ERRORS):
        dirs = ", ".join(str(d) for d in train_plan.spec.layer_dirs) or "none"
        return (
            f"caffe exited with {result.exit_code}: a Python layer module did not import (see "
            f"the traceback above). caffebox puts these folders on PYTHONPATH: {dirs}, plus "
            "the project's 'layers' package. Pass --layers DIR for the folder that holds "
            "your module file, and check python_param { module: ... } in the net."
        )
    if "Traceback" in text:
        return (
            f"caffe exited with {result.exit_code}: a Python layer raised an error (traceback "
            "above). Fix the layer, or check it alone with a gradient check."
        )
    if result.interrupted:
        return f"caffe stopped on Ctrl-C (exit {result.exit_code}); snapshots were kept."
    if any(marker in text for marker in _NO_GPU_ERRORS):
        gpu = (
            "it was given --gpu, but the container sees no usable GPU: check nvidia-smi on "
            "this host and that the driver is new enough for the image's CUDA"
            if train_plan.spec.gpus
            else "a gpu image needs a GPU even for solver_mode: CPU, because its convolution "
            "and pooling layers default to cuDNN. Pass --gpu 0 on a GPU host, or train on the "
            "cpu image (invoke build-cpu; --image caffebox:cpu)"
        )
        return f"caffe exited with {result.exit_code}: {gpu}."
    return f"caffe exited with {result.exit_code}; the log above shows why."


def summary(result: runs.RunResult) -> str:
    """The outcome in two lines: final loss, test outputs, snapshots."""
    log = result.log
    parts = [f"caffebox: finished at iteration {log.iteration}"]
    if log.loss is not None:
        parts.append(f"loss {log.loss:.4g}")
    tests = log.final_test()
    if tests:
        parts.append("test " + ", ".join(f"{k} {v:.4g}" for k, v in tests.items()))
    line = "; ".join(parts)
    if log.snapshots:
        line += f"\ncaffebox: snapshots: {', '.join(log.snapshots[-2:])}"
    return line
