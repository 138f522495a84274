"""One helper owns a test container's life: start, wait, logs, always remove (as
jupyter/docker-stacks' tests/utils/tracked_container.py)."""

from __future__ import annotations

from typing import Any

from caffebox.runs import RUN_LABEL


class TrackedContainer:
    """Containers of one image started by a test; `remove_all` takes every one away."""

    def __init__(self, engine: Any, image: str, **defaults: Any) -> None:
        self.engine, self.image, self.defaults = engine, image, defaults
        self.made: list[Any] = []

    def run(self, command: list[str], **kwargs: Any) -> tuple[int, str]:
        """Run `command` to its end; its exit status and output (stdout and stderr)."""
        options = {"network_mode": "none", **self.defaults, **kwargs}
        options["labels"] = {RUN_LABEL: "1", **options.get("labels", {})}
        container = self.engine.containers.create(self.image, command, **options)
        self.made.append(container)
        container.start()
        code = container.wait()["StatusCode"]
        return code, container.logs().decode(errors="replace")

    def run_ok(self, command: list[str], **kwargs: Any) -> str:
        """run, asserting exit 0; the output."""
        code, out = self.run(command, **kwargs)
        assert code == 0, out
        return out

    def remove_all(self) -> None:
        for container in self.made:
            container.remove(force=True)
        self.made.clear()


def containers_from(engine: Any, *images: str) -> set[str]:
    """The containers made from these images or from images built on them (a project
    image, a build on them): what a test may leave, without the steps of another image
    building beside the tests (the gpu image does)."""
    return {c.id for c in engine.containers.list(all=True, filters={"ancestor": list(images)})}
