"""The task collection behind both `invoke ...` (via tasks.py) and the `caffebox` command.

Tasks are thin: they read settings from invoke's config, call the modules that do
the work, and turn a CaffeboxError into one paragraph and a non-zero exit.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
from invoke import Collection, Context, Exit, ParseError, Program, task

from caffebox import __version__, makeconfig
from caffebox.errors import CaffeboxError
from caffebox.settings import DEFAULTS, exit_on_broken_config
from caffebox.variants import get_variant


def friendly(body: Callable[..., Any]) -> Callable[..., Any]:
    """Show CaffeboxError as a plain paragraph with its exit code, no traceback."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except CaffeboxError as exc:
            raise Exit(f"caffebox: {exc}", code=exc.exit_code) from None
        except docker.errors.DockerException as exc:
            reason = getattr(exc, "explanation", None) or str(exc)
            raise Exit(
                f"caffebox: the Docker engine reported an error: {reason}. Check the engine "
                "('docker info') and the image named, then run the command again.",
                code=1,
            ) from None

    return wrapper


def split_args(text: str, what: str) -> list[str]:
    """Shell-style words, or one clear error (an unbalanced quote is a typo, not a crash)."""
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise CaffeboxError(
            f"Cannot split {what} into words ({exc}): {text!r}. Close the quote, or quote the "
            "whole string for your shell with the other kind of quotes, e.g. "
            "\"s.py --name 'my run'\"."
        ) from None


# The options every task that runs the image has (train, sweep and time say more).
_RUN_HELP = {
    "layers": "A folder to put on PYTHONPATH (read-only); repeatable.",
    "image": "Image to run (setting image).",
    "gpu": "GPUs to hand in: '0', '0,1' or 'all' (seen inside as 0..n-1; a gpu image).",
    "runtime": "docker (Docker or Podman's API; the default, setting runtime) or charliecloud "
    "(ch-run on an unpacked export: --image DIR).",
}


def _settings(c: Context) -> Any:
    return c.config.caffebox


@task(help={"variant": "Which variant to render: cpu (default) or gpu."})
@friendly
def config(c: Context, variant: str = "cpu") -> None:
    """Print the Makefile.config rendered for a variant (the image keeps a copy)."""
    sys.stdout.write(makeconfig.render(get_variant(variant)))


@task(
    help={
        "image": "Image name to make (default: the Dockerfile's base, debian:bookworm-slim).",
        "mirror": "Debian mirror for debootstrap (setting debian_mirror).",
        "force": "Make it with debootstrap even if the image exists or can be pulled.",
    }
)
@friendly
def base_image(c: Context, image: str = "", mirror: str = "", force: bool = False) -> None:
    """Make sure the base image exists: keep, pull, or build it with debootstrap."""
    from caffebox import baseimage, engine

    name = image or get_variant("cpu").base_image
    baseimage.ensure_base_image(
        engine.connect(), name, mirror or _settings(c).debian_mirror, force_debootstrap=force
    )


_BUILD_HELP = {
    "tag": "Image name to create (setting cpu_image, default caffebox:cpu).",
    "caffe_src": "A local Caffe source folder or .tar.gz to build instead of git.",
    "caffe_repo": "Git URL of a Caffe fork (default BVLC/caffe).",
    "caffe_ref": "Commit, tag or branch to build (default BVLC master 9b89154).",
    "jobs": "Parallel compile jobs (default: all cores).",
    "no_cache": "Rebuild every step, ignoring the engine's cache.",
}


def _build_task(variant: str, names: tuple[str, ...], help: dict[str, str], doc: str) -> Any:
    """A build task whose options are BuildOptions' fields `names` (one list of them, in
    caffebox.building, instead of one signature per task)."""
    from caffebox import building

    @friendly
    def body(c: Context, **options: Any) -> None:
        building.build(_settings(c), variant, building.BuildOptions(**options))

    defaults = {f.name: f.default for f in dataclasses.fields(building.BuildOptions)}
    params = [inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=defaults[n],
                                 annotation=type(defaults[n])) for n in names]  # fmt: skip
    body.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    body.__name__ = body.__qualname__ = f"build_{variant}"
    body.__doc__ = doc
    return task(help=help)(body)


_SOURCE_OPTIONS = ("tag", "caffe_src", "caffe_repo", "caffe_ref", "jobs", "no_cache")
build_cpu = _build_task(
    "cpu", _SOURCE_OPTIONS, _BUILD_HELP,
    "Build the CPU image: Caffe compiled WITH_PYTHON_LAYER := 1, CPU_ONLY, OpenBLAS.",
)  # fmt: skip


@task(
    iterable=["layers"],
    help={
        "solver": "The solver .prototxt, relative to the current directory.",
        "layers": "A folder to put on PYTHONPATH (read-only) for your layer modules; repeatable.",
        "weights": "Initial .caffemodel weights to fine-tune from (comma-separated allowed).",
        "snapshot": "A .solverstate to resume training from.",
        "resume": "Resume from the newest .solverstate under the solver's snapshot_prefix.",
        "image": "Image to run (setting image, default caffebox:cpu).",
        "gpu": "GPUs to train on: '0', '0,1' or 'all' (needs the gpu image).",
        "overwrite": "Replace the snapshots an earlier run left under the same snapshot_prefix.",
        "runtime": _RUN_HELP["runtime"],
    },
)
@friendly
def train(c: Context, solver: str, layers: list[str] | None = None, weights: str = "",
          snapshot: str = "", resume: bool = False, image: str = "", gpu: str = "",
          overwrite: bool = False, runtime: str = "") -> None:  # fmt: skip
    """Run `caffe train -solver SOLVER` in the image, as you, in the current directory."""
    from caffebox import launch, training

    s = _settings(c)
    options = training.TrainOptions(
        solver=solver, image=image or s.image, layer_dirs=layers or [], weights=weights,
        snapshot=snapshot, resume=resume, gpu=gpu, overwrite=overwrite,
    )  # fmt: skip
    target = launch.Target.from_settings(s, image, runtime)
    options.image = target.image
    code, message = launch.train(target, training.plan(options))
    if code != 0:
        raise Exit("caffebox: " + message, code=code)


@task(
    help={
        "unit": "Only the fast tests that need no Docker engine.",
        "image": "Test this existing image instead of building caffebox:cpu-test.",
        "pytest_args": "Extra arguments for pytest, e.g. '-k digits -x'.",
    }
)
def test(c: Context, unit: bool = False, image: str = "", pytest_args: str = "") -> None:
    """Run the test suite: unit tests, then the image tests on the real engine."""
    from caffebox import paths

    if not (paths.ROOT / "tests" / "conftest.py").is_file():
        raise Exit(
            "caffebox: the test suite runs from a clone of caffebox ('pip install -e .[test]' "
            "there, then 'invoke test'); this installation is a wheel without tests.",
            code=2,
        )
    args = [sys.executable, "-m", "pytest", str(paths.ROOT / "tests")]
    if unit:
        args += ["-m", "not image"]
    if image:
        args += ["--caffebox-image", image]
    command = " ".join(shlex.quote(a) for a in args) + (f" {pytest_args}" if pytest_args else "")
    result = c.run(command, warn=True, pty=False)
    if result is not None and result.exited:
        raise Exit(code=result.exited)


def _run_tool(
    c: Context, command: list[str], layers: list[str] | None, image: str, gpu: str = "",
    runtime: str = "",
) -> None:
    """Run a command in the image as `train` runs Caffe: cwd mounted, layer dirs on PYTHONPATH,
    the --gpu devices handed in (seen inside as 0..n-1)."""
    from caffebox import gpus, launch, runs

    cwd = Path.cwd().resolve()
    target = launch.Target.from_settings(_settings(c), image, runtime)
    spec = runs.RunSpec(
        image=target.image, command=command, cwd=cwd,
        layer_dirs=runs.check_layer_dirs(layers or [], cwd),
        gpus=gpus.parse_gpus(gpu) if gpu else [],
    )  # fmt: skip
    code = launch.run_program(target, spec)
    if code != 0:
        raise Exit(code=code)


@task(
    iterable=["input", "layers"],
    help={
        **_RUN_HELP,
        "layer": "The layer as module.Class (the module must be importable from --layers).",
        "input": "A bottom as NAME=SHAPE, e.g. data=2x3x4x4 (repeat, in bottom order).",
        "layers": "A folder to put on PYTHONPATH (read-only); repeatable.",
        "outputs": "Number of tops (default 1).",
        "param_str": "The layer's param_str.",
        "propagate_down": "Comma-separated 1/0 per bottom (default: all 1).",
        "step": "Finite-difference step (default 1e-2, as Caffe).",
        "threshold": "Relative threshold (default 1e-3, as Caffe).",
        "kink": "Skip elements whose |value| is within kink-range of this (default 0).",
        "kink_range": "Half-width of the kink region; negative disables (default).",
        "seed": "Seed of the random input values.",
        "gpu": "Check in Caffe's GPU mode on this GPU, e.g. 0 (a gpu image).",
    },
)
@friendly
def gradcheck(c: Context, layer: str, input: list[str] | None = None,
              layers: list[str] | None = None, outputs: int = 1, param_str: str = "",
              propagate_down: str = "", step: float = 1e-2, threshold: float = 1e-3,
              kink: float = 0.0, kink_range: float = -1.0, seed: int = 1701, image: str = "",
              gpu: str = "", runtime: str = "") -> None:  # fmt: skip
    """Check a Python layer's backward numerically on real pycaffe; non-zero exit on failure."""
    from caffebox import layer_checks

    options = layer_checks.GradcheckOptions(
        layer=layer, inputs=input or [], outputs=outputs, param_str=param_str,
        propagate_down=propagate_down, step=step, threshold=threshold, kink=kink,
        kink_range=kink_range, seed=seed, gpu=gpu,
    )  # fmt: skip
    _run_tool(c, layer_checks.gradcheck_command(options), layers, image, gpu, runtime)


@task(
    iterable=["layers"],
    help={
        **_RUN_HELP,
        "script": "A Python script (relative to here) and its arguments, in one string.",
    },
)
@friendly
def python(c: Context, script: str, layers: list[str] | None = None, image: str = "",
           gpu: str = "", runtime: str = "") -> None:  # fmt: skip
    """Run a Python script in the image (pycaffe, NetSpec, our layers), as you, here."""
    command = ["python3", *split_args(script, "the script and its arguments")]
    _run_tool(c, command, layers, image, gpu, runtime)


def _program_words(remainder: str) -> list[str]:
    """The words after '--' as the shell gave them (invoke joins them with spaces, which
    loses a quoted 'my dir/'); its own string split like a shell when argv is not ours."""
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    if argv and " ".join(argv) == remainder:
        return argv
    return split_args(remainder, "the program and its arguments")


@task(
    name="run",
    iterable=["layers"],
    help=_RUN_HELP,
)
@friendly
def run_task(
    c: Context, layers: list[str] | None = None, image: str = "", gpu: str = "", runtime: str = ""
) -> None:
    """Run any program in the image, as you, here: caffebox run -- caffe test -model ...

    Caffe's tools (caffe, convert_imageset, compute_image_mean, ...) and the tree's Python
    scripts (classify.py, draw_net.py, parse_log.py, ...) are on PATH. The exit status is
    the program's.
    """
    words = _program_words(c.remainder)
    if not words:
        raise CaffeboxError(
            "caffebox run needs the program and its arguments after '--', e.g. 'caffebox run "
            "-- caffe time -model net.prototxt -iterations 10' (options for caffebox itself, "
            "such as --layers and --image, go before the '--')."
        )
    _run_tool(c, words, layers, image, gpu, runtime)


@task(
    name="time",
    iterable=["layers"],
    help={
        "net": "The net .prototxt (its TRAIN phase is timed), relative to here.",
        "iterations": "Forward-backward passes to average (default 50).",
        **_RUN_HELP,
        "gpu": "Time on this GPU, e.g. 0 (a gpu image).",
        "csv": "Also write the per-layer times to this CSV file.",
    },
)
@friendly
def time_task(c: Context, net: str, iterations: int = 50, layers: list[str] | None = None,
              image: str = "", gpu: str = "", csv: str = "",
              runtime: str = "") -> None:  # fmt: skip
    """`caffe time` per layer, sorted, Python layers marked with their share of the step."""
    from caffebox import launch, timing

    timing.time_net(
        launch.Target.from_settings(_settings(c), image, runtime), net, iterations=iterations,
        gpu=gpu, layer_dirs=layers, csv_file=csv,
    )  # fmt: skip


@task(
    iterable=["layers"],
    positional=["path"],
    help={
        **_RUN_HELP,
        "path": "Folder (or file) of your layer tests, relative to here, e.g. tests.",
        "layers": "Extra folders for PYTHONPATH (the tests' folder is always on it); repeatable.",
        "pytest_args": "Extra arguments for pytest, e.g. '-k loss -x'.",
        "gpu": "GPUs to hand in: '0', '0,1' or 'all' (seen inside as 0..n-1; a gpu image).",
    },
)
@friendly
def test_layers(c: Context, path: str, pytest_args: str = "", layers: list[str] | None = None,
                image: str = "", gpu: str = "", runtime: str = "") -> None:  # fmt: skip
    """Run your layers' pytest suite inside the image, on real pycaffe, with fixtures."""
    from caffebox import layer_checks

    args = split_args(pytest_args, "--pytest-args")
    command, folder = layer_checks.test_layers_command(path, args)
    _run_tool(c, command, [str(folder), *(layers or [])], image, gpu, runtime)


_GPU_HELP = {
    **_BUILD_HELP,
    "tag": "Image name to create (setting gpu_image, default caffebox:gpu).",
    "cuda_arch": "Compute capabilities to compile, e.g. '80,90' (default: 60 to 120 + PTX, "
    "those the base's nvcc supports).",
    "base_image": "Build-stage base (default NVIDIA's CUDA 12.4 cuDNN 9 devel, Ubuntu 22.04).",
    "runtime_image": "Runtime-stage base (default the matching cudnn-runtime image).",
    "compile_only": "Only compile (libcaffe, pycaffe) in the build stage, tagged as --tag: "
    "checks a tree compiles where its tools cannot link (e.g. a fork lacking GPU code).",
}
build_gpu = _build_task(
    "gpu", (*_SOURCE_OPTIONS, "cuda_arch", "base_image", "runtime_image", "compile_only"),
    _GPU_HELP, "Build the GPU image: CUDA 12, cuDNN (8/9 via caffebox's compat header), NCCL.",
)  # fmt: skip


@task(
    help={
        "tag": "Image name to make (default caffebox/cuda-offline:13, or :11.8 with --cuda 11).",
        "base": "Debian base it builds on (default debian:bookworm-slim; see base-image).",
        "cuda": "13 (CUDA 13.0 from PyPI wheels, the default) or 11 (Debian's CUDA 11.8).",
    }
)
@friendly
def cuda_base(c: Context, tag: str = "", base: str = "", cuda: str = "13") -> None:
    """Make an offline CUDA build base, cuDNN 9 and NCCL included, from Debian and PyPI.

    For machines that cannot pull NVIDIA's images: build-gpu --base-image TAG
    --runtime-image TAG-runtime --cuda-arch 80,90 then builds the gpu variant, cuDNN
    included (CUDA 13 also makes TAG-runtime, the shared libraries without the toolkit).
    """
    from caffebox import engine, images

    images.build_cuda_offline_base(
        engine.connect(), tag, base or get_variant("cpu").base_image,
        _settings(c).ca_certificates, cuda=cuda,
    )  # fmt: skip


@task(
    help={
        "image": "The image to export, e.g. caffebox:cpu.",
        "out": "The file to write, NAME.tar.zst; or a folder, DIR/, to unpack it there for "
        "ch-run (--runtime charliecloud --image DIR).",
        "without_cuda_libs": "Leave out cudart, cuBLAS, cuDNN, cuRAND, NCCL and NVRTC: the "
        "host's are used (caffebox-run finds them).",
        "level": "zstd compression level (default 10; 19 is smaller and much slower).",
    }
)
@friendly
def export(
    c: Context, image: str, out: str, without_cuda_libs: bool = False, level: int = 10
) -> None:
    """Write an image's root filesystem as a .tar.zst for ch-run, Apptainer or chroot."""
    from caffebox import engine
    from caffebox import export as exporter

    target = Path(out).resolve()
    folder = None
    if out.endswith("/") or target.is_dir():  # DIR/: unpacked, ready for ch-run
        folder, target = target, target.with_name(target.name + ".tar.zst")
    report = exporter.export(
        engine.connect(), image, target, without_cuda_libs=without_cuda_libs, level=level
    )
    if folder is None:
        print(exporter.describe(report, target))
        return
    try:
        exporter.unpack(target, folder)
    finally:
        target.unlink(missing_ok=True)
    print(f"caffebox: unpacked {image} into {folder}: 'caffebox train SOLVER --runtime "
          f"charliecloud --image {folder}' runs it with ch-run")  # fmt: skip


@task(
    iterable=["set", "layers"],
    help={
        "solver": "The solver to sweep (or, with --status, the sweep's folder).",
        "set": "NAME=V1,V2: a solver field (base_lr=0.01,0.1) or a layer's setting "
        "(loss.param_str.delta=0.5,1; loss.loss_weight=1,2); repeat for a grid.",
        "parallel": "Runs at a time on this engine (default: one per 2 cores, or per GPU).",
        "resume": "Finish a sweep that was interrupted: skip finished variants.",
        **_RUN_HELP,
        "gpu": "GPUs to share out, one per run at a time, e.g. '0,1'.",
        "slurm": "Submit the grid as one Slurm job array instead of running it here.",
        "slurm_args": "Options for sbatch, e.g. '--partition=gpu --time=2:00:00 --gres=gpu:1'.",
        "wait": "With --slurm: wait for the array to finish, then show the table.",
        "status": "Show a sweep's state (Slurm tasks) and its table: caffebox sweep --status DIR.",
    },
)
@friendly
def sweep(
    c: Context,
    solver: str,
    set: list[str] | None = None,  # noqa: A002 - the option is --set
    parallel: int = 0,
    resume: bool = False,
    layers: list[str] | None = None,
    image: str = "",
    gpu: str = "",
    slurm: bool = False,
    slurm_args: str = "",
    wait: bool = False,
    status: bool = False,
    runtime: str = "",
) -> None:
    """Train a grid of settings: local runs N at a time, or a Slurm job array."""
    from caffebox import launch, sweeping

    target = launch.Target.from_settings(_settings(c), image, runtime)
    options = sweeping.SweepOptions(
        solver=solver, settings=set or [], parallel=parallel, resume=resume,
        layer_dirs=layers or [], image=target.image, gpu=gpu, slurm=slurm,
        slurm_args=slurm_args, wait=wait, target=target,
    )  # fmt: skip
    code = sweeping.status(options) if status else sweeping.sweep(options)
    if code:
        raise Exit(code=code)


@task(
    help={
        "runs": "Run record folders, in one string: 'snapshots/digits.runs/A snapshots/digits"
        ".runs/B'; a folder of records (a sweep, a *.runs folder) stands for all of them.",
        "out": "The PNG to write (default: curves.png here).",
    },
)
@friendly
def plot(c: Context, runs: str, out: str = "curves.png") -> None:
    """Draw train loss and test outputs of one or several run records on one figure."""
    from caffebox import plots

    folders, target = plots.plot_runs(split_args(runs, "the run folders"), Path(out).resolve())
    print(f"caffebox: plotted {len(folders)} run(s) into {target}")


@task(
    help={
        "image": "The image to publish (setting image, default caffebox:cpu).",
        "registry": "Repository to push to, REGISTRY/NAMESPACE/NAME, e.g. ghcr.io/my-org/caffebox "
        "(setting registry).",
        "dry_run": "Print the references it would push, push nothing.",
    }
)
@friendly
def publish(c: Context, image: str = "", registry: str = "", dry_run: bool = False) -> None:
    """Push an image under every tag of the scheme (cpu, cpu-bvlc9b89154-py3.11, ...)."""
    from caffebox import engine, publishing

    s = _settings(c)
    publishing.publish(engine.connect(), image or s.image, registry or s.registry, dry_run=dry_run)


@task(
    help={
        "image": "The image to get (setting image); a name with a registry or @sha256 digest is "
        "pulled as it is, others from the registry setting's repository.",
    }
)
@friendly
def pull(c: Context, image: str = "") -> None:
    """Pull an image from the registry setting (or a full reference), with progress."""
    from caffebox import engine, publishing

    s = _settings(c)
    name = image or s.image
    remote = publishing.pull_named(engine.connect(), name, s.registry)
    print(f"caffebox: {name} is here (from {remote})")


namespace = Collection(
    config,
    base_image,
    cuda_base,
    build_cpu,
    build_gpu,
    train,
    gradcheck,
    test_layers,
    python,
    run_task,
    time_task,
    export,
    sweep,
    plot,
    publish,
    pull,
    test,
)
namespace.configure(DEFAULTS)


class CaffeboxProgram(Program):
    """The `caffebox` command: the same tasks, reading invoke.yaml from the current folder."""

    def create_config(self) -> None:
        exit_on_broken_config(Path.cwd())
        super().create_config()

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError:
            words = self.core.unparsed
            if words[:1] == ["run"] and "--" not in self.argv:
                raise Exit(
                    f"caffebox: 'caffebox run {' '.join(words[1:])}': the program goes after "
                    "'--', so that its options are not read as caffebox's: 'caffebox run -- "
                    f"{' '.join(words[1:])}'.",
                    code=2,
                ) from None
            raise

    def update_config(self, merge: bool = True) -> None:
        self.config.set_project_location(os.getcwd())
        self.config.load_project(merge=False)
        super().update_config(merge=merge)


program = CaffeboxProgram(
    namespace=namespace, name="caffebox", binary="caffebox", version=__version__
)
