"""The engine contract: the calls caffebox's run path makes of an engine, as Protocols.

Three things implement them: the Docker SDK's `docker.DockerClient` (Docker, and Podman
through its Docker-compatible API), `charliecloud.ChClient` (ch-run on an unpacked export,
no engine at all) and the unit tests' `FakeEngine` (tests/support/fakes.py). mypy checks
all three against these (the `_implements` assignments at the bottom of charliecloud.py
and fakes.py, and `engine.connect`'s return), so a new call on the run path (say
`container.stats()`) fails the type check until each of them has it, instead of failing
`--runtime charliecloud` at run time. Building, pushing and pulling are Docker's alone and
stay typed as `docker.DockerClient`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Protocol


class Container(Protocol):
    """One container's life, as runs.run drives it."""

    attrs: dict[str, Any]

    def start(self) -> None: ...

    def logs(self, *, stream: Literal[True], follow: bool) -> Iterable[bytes]: ...

    def kill(self, signal: int) -> None: ...

    def reload(self) -> None: ...

    def wait(self, *, timeout: float | None = None) -> Mapping[str, Any]: ...

    def remove(self, *, force: bool = False) -> None: ...


class Image(Protocol):
    """What caffebox reads of an image: its id, labels and config."""

    @property
    def id(self) -> str | None: ...

    @property
    def labels(self) -> dict[str, Any]: ...

    attrs: dict[str, Any]


class Images(Protocol):
    def get(self, name: str) -> Image: ...


class Containers(Protocol):
    # Each implementation takes the options runs.container_options makes, as keywords;
    # the parameter lists differ (the SDK spells out every option), the result does not.
    @property
    def create(self) -> Callable[..., Container]: ...


class Engine(Protocol):
    """An engine a run can use: Docker's API, Podman's, or ch-run's stand-in."""

    @property
    def images(self) -> Images: ...

    @property
    def containers(self) -> Containers: ...

    def info(self) -> dict[str, Any]: ...

    def version(self) -> dict[str, Any]: ...
