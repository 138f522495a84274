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
from importlib import resources
from pathlib import Path
from typing import Any

import docker
import yaml
from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit, ParseError
from invoke.program import Program
from invoke.tasks import task

from caffebox import __version__, makeconfig
from caffebox.errors import CaffeboxError
from caffebox.settings import DEFAULTS, exit_on_broken_config
from caffebox.variants import cuda_offline_base, debian_image, get_variant


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


# Every task's option help, as data (caffebox/help.yaml), by task name.
HELP: dict[str, dict[str, str]] = yaml.safe_load(
    resources.files("caffebox").joinpath("help.yaml").read_text()
)


def _in_image(key: str, iterable: tuple[str, ...] = (),
              positional: list[str] | None = None) -> Callable[..., Any]:  # fmt: skip
    """@task for the task `key` that runs the image: --layers repeatable, help.yaml's
    run-options lines (a line of the task's own for one of them wins)."""

    def decorate(body: Callable[..., Any]) -> Any:
        name = None if key.replace("-", "_") == body.__name__ else key
        return task(name=name, iterable=["layers", *iterable], positional=positional,
                    help={**HELP["run-options"], **HELP.get(key, {})})(body)  # fmt: skip

    return decorate


def _settings(c: Context) -> Any:
    return c.config.caffebox


@task(help=HELP["config"])
@friendly
def config(c: Context, variant: str = "cpu") -> None:
    """Print the Makefile.config rendered for a variant (the image keeps a copy)."""
    sys.stdout.write(makeconfig.render(get_variant(variant)))


@task(help=HELP["base-image"])
@friendly
def base_image(c: Context, image: str = "", distro: str = "", mirror: str = "",
               force: bool = False) -> None:  # fmt: skip
    """Make sure the base image exists: keep, pull, or build it with debootstrap."""
    from caffebox import baseimage, engine

    name = image or debian_image(distro or _settings(c).distro)
    baseimage.ensure_base_image(
        engine.connect(), name, mirror or _settings(c).debian_mirror, force_debootstrap=force
    )


def _build_task(variant: str, names: tuple[str, ...], doc: str) -> Any:
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
    return task(help={**HELP["build-options"], **HELP.get(f"build-{variant}", {})})(body)


_SOURCE_OPTIONS = ("tag", "caffe_src", "caffe_repo", "caffe_ref", "jobs", "no_cache", "distro")
build_cpu = _build_task(
    "cpu", _SOURCE_OPTIONS,
    "Build the CPU image: Caffe compiled WITH_PYTHON_LAYER := 1, CPU_ONLY, OpenBLAS.\n\n"
    "Default source: BVLC master at 9b89154 by git; a fork by --caffe-repo/--caffe-ref, a\n"
    "local tree or .tar.gz by --caffe-src. About 3 to 4 minutes on 2 cores, cached after.",
)  # fmt: skip


@_in_image("train")
@friendly
def train(c: Context, solver: str, layers: list[str] | None = None, weights: str = "",
          snapshot: str = "", resume: bool = False, image: str = "", gpu: str = "",
          overwrite: bool = False, runtime: str = "", memory: str = "") -> None:  # fmt: skip
    """Run `caffe train -solver SOLVER` in the image, as you, in the current directory.

    Your --layers folders are on PYTHONPATH (read-only), the container has no network, and
    each run writes a run record (train.log, iterations.csv, run.json) beside its
    snapshots: see training.md.
    """
    from caffebox import launch, training

    s = _settings(c)
    options = training.TrainOptions(
        solver=solver, image=image or s.image, layer_dirs=layers or [], weights=weights,
        snapshot=snapshot, resume=resume, gpu=gpu, overwrite=overwrite,
    )  # fmt: skip
    target = _target(c, image, runtime, memory)
    options.image = target.image
    code, message = launch.train(target, training.plan(options))
    if code != 0:
        raise Exit("caffebox: " + message, code=code)


@task(help=HELP["test"])
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


def _target(c: Context, image: str = "", runtime: str = "", memory: str = "") -> Any:
    """The image a task runs, from its options and the settings (--memory overrides the
    memory_limit setting for this run)."""
    from caffebox import launch

    if memory:
        c.config.caffebox.memory_limit = memory
    return launch.Target.from_settings(_settings(c), image, runtime)


def _run_tool(
    c: Context, command: list[str], layers: list[str] | None, image: str, gpu: str = "",
    runtime: str = "", modules: tuple[str, ...] = (), memory: str = "",
) -> None:
    """Run a command in the image as `train` runs Caffe: cwd mounted, layer dirs on PYTHONPATH,
    the --gpu devices handed in (seen inside as 0..n-1); `modules` (of the layer dirs) must
    parse as Python 3 first."""
    from caffebox import gpus, launch, layer_sources, runs

    cwd = Path.cwd().resolve()
    target = _target(c, image, runtime, memory)
    spec = runs.RunSpec(
        image=target.image, command=command, cwd=cwd,
        layer_dirs=runs.check_layer_dirs(layers or [], cwd),
        gpus=gpus.parse_gpus(gpu) if gpu else [],
    )  # fmt: skip
    layer_sources.check_python3(modules, spec.layer_dirs, cwd)
    code = launch.run_program(target, spec)
    if code != 0:
        raise Exit(code=code)


@_in_image("gradcheck", iterable=("input",))
@friendly
def gradcheck(c: Context, layer: str, input: list[str] | None = None,
              layers: list[str] | None = None, outputs: int = 1, param_str: str = "",
              propagate_down: str = "", step: float = 1e-2, threshold: float = 1e-3,
              kink: float = 0.0, kink_range: float = -1.0, seed: int = 1701, image: str = "",
              gpu: str = "", runtime: str = "", memory: str = "") -> None:  # fmt: skip
    """Check a Python layer's backward numerically on real pycaffe; non-zero exit on failure.

    LAYER is module.Class; one --input NAME=SHAPE per bottom. A failure prints the worst
    elements (analytic against numeric) and exits 1.
    """
    from caffebox import layer_checks

    options = layer_checks.GradcheckOptions(
        layer=layer, inputs=input or [], outputs=outputs, param_str=param_str,
        propagate_down=propagate_down, step=step, threshold=threshold, kink=kink,
        kink_range=kink_range, seed=seed, gpu=gpu,
    )  # fmt: skip
    _run_tool(c, layer_checks.gradcheck_command(options), layers, image, gpu, runtime,
              modules=(layer.rpartition(".")[0],), memory=memory)  # fmt: skip


@_in_image("python")
@friendly
def python(c: Context, script: str, layers: list[str] | None = None, image: str = "",
           gpu: str = "", runtime: str = "", memory: str = "") -> None:  # fmt: skip
    """Run a Python script in the image (pycaffe, NetSpec, our layers), as you, here."""
    command = ["python3", *split_args(script, "the script and its arguments")]
    _run_tool(c, command, layers, image, gpu, runtime, memory=memory)


def _program_words(remainder: str) -> list[str]:
    """The words after '--' as the shell gave them (invoke joins them with spaces, which
    loses a quoted 'my dir/'); its own string split like a shell when argv is not ours."""
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    if argv and " ".join(argv) == remainder:
        return argv
    return split_args(remainder, "the program and its arguments")


@_in_image("run")
@friendly
def run_task(
    c: Context, layers: list[str] | None = None, image: str = "", gpu: str = "",
    runtime: str = "", memory: str = "",
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
    _run_tool(c, words, layers, image, gpu, runtime, memory=memory)


@_in_image("time")
@friendly
def time_task(c: Context, net: str, iterations: int = 50, layers: list[str] | None = None,
              image: str = "", gpu: str = "", csv: str = "",
              runtime: str = "", memory: str = "") -> None:  # fmt: skip
    """`caffe time` per layer, sorted, Python layers marked with their share of the step.

    The TRAIN phase of NET, as a table per layer (forward, backward, share of the step).
    """
    from caffebox import timing

    timing.time_net(
        _target(c, image, runtime, memory), net, iterations=iterations,
        gpu=gpu, layer_dirs=layers, csv_file=csv,
    )  # fmt: skip


@_in_image("test-layers", positional=["path"])
@friendly
def test_layers(c: Context, path: str, pytest_args: str = "", layers: list[str] | None = None,
                image: str = "", gpu: str = "", runtime: str = "",
                memory: str = "") -> None:  # fmt: skip
    """Run your layers' pytest suite inside the image, on real pycaffe, with fixtures.

    PATH (e.g. tests) is put on PYTHONPATH; the suite gets the layer_net and
    gradient_check fixtures (see python-layers.md).
    """
    from caffebox import layer_checks

    args = split_args(pytest_args, "--pytest-args")
    command, folder = layer_checks.test_layers_command(path, args)
    tests = tuple(p.stem for p in folder.glob("*.py")) if folder.is_dir() else ()
    _run_tool(c, command, [str(folder), *(layers or [])], image, gpu, runtime, modules=tests,
              memory=memory)  # fmt: skip


build_gpu = _build_task(
    "gpu", (*_SOURCE_OPTIONS, "cuda_arch", "cuda", "base_image", "runtime_image",
            "compile_only"),
    "Build the GPU image: CUDA, cuDNN (8/9 via caffebox's compat header), NCCL, CuPy.\n\n"
    "On caffebox's offline CUDA 12 base on Debian 13 by default (made when missing), so it\n"
    "has the cpu image's Python and numpy; --cuda 13 for R580+ drivers; NVIDIA's images by\n"
    "--base-image and --runtime-image (see gpu.md).",
)  # fmt: skip


@task(help=HELP["cuda-base"])
@friendly
def cuda_base(c: Context, tag: str = "", base: str = "", distro: str = "",
              cuda: str = "12") -> None:  # fmt: skip
    """Make an offline CUDA build base, cuDNN 9 and NCCL included, from Debian and PyPI.

    build-gpu makes the one it needs when it is missing; this makes one ahead, or another
    CUDA. Beside TAG it makes TAG-runtime, the shared libraries without the toolkit.
    """
    from caffebox import engine, images

    major = cuda.split(".")[0]
    # CUDA 11.8 is Debian 12's own package: that base is always made on bookworm.
    distro = distro or ("bookworm" if major == "11" else _settings(c).distro)
    tag = tag or cuda_offline_base(distro, cuda)
    images.build_cuda_offline_base(
        engine.connect(), tag, base or debian_image(distro), _settings(c).ca_certificates,
        cuda=cuda,
    )  # fmt: skip


@task(help=HELP["build-project"])
@friendly
def build_project(c: Context, image: str = "") -> None:
    """Build the project image from the caffebox.toml here (or above) and print its tag.

    Every task that runs the image builds it when it is missing; this builds it ahead (for
    export, publish or a CI job). Progress goes to stderr, the tag alone to stdout.
    """
    from caffebox import launch

    target = launch.Target.from_settings(_settings(c), image)
    if target.project is None:
        raise CaffeboxError(
            f"There is no caffebox.toml in {Path.cwd()} or a folder above it. Write one in "
            "the project's folder: [image] with apt = [...], pip = [...] (see 'Bringing an "
            "old project' in the docs, docs/old-projects.md)."
        )
    print(launch.ready(launch.connect(target), target, out=sys.stderr))


@task(help=HELP["export"])
@friendly
def export(
    c: Context, image: str, out: str, without_cuda_libs: bool = False, level: int = 10
) -> None:
    """Write an image's root filesystem as a .tar.zst for ch-run, Apptainer or chroot.

    The export carries a caffebox-run entry; `export IMAGE DIR/` unpacks it into DIR for
    --runtime charliecloud (see clusters.md).
    """
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


@_in_image("sweep", iterable=("set",))
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
    memory: str = "",
) -> None:
    """Train a grid of settings: local runs N at a time, or a Slurm job array.

    --set NAME=V1,V2 per axis (solver fields, or a layer's param_str key as
    LAYER.param_str.KEY); `sweep --status DIR` reports a sweep (see clusters.md).
    """
    from caffebox import sweeping

    target = _target(c, image, runtime, memory)
    options = sweeping.SweepOptions(
        solver=solver, settings=set or [], parallel=parallel, resume=resume,
        layer_dirs=layers or [], image=target.image, gpu=gpu, slurm=slurm,
        slurm_args=slurm_args, wait=wait, target=target,
    )  # fmt: skip
    code = sweeping.status(options) if status else sweeping.sweep(options)
    if code:
        raise Exit(code=code)


@task(help=HELP["modernize"])
@friendly
def modernize(c: Context, paths: str, write: bool = False) -> None:
    """Port Caffe-era Python (2015-2018) to the image's Python 3 and numpy: a diff, or --write.

    fissix for Python 2, ruff's NumPy rules for numpy's removed names, caffebox's own
    fixers for yaml.load, .pyx files, stale generated C and integer division.
    """
    from caffebox import modernize as modernizer

    modernizer.modernize(split_args(paths, "the paths"), write=write)


@task(help=HELP["plot"])
@friendly
def plot(c: Context, runs: str, out: str = "curves.png") -> None:
    """Draw train loss and test outputs of one or several run records on one figure."""
    from caffebox import plots

    folders, target = plots.plot_runs(split_args(runs, "the run folders"), Path(out).resolve())
    print(f"caffebox: plotted {len(folders)} run(s) into {target}")


@task(help=HELP["publish"])
@friendly
def publish(c: Context, image: str = "", registry: str = "", dry_run: bool = False) -> None:
    """Push an image under every tag of the scheme (cpu, cpu-bvlc9b89154-py3.11, ...)."""
    from caffebox import engine, publishing

    s = _settings(c)
    publishing.publish(engine.connect(), image or s.image, registry or s.registry, dry_run=dry_run)


@task(help=HELP["pull"])
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
    build_project,
    train,
    gradcheck,
    test_layers,
    python,
    run_task,
    time_task,
    export,
    sweep,
    plot,
    modernize,
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
