"""Running a command in a container: the options as plain data, then the run itself.

`container_options` is pure (unit-tested without an engine); `run` starts the
container under an init process, hands each output line to the caller's `Watch`,
turns Ctrl-C, SIGTERM and SIGHUP into a SIGINT for the program (Caffe snapshots and
stops on it), kills it after a bounded wait, and removes the container however
caffebox itself ends. Nothing here knows Caffe's log: training watches it.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import docker
import requests
from docker.types import Mount

from caffebox import contract, gpus, paths
from caffebox.errors import CaffeboxError

# Every container a task runs in carries this label, so tests and users can find leftovers
# (image builds also start short-lived ones to read versions: images.py labels them too).
RUN_LABEL = "io.caffebox.run"
CONTAINER_HOME = "/tmp/caffebox-home"
# What ends a run early: Ctrl-C, `kill`/`timeout`/CI cancel, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# After asking Caffe to snapshot and stop, how long it may take before it is killed (the
# stop_grace setting's default).
GRACE_SECONDS = 60.0
# How long one wait for a container's end may block before its state is read instead.
WAIT_STEP = 10
# Seconds without output before the engine is asked whether the container still runs, and
# after it has said no before the log is taken as ended.
QUIET_CHECK = 2.0


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
    # CPUs the container may use ('0-1'), for runs side by side; '' = all.
    cpuset: str = ""
    # Ask the engine for its init: for images without their own (caffebox images run tini).
    init: bool = True
    # The engine is Podman (its tmpfs takes no uid=), rootless (the user is root inside).
    podman: bool = False
    rootless: bool = False
    # Bounds on a runaway layer: processes (0 = none) and memory in bytes (0 = none).
    pids_limit: int = 0
    memory: int = 0
    # Seconds a stop signal gives the program before it is killed (setting stop_grace).
    stop_grace: float = GRACE_SECONDS
    # (name, soft, hard) resource limits asked for explicitly: Podman otherwise raises
    # nofile/nproc past what root may set where it lacks CAP_SYS_RESOURCE (-1: unlimited).
    ulimits: tuple[tuple[str, int, int], ...] = ()


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


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def mounts(spec: RunSpec) -> list[Mount]:
    """The current folder read-write at its own path; each layer folder outside it read-only.

    A layer folder inside the current folder is already there, writable: mounting it again
    read-only would hide the user's snapshots and outputs under it.
    """
    found = [Mount(str(spec.cwd), str(spec.cwd), type="bind", read_only=False)]
    for folder in spec.layer_dirs:
        if not _inside(folder, spec.cwd) and not any(m["Target"] == str(folder) for m in found):
            found.append(Mount(str(folder), str(folder), type="bind", read_only=True))
    if spec.project_layers is not None and spec.project_layers.is_dir():
        # The host's caffebox_layers (a checkout's layers/ when installed editable) over the
        # image's copy: edits apply without a rebuild.
        found.append(
            Mount(paths.IMAGE_LAYERS_DIR, str(spec.project_layers), type="bind", read_only=True)
        )
    return found


def container_options(spec: RunSpec) -> dict[str, Any]:
    """Keyword arguments for `client.containers.create`, as plain data."""
    env = {
        "PYTHONPATH": python_path(spec),
        "HOME": CONTAINER_HOME,
        "PYTHONUNBUFFERED": "1",
        "GLOG_logtostderr": "1",
        # Caffe's log as parse_log.py reads it (glog 0.6 would prefix the year).
        "GLOG_log_year_in_prefix": "0",
    }
    if spec.cpuset:
        threads = str(_count_cpus(spec.cpuset))
        env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
    env.update(spec.env)
    extra: dict[str, Any] = {"cpuset_cpus": spec.cpuset} if spec.cpuset else {}
    if spec.pids_limit > 0:
        extra["pids_limit"] = spec.pids_limit
    if spec.memory > 0:  # and no swap beyond it: a leak ends, it does not thrash the host
        extra.update(mem_limit=spec.memory, memswap_limit=spec.memory)
    if spec.ulimits:
        extra["ulimits"] = [docker.types.Ulimit(name=n, soft=s, hard=h) for n, s, h in spec.ulimits]
    # Docker: a private HOME owned by the user. Podman refuses a tmpfs's uid=/gid= options;
    # its HOME is a sticky world-writable tmpfs (one user in the container anyway).
    home = "mode=1777" if spec.podman else f"uid={spec.uid},gid={spec.gid},mode=0700"
    # Rootless Podman maps the user who runs it to root inside (its user namespace): root
    # in there writes files the user owns out here, where another uid could not write at
    # all. (Docker's SDK refuses Podman's userns_mode=keep-id.)
    user = "0:0" if spec.podman and spec.rootless else f"{spec.uid}:{spec.gid}"
    return {
        **extra,
        "image": spec.image,
        "command": list(spec.command),
        "user": user,
        "working_dir": str(spec.cwd),
        "mounts": mounts(spec),
        "environment": env,
        # An init as PID 1 (the image's tini, else the engine's): Caffe's own crash
        # handlers (double free, CHECK) then end the container instead of hanging in PID 1's
        # signal semantics, and signals reach it.
        "init": spec.init,
        "network_mode": "none",
        "security_opt": ["no-new-privileges"],
        "cap_drop": ["ALL"],
        # The image's files read-only: a layer writes to the project, HOME or /tmp only.
        "read_only": True,
        "tmpfs": {CONTAINER_HOME: home, "/tmp": "mode=1777"},
        "labels": {RUN_LABEL: "1"},
        "device_requests": gpus.device_requests(spec.gpus),
        "detach": True,
        "tty": False,
        "stdin_open": False,
    }


def _count_cpus(cpuset: str) -> int:
    """'0-1,4' -> 3."""
    total = 0
    for part in cpuset.split(","):
        low, _, high = part.partition("-")
        total += int(high or low) - int(low) + 1
    return total


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


class Watch(Protocol):
    """What follows a run's output: training's log parser, progress bar and record."""

    def line(self, text: str, seconds: float) -> None:
        """One line of output, `seconds` after the start (already printed)."""

    def clear(self) -> None:
        """Before caffebox prints a line of its own (a progress bar steps aside)."""

    def finish(self) -> None:
        """The output has ended."""


class _Quiet:
    def line(self, text: str, seconds: float) -> None:
        pass

    def clear(self) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class RunResult:
    exit_code: int
    tail: list[str]
    # The first signal that asked caffebox to stop (SIGINT for Ctrl-C), 0 when none did.
    stop_signal: int = 0
    # The engine killed it for going over its memory limit.
    oom_killed: bool = False

    @property
    def interrupted(self) -> bool:
        return self.stop_signal != 0


@contextmanager
def caught_signals(shared: list[int] | None = None) -> Iterator[list[int]]:
    """Record STOP_SIGNALS in a list instead of dying; restores the old handlers after.

    With `shared` (a list some main thread's handler fills), just use that.
    """
    if shared is not None:
        yield shared
        return
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught  # only the main thread may set handlers; nothing else gets signals
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, _frame: caught.append(signum))
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def engine_error(image: str, exc: docker.errors.DockerException) -> CaffeboxError:
    """An engine refusal at container start, as one paragraph."""
    reason = getattr(exc, "explanation", None) or str(exc)
    return CaffeboxError(
        f"The Docker engine refused to start a container from {image}: {reason}. Check that "
        "the image exists ('docker images'), that the folders caffebox mounts (the current "
        "folder and each --layers folder) exist, and that the engine is healthy ('docker "
        "info'); then run the command again.",
        exit_code=1,
    )


def missing_command(result: RunResult, spec: RunSpec) -> str:
    """A paragraph when the image lacked the command itself (the init could not exec it)."""
    text = "\n".join(result.tail[-5:])
    if result.exit_code == 127 and "exec" in text and "failed" in text:
        return (
            f"The image {spec.image} has no {spec.command[0]!r} to run (the container's init "
            f"said: {text.strip()}). A caffebox image has python3, Caffe's tools (caffe, "
            "convert_imageset, compute_image_mean, extract_features, upgrade_net_proto_text, "
            "...) and the tree's Python scripts (classify.py, draw_net.py, parse_log.py, ...) "
            "on PATH: 'caffebox run -- ls /opt/caffe/bin /opt/caffe/scripts' lists them. Check "
            "the name, or pass --image with an image that has the program."
        )
    return ""


# What Caffe prints when a gpu build finds no usable GPU or driver.
NO_GPU_ERRORS = ("no CUDA-capable device is detected", "CUDA driver version is insufficient")
# The oldest NVIDIA driver branch each CUDA major runs on (12 and 11 through minor-version
# compatibility: code compiled to the GPU's own architecture; PTX JIT needs the CUDA
# release's own driver).
DRIVER_FOR_CUDA = {"11": "R450", "12": "R525", "13": "R580"}


def no_gpu(result: RunResult, spec: RunSpec, cuda: str) -> str:
    """A paragraph when a gpu image's program found no GPU or no driver new enough, naming
    the driver the image's CUDA needs; '' otherwise."""
    text = "\n".join(result.tail)
    if result.exit_code == 0 or not cuda or not any(m in text for m in NO_GPU_ERRORS):
        return ""
    driver = DRIVER_FOR_CUDA.get(cuda.split(".")[0], "one made for it")
    said = next(m for m in NO_GPU_ERRORS if m in text)
    if spec.gpus:
        given = (f"it was started with --gpu {','.join(spec.gpus)}, so check nvidia-smi on "
                 "this host and the driver's branch")
    else:
        given = ("it was started without --gpu, so the container has no GPU and no driver: "
                 "pass --gpu 0 on a host with an NVIDIA GPU and NVIDIA's container runtime")
    return (
        f"{spec.command[0]} exited with {result.exit_code}: Caffe found no usable GPU "
        f"('{said}'). {spec.image} is built with CUDA {cuda}, which needs an NVIDIA driver "
        f"{driver} or newer on the host; {given}. For a host without a GPU, use the cpu image "
        "(caffebox build-cpu)."
    )


def signal_name(signum: int) -> str:
    """How people call a stop signal: Ctrl-C for SIGINT, else its name."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def run(
    client: contract.Engine,
    spec: RunSpec,
    watch: Watch | None = None,
    out: TextIO = sys.stdout,
    caught: list[int] | None = None,
    asking: str = "asking it to stop",
) -> RunResult:
    """Run `spec` to completion, printing its output to `out`; its exit status and tail.

    `watch` sees every line; `asking` is what the first stop signal says it does (for
    Caffe: "asking Caffe to snapshot and stop"). Runs in other threads (a sweep) pass
    `caught`, the list the main thread's signal handler fills.
    """
    watch = watch or _Quiet()
    tail: deque[str] = deque(maxlen=60)
    with caught_signals(caught) as caught:
        try:
            container = client.containers.create(**container_options(spec))
        except docker.errors.DockerException as exc:
            raise engine_error(spec.image, exc) from None
        try:
            try:
                container.start()
            except docker.errors.DockerException as exc:
                raise engine_error(spec.image, exc) from None
            lines = _read_lines(container)
            stopper = _Stopper(container, caught, spec.stop_grace, asking, out, watch)
            gone = _GoneWhileLogOpen(container)
            started = time.monotonic()
            while True:
                stopper.poll()
                try:
                    line = lines.get(timeout=0.2)
                except queue.Empty:
                    if gone.check():
                        break
                    continue
                gone.heard()
                if line is None:
                    break
                watch.clear()
                out.write(line + "\n")
                out.flush()
                tail.append(line)
                watch.line(line, time.monotonic() - started)
            watch.finish()
            exit_code = _exit_code(container)
            oom = _oom_killed(container)
        finally:
            try:
                container.remove(force=True)
            except docker.errors.APIError:  # gone already
                pass
    return RunResult(exit_code=exit_code, tail=list(tail), stop_signal=caught[0] if caught else 0,
                     oom_killed=oom)


def _read_lines(container: contract.Container) -> queue.Queue[str | None]:
    """The container's output, line by line, from a thread of its own; None at the end."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        try:
            for line in _lines(container.logs(stream=True, follow=True)):
                lines.put(line)
        except docker.errors.DockerException:
            pass  # the container went away
        finally:
            lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


class _Stopper:
    """The stop signals a run gets: the first asks the program to stop (SIGINT to the
    container) and starts the grace; a second signal, or the grace's end, kills it."""

    def __init__(self, container: contract.Container, caught: list[int], grace: float,
                 asking: str, out: TextIO, watch: Watch) -> None:  # fmt: skip
        self.container, self.caught, self.grace = container, caught, grace
        self.asking, self.out, self.watch = asking, out, watch
        self.handled = 0
        self.deadline: float | None = None

    def poll(self) -> None:
        while len(self.caught) > self.handled:  # each signal once, two at once included
            self.handled += 1
            self.watch.clear()
            if self.deadline is None:
                self.out.write(
                    f"caffebox: {signal_name(self.caught[0])}: {self.asking} (up to "
                    f"{self.grace:.0f} s; press Ctrl-C again to kill it)\n"
                )
                self.out.flush()
                self.deadline = time.monotonic() + self.grace
                _kill(self.container, signal.SIGINT)
            else:
                self.out.write("caffebox: stopping it now\n")
                self.deadline = 0.0
        if self.deadline is not None and time.monotonic() >= self.deadline:
            _kill(self.container, signal.SIGKILL)
            self.deadline = float("inf")


class _GoneWhileLogOpen:
    """Podman 4.3's followed log can stay open after the container exits: once it has been
    gone for a whole QUIET_CHECK with nothing more said, reading stops."""

    def __init__(self, container: contract.Container) -> None:
        self.container = container
        self.quiet_since: float | None = None
        self.ended_at: float | None = None

    def heard(self) -> None:
        self.quiet_since = self.ended_at = None

    def check(self) -> bool:
        """After a silence: True when the container is gone and has said nothing since."""
        now = time.monotonic()
        self.quiet_since = self.quiet_since or now
        if now - self.quiet_since <= QUIET_CHECK:  # once per QUIET_CHECK of silence
            return False
        self.quiet_since = now
        if not _exited(self.container):
            self.ended_at = None
            return False
        if self.ended_at is not None:
            return True
        self.ended_at = now
        return False


def _oom_killed(container: contract.Container) -> bool:
    """The engine's word that the memory limit killed it (exit 137 alone could be anything)."""
    try:
        container.reload()
    except docker.errors.DockerException:  # gone already: no word from the engine
        return False
    return bool((container.attrs.get("State") or {}).get("OOMKilled"))


def out_of_memory(result: RunResult, spec: RunSpec) -> str:
    """One paragraph for a run the memory limit ended, or ''."""
    if not result.oom_killed:
        return ""
    limit = f"{spec.memory / 2**30:.1f} GiB" if spec.memory else "the engine's limit"
    return (
        f"the container went over its memory limit ({limit}) and was killed (exit "
        f"{result.exit_code}): a layer that leaks or keeps growing, or a batch too large. "
        "Check the layer's memory use; raise the limit with the memory_limit setting "
        "(e.g. INVOKE_CAFFEBOX_MEMORY_LIMIT=32g) if the run really needs more."
    )


def _exited(container: contract.Container) -> bool:
    """True when the engine says the container is no longer running."""
    try:
        container.reload()
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return False  # an engine hiccup: keep reading
    state = container.attrs.get("State") or {}
    return state.get("Running") is False and state.get("Status") != "created"


def _exit_code(container: contract.Container) -> int:
    """The container's exit status. Podman's Docker-compatible wait can hang for ever on a
    container that has already exited (seen with rootless Podman 4.3): wait a little at a
    time, and read the container's state between."""
    while True:
        try:
            return int(container.wait(timeout=WAIT_STEP).get("StatusCode", 1))
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            container.reload()
            state = container.attrs.get("State") or {}
            if not state.get("Running", False) and state.get("Status") != "created":
                return int(state.get("ExitCode", 1))


def _kill(container: contract.Container, sig: int) -> None:
    try:
        container.kill(signal=sig)
    except docker.errors.APIError:
        pass  # it has already exited
