"""Running Caffe in a container: the options as plain data, then the run itself.

`container_options` is pure (unit-tested without an engine); `run` starts the
container, streams its log with a progress bar, forwards Ctrl-C as SIGINT so Caffe
snapshots before it stops, and removes the container in every case.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import docker

from caffebox import gpus, paths
from caffebox.caffelog import TrainingLog
from caffebox.errors import CaffeboxError
from caffebox.progress import ProgressBar

# Every container we start carries this label, so tests and users can find leftovers.
RUN_LABEL = "io.caffebox.run"
CONTAINER_HOME = "/tmp/caffebox-home"


@dataclass
class RunSpec:
    """One command to run in the image, as the invoking user, in the current folder."""

    image: str
    command: list[str]
    cwd: Path
    layer_dirs: Sequence[Path] = ()
    uid: int = field(default_factory=os.getuid)
    gid: int = field(default_factory=os.getgid)
    project_layers: Path | None = paths.LAYERS_DIR
    env: dict[str, str] = field(default_factory=dict)
    gpus: list[str] = field(default_factory=list)


def check_layer_dirs(dirs: Iterable[str | os.PathLike[str]], cwd: Path) -> list[Path]:
    """Absolute, existing folders for --layers; one clear error otherwise."""
    found = []
    for raw in dirs:
        path = (cwd / raw).resolve()
        if not path.is_dir():
            raise CaffeboxError(
                f"--layers {raw}: {path} is not a folder. Pass the folder that contains your "
                "layer module (for python_param { module: 'my_layer' } the folder holding "
                "my_layer.py), as with PYTHONPATH=/path/to."
            )
        found.append(path)
    return found


def python_path(spec: RunSpec) -> str:
    """The container's PYTHONPATH: user layer folders first, then pycaffe and ours."""
    parts = [str(d) for d in spec.layer_dirs]
    parts += [
        paths.IMAGE_CAFFE_PYTHON,
        paths.IMAGE_PYDEPS,
        paths.IMAGE_LAYERS_ROOT,
        paths.IMAGE_COMPAT_DIR,
    ]
    return ":".join(parts)


def container_options(spec: RunSpec) -> dict[str, Any]:
    """Keyword arguments for `client.containers.create`, as plain data."""
    volumes: dict[str, dict[str, str]] = {
        str(spec.cwd): {"bind": str(spec.cwd), "mode": "rw"},
    }
    for folder in spec.layer_dirs:
        volumes[str(folder)] = {"bind": str(folder), "mode": "ro"}
    if spec.project_layers is not None and spec.project_layers.is_dir():
        # The checkout's layers/ over the image's copy: edits apply without a rebuild.
        volumes[str(spec.project_layers)] = {"bind": paths.IMAGE_LAYERS_DIR, "mode": "ro"}
    env = {
        "PYTHONPATH": python_path(spec),
        "HOME": CONTAINER_HOME,
        "PYTHONUNBUFFERED": "1",
        "GLOG_logtostderr": "1",
    }
    env.update(spec.env)
    return {
        "image": spec.image,
        "command": list(spec.command),
        "user": f"{spec.uid}:{spec.gid}",
        "working_dir": str(spec.cwd),
        "volumes": volumes,
        "environment": env,
        "network_mode": "none",
        "security_opt": ["no-new-privileges"],
        "cap_drop": ["ALL"],
        "tmpfs": {CONTAINER_HOME: f"uid={spec.uid},gid={spec.gid},mode=0700"},
        "labels": {RUN_LABEL: "1"},
        "device_requests": gpus.device_requests(spec.gpus),
        "detach": True,
        "tty": False,
        "stdin_open": False,
    }


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Text lines from a byte stream that splits anywhere."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode(errors="replace").rstrip("\r")
    if pending:
        yield pending.decode(errors="replace")


@dataclass
class RunResult:
    exit_code: int
    log: TrainingLog
    tail: list[str]
    interrupted: bool = False


def run(
    client: docker.DockerClient,
    spec: RunSpec,
    max_iter: int = 0,
    out: TextIO = sys.stdout,
) -> RunResult:
    """Run `spec` to completion; returns Caffe's exit code and what its log said."""
    container = client.containers.create(**container_options(spec))
    log = TrainingLog()
    tail: deque[str] = deque(maxlen=60)
    bar = ProgressBar(max_iter, stream=sys.stderr)
    interrupted = False
    try:
        container.start()
        since: int | None = None
        while True:
            try:
                stream = container.logs(stream=True, follow=True, since=since)
                for line in _lines(stream):
                    bar.clear()
                    out.write(line + "\n")
                    out.flush()
                    tail.append(line)
                    if log.feed(line):
                        bar.update(log.iteration, log.loss)
                    bar.draw()
                break
            except KeyboardInterrupt:
                bar.clear()
                if interrupted:  # a second Ctrl-C: stop now
                    container.kill()
                    break
                interrupted = True
                out.write(
                    "caffebox: Ctrl-C: asking Caffe to snapshot and stop "
                    "(press Ctrl-C again to kill it)\n"
                )
                container.kill(signal=signal.SIGINT)
                since = int(time.time())
        bar.finish()
        exit_code = int(container.wait().get("StatusCode", 1))
    finally:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
    return RunResult(exit_code=exit_code, log=log, tail=list(tail), interrupted=interrupted)
