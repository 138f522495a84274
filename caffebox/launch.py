"""The one way into the image: every task that starts a container comes through here.

`train`, `sweep`, `python`, `gradcheck`, `test-layers` and `run` all: find the image,
pull it, or build it when caffebox itself names it; check that it fits (a gpu image and
an engine with NVIDIA's runtime for --gpu, a solver's solver_mode); hold the snapshot
lock where snapshots are written; run (runs.run: init, signals, the container always
removed). What differs is only what watches the output: training's log, bar and record.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

import docker

from caffebox import (
    building,
    charliecloud,
    contract,
    engine,
    gpus,
    images,
    limits,
    project,
    runs,
    training,
)
from caffebox import solver as solverlib
from caffebox.errors import CaffeboxError
from caffebox.progress import ProgressBar
from caffebox.publishing import ensure_image


@dataclass(frozen=True)
class Target:
    """The image a task runs and how to get it when this engine lacks it."""

    image: str
    registry: str = ""
    # Makes the image when it can be neither found nor pulled; None: the user's own image.
    build: Callable[[], Any] | None = None
    # docker (any Docker-compatible engine: Docker, Podman) or charliecloud (`image` is an
    # unpacked export, run with ch-run: no engine at all).
    runtime: str = "docker"
    # Environment every run gets from the settings (cudnn_tf32 -> CAFFEBOX_CUDNN_TF32=1).
    env: tuple[tuple[str, str], ...] = ()
    # The project's caffebox.toml (found from the current folder up): runs use the
    # project image made from it on `image`.
    project: Path | None = None
    ca_certificates: str = "auto"
    # Bounds on a runaway layer (settings pids_limit, memory_limit).
    pids_limit: int = 0
    memory_limit: str = ""
    # Seconds a stop signal (Ctrl-C, SIGTERM, SIGHUP) gives a run before it is killed.
    stop_grace: float = runs.GRACE_SECONDS

    @classmethod
    def from_settings(cls, settings: Any, image: str = "", runtime: str = "") -> Target:
        """The --image given (or the image setting); buildable when it is caffebox's tag."""
        runtime = runtime or getattr(settings, "runtime", "") or "docker"
        if runtime not in RUNTIMES:
            raise CaffeboxError(
                f"--runtime {runtime!r}: caffebox runs images with {' or '.join(RUNTIMES)} "
                "(docker also stands for Podman's Docker-compatible service)."
            )
        name = image or settings.image
        if runtime == "charliecloud":
            if not image:
                raise CaffeboxError(
                    "--runtime charliecloud needs --image DIR: an unpacked export made by "
                    "'caffebox export caffebox:cpu DIR/'."
                )
            return cls(image=str(Path(image).resolve()), runtime=runtime, env=_env(settings),
                       project=project.find(Path.cwd()),
                       stop_grace=stop_grace(settings))  # fmt: skip
        variant = building.variant_named(settings, name)
        build = None
        if variant:
            options = building.BuildOptions(tag=name)
            build = functools.partial(building.build, settings, variant, options)
        return cls(image=name, registry=settings.registry, build=build, env=_env(settings),
                   project=project.find(Path.cwd()),
                   ca_certificates=getattr(settings, "ca_certificates", "auto"),
                   pids_limit=int(getattr(settings, "pids_limit", 0) or 0),
                   memory_limit=str(getattr(settings, "memory_limit", "") or ""),
                   stop_grace=stop_grace(settings))  # fmt: skip


def stop_grace(settings: Any) -> float:
    """The stop_grace setting: seconds, at least 0 (0: killed at the first stop signal)."""
    raw = getattr(settings, "stop_grace", runs.GRACE_SECONDS)
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0:
        raise CaffeboxError(
            f"The stop_grace setting is {raw!r}: it must be a number of seconds, 0 or more "
            "(how long Ctrl-C, SIGTERM or SIGHUP let a run snapshot and stop before it is "
            "killed). Fix it in invoke.yaml or INVOKE_CAFFEBOX_STOP_GRACE."
        )
    return seconds


def _env(settings: Any) -> tuple[tuple[str, str], ...]:
    """cudnn_tf32: let cuDNN run float convolutions in TF32 (docker/cudnn_compat.h)."""
    return (("CAFFEBOX_CUDNN_TF32", "1"),) if getattr(settings, "cudnn_tf32", False) else ()


RUNTIMES = ("docker", "charliecloud")


def connect(target: Target) -> contract.Engine:
    """The engine for the target: Docker's API (Docker, Podman), or ch-run's stand-in."""
    if target.runtime == "charliecloud":
        return charliecloud.ChClient(charliecloud.check_rootfs(Path(target.image)))
    return engine.connect()


def docker_client(client: contract.Engine) -> docker.DockerClient:
    """The engine of the docker runtime, for what only it does (pull, build): Docker's SDK
    client (Docker, Podman), or a unit test's fake of it. ch-run never gets here: its
    images are exports, neither pulled nor built."""
    return cast(docker.DockerClient, client)


def ready(
    client: contract.Engine,
    target: Target,
    gpu_list: Sequence[str] = (),
    solver: solverlib.Solver | None = None,
    out: TextIO = sys.stdout,
) -> str:
    """The image is here (found, pulled or built) and fits the run; returns the image to
    run: the project image when the project has a caffebox.toml."""
    why = "" if target.runtime == "charliecloud" else ensure_image(
        docker_client(client), target.image, target.registry, out=out
    )
    if why:
        if target.build is None:
            raise CaffeboxError(
                f"The image {target.image} does not exist and cannot be pulled ({why}). Build "
                f"it with 'caffebox build-cpu --tag {target.image}' (or build-gpu), set the "
                "registry setting to where it is published, or pass --image with an image you "
                "have ('docker images')."
            )
        out.write(
            f"caffebox: the image {target.image} does not exist yet; building it first "
            "(once, about 3 to 4 minutes on 2 cores)\n"
        )
        target.build()
    image = project_image(client, target, out)
    variant = engine.image_variant(client, image)
    if solver is not None and variant == "cpu" and solver.params.first("solver_mode") == "GPU":
        raise CaffeboxError(
            f"{solver.path} sets solver_mode: GPU, but {target.image} is the CPU image. "
            "Set solver_mode: CPU there, or train on a GPU image with --gpu."
        )
    if target.runtime == "charliecloud":  # ch-run sees the host's GPUs: no engine to ask
        gpus.check_image_variant(variant, target.image, list(gpu_list))
    else:
        gpus.check_gpu_run(client, image, variant, list(gpu_list))
    return image


def project_image(client: contract.Engine, target: Target, out: TextIO) -> str:
    """The image a run uses: `target.image`, or the project image made from the project's
    caffebox.toml on it. An image that is already a project image (a Slurm task's, an
    export) is used as it is, if it is current."""
    labels = client.images.get(target.image).labels or {}
    if labels.get(project.HASH_LABEL) or target.runtime == "charliecloud":
        project.check_current(labels, target.image, target.project)
        return target.image
    if target.project is None:
        return target.image
    config = project.load(target.project)
    certificates = images.read_certificates(target.ca_certificates)
    return project.ensure(docker_client(client), target.image, config, certificates, out=out)


def _fit_to_engine(client: contract.Engine, spec: runs.RunSpec, target: Target) -> runs.RunSpec:
    """What the spec needs of this engine: its init only where the image has none of its
    own; Podman's options (rootful or rootless) where the engine is Podman."""
    spec.init = not engine.has_own_init(client, spec.image)
    spec.env = {**dict(target.env), **spec.env}
    spec.podman = engine.is_podman(client)
    spec.rootless = spec.podman and engine.is_rootless(client)
    if spec.podman:
        spec.ulimits = limits.host_ulimits()
    spec.stop_grace = target.stop_grace
    if target.runtime == "docker":  # ch-run has no cgroups of its own to set
        spec.pids_limit = target.pids_limit
        # Rootless Podman may not own a memory cgroup (cgroup v1, no delegation).
        if not spec.rootless:
            spec.memory = limits.memory_bytes(target.memory_limit, limits.engine_memory(client))
    return spec


def run_program(
    target: Target,
    spec: runs.RunSpec,
    out: TextIO = sys.stdout,
    watch: runs.Watch | None = None,
) -> int:
    """A program in the image (python, gradcheck, test-layers, run, time); its exit status."""
    client = connect(target)
    spec.image = ready(client, target, spec.gpus, out=out)
    out.write(limits.unapplied(_fit_to_engine(client, spec, target), target.runtime,
                                target.memory_limit))  # fmt: skip
    result = runs.run(client, spec, watch=watch, out=out)
    memory = runs.out_of_memory(result, spec)
    if memory:
        raise CaffeboxError(memory[0].upper() + memory[1:], exit_code=result.exit_code or 1)
    missing = runs.missing_command(result, spec)
    if missing:
        raise CaffeboxError(missing, exit_code=result.exit_code)
    if result.exit_code:  # the image's CUDA, read only when a run failed
        cuda = (client.images.get(spec.image).labels or {}).get(project.CUDA_LABEL, "")
        without = runs.no_gpu(result, spec, cuda)
        if without:
            raise CaffeboxError(without, exit_code=result.exit_code)
    return result.exit_code


def train(target: Target, plan: training.TrainPlan, out: TextIO = sys.stdout) -> tuple[int, str]:
    """`caffe train` for a checked plan: locked first (a busy prefix refuses before any
    build), then the image, then the run with its record; the status and closing message."""
    with plan.lock():
        client = connect(target)
        plan.spec.image = ready(client, target, plan.spec.gpus, plan.solver, out=out)
        out.write(limits.unapplied(_fit_to_engine(client, plan.spec, target), target.runtime,
                                   target.memory_limit))  # fmt: skip
        return training.run_recorded(client, plan, out=out)


def train_ready(
    client: contract.Engine,
    target: Target,
    plan: training.TrainPlan,
    out: TextIO,
    caught: list[int] | None = None,
    progress: ProgressBar | None = None,
) -> tuple[int, str]:
    """One of several runs on an image `ready` has checked (a sweep's variants)."""
    with plan.lock():
        _fit_to_engine(client, plan.spec, target)
        return training.run_recorded(client, plan, out=out, caught=caught, progress=progress)
