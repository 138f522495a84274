"""One fake Docker engine for the unit tests: images by name (with caffebox's labels and
entrypoint), the runtimes `docker info` lists, containers that print lines and react to
signals as Caffe does, and the build calls `images.build` makes (recorded).

It keeps the engine contract (caffebox/contract.py): mypy checks `_implements` below, so a
call the run path starts making fails the type check here first."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

import docker

from caffebox import contract


class FakeContainer:
    """Prints `lines`, then trains on until a signal; SIGINT makes it snapshot and stop
    unless `deaf`, SIGKILL always ends it."""

    def __init__(self, lines: list[str], deaf: bool = False, start_error=None, forever=True,
                 oom_killed: bool = False):  # fmt: skip
        self.lines, self.deaf, self.start_error, self.forever = lines, deaf, start_error, forever
        # What the engine's inspect says after the run (the memory limit killed it).
        self.attrs: dict[str, Any] = {"State": {"OOMKilled": oom_killed}}
        # Called once its lines are out: the moment a test's "user" presses Ctrl-C.
        self.on_running = lambda: None
        self.killed: list[int] = []
        self.removed = False
        self.ended = threading.Event()

    def start(self) -> None:
        if self.start_error:
            raise self.start_error

    def logs(self, *, stream: bool, follow: bool) -> Iterator[bytes]:
        for line in self.lines:
            yield (line + "\n").encode()
        self.on_running()
        if self.forever:
            self.ended.wait(30)
        if self.killed[:1] == [signal.SIGINT] and not self.deaf:
            yield b"I1126 solver.cpp:464] Snapshotting solver state to binary proto file "
            yield b"my snaps/d_iter_300.solverstate\nI1126 caffe.cpp:259] Optimization stopped"
            yield b" early.\n"

    def kill(self, signal: int = signal.SIGKILL) -> None:
        self.killed.append(signal)
        if signal == 9 or not self.deaf:
            self.ended.set()

    def reload(self) -> None:
        pass

    def wait(self, *, timeout: float | None = None) -> dict[str, int]:
        return {"StatusCode": 137 if signal.SIGKILL in self.killed else 0}

    def remove(self, *, force: bool = False) -> None:
        self.removed = True


@dataclass
class FakeImage:
    labels: dict[str, Any]
    attrs: dict[str, Any]
    id: str = "sha256:x"
    short_id: str = "sha256:x"
    tags: list[str] = field(default_factory=list)
    remove: Callable[..., None] = lambda *a, **k: None


class _Images:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def get(self, name: str) -> FakeImage:
        if self.engine.images_here is not None and name not in self.engine.images_here:
            raise docker.errors.ImageNotFound(name)
        variant = (self.engine.images_here or {}).get(name, "cpu")
        entry = ["/usr/bin/tini", "-g", "--"] if name.startswith("caffebox") else None
        return FakeImage(labels={"io.caffebox.variant": variant},
                         attrs={"Config": {"Entrypoint": entry}})

    def build(self, **kwargs: Any):
        self.engine.calls.append(kwargs)
        return self.engine.build(**kwargs)

    def remove(self, *args: Any, **kwargs: Any) -> None:
        pass


class _Api:
    """The low-level client images.build streams from."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def build(self, **kwargs: Any):
        self.engine.calls.append(kwargs)
        return self.engine.build(**kwargs)


class _Containers:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def create(self, **options: Any) -> FakeContainer:
        if self.engine.create_error:
            raise self.engine.create_error
        self.engine.created.append(options)
        assert self.engine.container is not None, "FakeEngine(container=...) for runs"
        return self.engine.container

    def run(self, *args: Any, **kwargs: Any) -> bytes:
        """images.read_versions' probe of a freshly built image."""
        return b"PYTHON_VERSION=3.11.2\nNUMPY_VERSION=1.24.2\nCAFFE_COMMIT=abc\nCUDA_VERSION=\n"


class FakeEngine:
    """`images_here`: name -> variant label (None: every image exists, as 'cpu');
    `runtimes`: what `docker info` lists; `container`: what create returns. Subclasses
    override `build` (one build call's stream of chunks)."""

    def __init__(self, images_here: dict[str, str] | None = None, runtimes=("runc",),
                 container: FakeContainer | None = None, create_error=None) -> None:  # fmt: skip
        self.images_here = None if images_here is None else dict(images_here)
        self.runtimes, self.container, self.create_error = runtimes, container, create_error
        self.calls: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []
        self.images, self.containers, self.api = _Images(self), _Containers(self), _Api(self)

    def info(self) -> dict[str, Any]:
        return {"Runtimes": {r: {} for r in self.runtimes}, "SecurityOptions": [],
                "MemTotal": 8 * 2**30}

    def version(self) -> dict[str, Any]:
        return {"Components": [{"Name": "Engine"}]}

    def build(self, **kwargs: Any):
        return iter([{"stream": "ok\n"}])


def _implements(engine: FakeEngine) -> contract.Engine:
    """mypy's check that the fake keeps the engine contract (never called)."""
    return engine
