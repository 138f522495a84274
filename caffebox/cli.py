"""The task collection behind both `invoke ...` (via tasks.py) and the `caffebox` command.

Tasks are thin: they read settings from invoke's config, call the modules that do
the work, and turn a CaffeboxError into one paragraph and a non-zero exit.
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
from collections.abc import Callable
from typing import Any

from invoke import Collection, Context, Exit, Program, task

from caffebox import __version__, makeconfig
from caffebox.errors import CaffeboxError
from caffebox.settings import DEFAULTS
from caffebox.variants import get_variant


def friendly(body: Callable[..., Any]) -> Callable[..., Any]:
    """Show CaffeboxError as a plain paragraph with its exit code, no traceback."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except CaffeboxError as exc:
            raise Exit(f"caffebox: {exc}", code=exc.exit_code) from None

    return wrapper


def _settings(c: Context) -> Any:
    return c.config.caffebox


@task(help={"variant": "Which variant to render: cpu (default)."})
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


def build_variant(
    c: Context,
    variant: str,
    tag: str = "",
    caffe_src: str = "",
    caffe_repo: str = "",
    caffe_ref: str = "",
    jobs: int = 0,
    no_cache: bool = False,
) -> str:
    """Build one variant's image from the task options and settings; returns the tag."""
    from caffebox import engine, images
    from caffebox.source import CaffeSource

    s = _settings(c)
    if not (caffe_src or caffe_repo or caffe_ref):
        caffe_src, caffe_repo, caffe_ref = s.caffe_src, s.caffe_repo, s.caffe_ref
    request = images.BuildRequest(
        variant=get_variant(variant),
        source=CaffeSource.from_options(caffe_src or None, caffe_repo or None, caffe_ref or None),
        tag=tag or s[f"{variant}_image"],
        jobs=jobs or s.jobs or None,
        nocache=no_cache,
        ca_certificates=s.ca_certificates,
    )
    images.build(engine.connect(), request)
    return request.tag


_BUILD_HELP = {
    "tag": "Image name to create (setting cpu_image, default caffebox:cpu).",
    "caffe_src": "A local Caffe source folder or .tar.gz to build instead of git.",
    "caffe_repo": "Git URL of a Caffe fork (default BVLC/caffe).",
    "caffe_ref": "Commit, tag or branch to build (default BVLC master 9b89154).",
    "jobs": "Parallel compile jobs (default: all cores).",
    "no_cache": "Rebuild every step, ignoring the engine's cache.",
}


@task(help=_BUILD_HELP)
@friendly
def build_cpu(
    c: Context,
    tag: str = "",
    caffe_src: str = "",
    caffe_repo: str = "",
    caffe_ref: str = "",
    jobs: int = 0,
    no_cache: bool = False,
) -> None:
    """Build the CPU image: Caffe compiled WITH_PYTHON_LAYER := 1, CPU_ONLY, OpenBLAS."""
    build_variant(c, "cpu", tag, caffe_src, caffe_repo, caffe_ref, jobs, no_cache)


@task(
    iterable=["layers"],
    help={
        "solver": "The solver .prototxt, relative to the current directory.",
        "layers": "A folder to put on PYTHONPATH (read-only) for your layer modules; repeatable.",
        "weights": "Initial .caffemodel weights to fine-tune from (comma-separated allowed).",
        "snapshot": "A .solverstate to resume training from.",
        "resume": "Resume from the newest .solverstate under the solver's snapshot_prefix.",
        "image": "Image to run (setting image, default caffebox:cpu).",
    },
)
@friendly
def train(
    c: Context,
    solver: str,
    layers: list[str] | None = None,
    weights: str = "",
    snapshot: str = "",
    resume: bool = False,
    image: str = "",
) -> None:
    """Run `caffe train -solver SOLVER` in the image, as you, in the current directory."""
    from caffebox import engine, runs, training

    s = _settings(c)
    options = training.TrainOptions(
        solver=solver,
        image=image or s.image,
        layer_dirs=layers or [],
        weights=weights,
        snapshot=snapshot,
        resume=resume,
    )
    train_plan = training.plan(options)
    client = engine.connect()
    builder = None
    if options.image == s.cpu_image:

        def builder() -> None:
            build_variant(c, "cpu", tag=options.image)

    training.check_image(client, train_plan, builder)
    result = runs.run(client, train_plan.spec, max_iter=train_plan.solver.max_iter)
    print(training.summary(result))
    if result.exit_code != 0:
        raise Exit(
            "caffebox: " + training.explain_failure(result, train_plan), code=result.exit_code
        )


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

    args = [sys.executable, "-m", "pytest", str(paths.ROOT / "tests")]
    if unit:
        args += ["-m", "not image"]
    if image:
        args += ["--caffebox-image", image]
    command = " ".join(shlex.quote(a) for a in args) + (f" {pytest_args}" if pytest_args else "")
    result = c.run(command, warn=True, pty=False)
    if result is not None and result.exited:
        raise Exit(code=result.exited)


namespace = Collection(config, base_image, build_cpu, train, test)
namespace.configure(DEFAULTS)


class CaffeboxProgram(Program):
    """The `caffebox` command: the same tasks, reading invoke.yaml from the current folder."""

    def update_config(self, merge: bool = True) -> None:
        self.config.set_project_location(os.getcwd())
        self.config.load_project(merge=False)
        super().update_config(merge=merge)


program = CaffeboxProgram(
    namespace=namespace, name="caffebox", binary="caffebox", version=__version__
)
