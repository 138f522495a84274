"""Charliecloud as caffebox's engine, for hosts (Slurm nodes) where Docker is not allowed.

An unpacked export (`caffebox export IMAGE DIR/`) is the image; `ch-run` starts the
program in it, unprivileged, as the user. `ChClient` answers the few calls caffebox makes
of a Docker client (images.get, containers.create, info, version), so runs.run drives a
ch-run process exactly as it drives a container: the same log, progress, record, lock and
signals (ch-run execs the program, so Caffe itself gets the SIGINT and snapshots).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caffebox import contract
from caffebox.errors import CaffeboxError
from caffebox.export import ENTRY, FACTS


def check_rootfs(path: Path) -> Path:
    """An unpacked caffebox export, or one paragraph saying how to make one."""
    if not (path / ENTRY).is_file():
        raise CaffeboxError(
            f"--runtime charliecloud runs an unpacked caffebox export, and {path} is not one "
            f"(no /{ENTRY} in it). Make it with 'caffebox export caffebox:cpu {path}/' (on a "
            "machine with Docker, onto the shared filesystem), then pass --image "
            f"{path}."
        )
    if shutil.which("ch-run") is None:
        raise CaffeboxError(
            "--runtime charliecloud needs Charliecloud's ch-run on this machine's PATH "
            "(Debian: apt-get install charliecloud-runtime; clusters: 'module load "
            "charliecloud')."
        )
    return path


class ChContainer:
    """One ch-run process, behaving as runs.run expects of a container."""

    def __init__(self, rootfs: Path, options: dict[str, Any]) -> None:
        self.rootfs, self.options = rootfs, options
        self.proc: subprocess.Popen[bytes] | None = None
        self.home = ""
        self.attrs: dict[str, Any] = {"State": {"Status": "created", "Running": False}}

    def _command(self) -> list[str]:
        o = self.options
        command = ["ch-run"]
        for mount in o.get("mounts", []):
            source, target = mount["Source"], mount["Target"]
            inside = self.rootfs / target.lstrip("/")
            # ch-run shares the host's /tmp: a folder there needs no mount point of its own.
            if not inside.exists() and not target.startswith("/tmp/"):
                try:  # a bind needs its mount point in the image (the user owns the folder)
                    inside.mkdir(parents=True)
                except OSError as exc:
                    raise CaffeboxError(
                        f"ch-run needs a folder {target} inside {self.rootfs} to bind "
                        f"{source} there, and cannot make it ({exc.strerror}). Unpack the "
                        "export where you may write, or make the folder once as its owner."
                    ) from None
            command += ["-b", f"{source}:{target}"]
        command += ["-c", o["working_dir"], str(self.rootfs), "--"]
        cpus = o.get("cpuset_cpus")
        if cpus and shutil.which("taskset"):
            command += ["taskset", "-c", cpus]
        return [*command, f"/{ENTRY}", *o["command"]]

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **self.options.get("environment", {})}
        self.home = tempfile.mkdtemp(prefix="caffebox-home-")  # on /tmp, which ch-run shares
        env["HOME"] = self.home
        env.setdefault("USER", os.environ.get("USER") or str(os.getuid()))
        for request in self.options.get("device_requests") or []:
            ids = request.get("DeviceIDs") or []
            if ids:  # --gpu 0,1: those host GPUs, numbered 0.. inside as with Docker
                env["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
        return env

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self._command(), env=self._env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def reload(self) -> None:
        """The process's state in the engine's words (State.Running, ExitCode)."""
        if self.proc is None:
            return
        code = self.proc.poll()
        state = {"Status": "running", "Running": True} if code is None else {
            "Status": "exited", "Running": False, "ExitCode": 128 - code if code < 0 else code,
        }  # fmt: skip
        self.attrs = {"State": state}

    def logs(self, *, stream: bool = True, follow: bool = True) -> Iterator[bytes]:
        assert self.proc is not None and self.proc.stdout is not None
        out = self.proc.stdout
        while True:
            chunk = out.read1(65536) if isinstance(out, io.BufferedReader) else out.read(65536)
            if not chunk:
                return
            yield chunk

    def kill(self, signal: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal)

    def wait(self, *, timeout: float | None = None) -> dict[str, int]:
        assert self.proc is not None
        code = self.proc.wait()
        return {"StatusCode": 128 - code if code < 0 else code}

    def remove(self, *, force: bool = False) -> None:
        self.kill()
        if self.proc is not None:
            self.proc.wait()
        if self.home:
            shutil.rmtree(self.home, ignore_errors=True)


@dataclass
class ChImage:
    """An unpacked export's facts (caffebox-facts.json), as an engine's image."""

    id: str
    labels: dict[str, Any]
    attrs: dict[str, Any]


class _ChImages:
    def __init__(self, rootfs: Path) -> None:
        self.rootfs = rootfs

    def get(self, name: str) -> ChImage:
        facts_file = self.rootfs / FACTS
        facts = json.loads(facts_file.read_text()) if facts_file.is_file() else {}
        return ChImage(
            id=facts.get("id", ""), labels=facts.get("labels") or {},
            attrs={"RepoDigests": facts.get("digests") or [], "Config": {"Entrypoint": None}},
        )  # fmt: skip


class _ChContainers:
    def __init__(self, rootfs: Path) -> None:
        self.rootfs = rootfs

    def create(self, **options: Any) -> ChContainer:
        return ChContainer(self.rootfs, options)


class ChClient:
    """The engine calls of caffebox's run path (caffebox.contract.Engine), answered by an
    unpacked export and ch-run."""

    def __init__(self, rootfs: Path) -> None:
        self.rootfs = rootfs
        self.images = _ChImages(rootfs)
        self.containers = _ChContainers(rootfs)

    def info(self) -> dict[str, Any]:
        return {"Runtimes": {}, "SecurityOptions": ["name=rootless"]}

    def version(self) -> dict[str, Any]:
        return {"Components": [{"Name": "Charliecloud ch-run"}]}


def _implements(client: ChClient) -> contract.Engine:
    """mypy's check that ChClient keeps the contract (never called)."""
    return client
