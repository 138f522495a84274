"""Building caffebox images with the Docker SDK.

The build context is made here (not the whole checkout): the Dockerfile, the build
script, the rendered Makefile.config, the Caffe source and the layers package. The
runtime base (its own Dockerfile) and the build stage are built at the same time, in two
calls; then the `runtime` stage, then the `final` stage whose labels carry the Python and
numpy versions read from the runtime stage itself.
"""

from __future__ import annotations

import io
import re
import sys
import tarfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import docker

from caffebox import __version__, makeconfig, paths, templates
from caffebox.errors import CaffeboxError
from caffebox.runs import RUN_LABEL
from caffebox.source import CaffeSource
from caffebox.variants import Variant


@dataclass
class BuildRequest:
    """Everything one image build needs."""

    variant: Variant
    source: CaffeSource
    tag: str
    jobs: int | None = None
    base_image: str | None = None
    runtime_image: str | None = None
    nocache: bool = False
    ca_certificates: str = "auto"
    compile_only: bool = False
    extra_buildargs: dict[str, str] = field(default_factory=dict)

    def runtime_base_tag(self) -> str:
        """The runtime base's working tag while this image builds."""
        return tag_beside(self.tag, "runtime-base")

    def runtime_base_args(self) -> dict[str, str]:
        """Build arguments for docker/runtime-base.Dockerfile."""
        return {"RUNTIME_IMAGE": self.runtime_image or self.variant.runtime_image}

    def buildargs(self) -> dict[str, str]:
        """Build arguments for the Dockerfile's ARGs."""
        args = {
            "BASE_IMAGE": self.base_image or self.variant.base_image,
            "RUNTIME_BASE": self.runtime_base_tag(),
            "CAFFE_REPO": self.source.repo,
            "CAFFE_REF": self.source.ref,
            "CAFFE_COMMIT": self.source.commit(),
            "EXTRA_BUILD_PACKAGES": " ".join(self.variant.extra_build_packages),
            "JOBS": str(self.jobs) if self.jobs else "",
            "COMPILE_ONLY": "1" if self.compile_only else "",
        }
        args.update(self.extra_buildargs)
        return args


def tag_beside(tag: str, suffix: str) -> str:
    """A tag next to `tag` for an image made on the way: caffebox:cpu -> caffebox:cpu-SUFFIX,
    localhost:5000/caffebox -> localhost:5000/caffebox:SUFFIX."""
    return f"{tag}-{suffix}" if ":" in tag.rsplit("/", 1)[-1] else f"{tag}:{suffix}"


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


# Where distributions keep the system CA bundle: Debian/Ubuntu, RHEL/Fedora, Alpine/SUSE.
SYSTEM_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
)


def certificates_file(setting: str, candidates: tuple[str, ...] = SYSTEM_CA_BUNDLES) -> str:
    """The PEM bundle the build hands to git and pip: by default the host's own.

    The first build then works wherever the host's HTTPS works, proxies that intercept
    TLS included. 'none' (or '') hands none; any other value is a path.
    """
    if setting in ("none", ""):
        return ""
    if setting != "auto":
        return setting
    return next((c for c in candidates if Path(c).is_file()), "")


def read_certificates(setting: str) -> bytes:
    path = certificates_file(setting)
    if not path:
        return b""
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise CaffeboxError(
            f"The CA certificates file {path} (setting ca_certificates) cannot be read "
            f"({exc.strerror}). Point it at a PEM bundle, or set it to 'none' to use none."
        ) from None


def build_context(request: BuildRequest) -> io.BytesIO:
    """The tar stream sent to the engine as the build context."""
    for needed in (paths.DOCKERFILE, paths.TEMPLATE, paths.LAYERS_DIR):
        if not needed.exists():
            raise CaffeboxError(
                f"{needed} is missing from the caffebox installation. Reinstall caffebox "
                "('pip install --force-reinstall caffebox', or 'pip install .' from a clone)."
            )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(paths.DOCKER_DIR), arcname="docker")
        add_bytes(tar, "build/Makefile.config", makeconfig.render(request.variant).encode())
        request.source.add_to_context(tar, "build/caffe-src")
        add_bytes(tar, "build/ca-certificates.crt", read_certificates(request.ca_certificates))
        tar.add(
            str(paths.LAYERS_DIR),
            arcname=paths.LAYERS_PACKAGE,
            filter=lambda ti: None if "__pycache__" in ti.name or ti.name.endswith(".pyc") else ti,
        )
    buf.seek(0)
    return buf


def stream_build(
    client: docker.DockerClient,
    context: io.BytesIO,
    *,
    tag: str | None,
    target: str,
    buildargs: dict[str, str],
    nocache: bool,
    out: TextIO,
    dockerfile: str = "docker/Dockerfile",
    give_up: threading.Event | None = None,
    labels: dict[str, str] | None = None,
    explain: Callable[[str, list[str]], str] | None = None,
) -> None:
    """Run one build, echoing its output; raise with the engine's error on failure (said by
    `explain(error, last lines)` when given). Stops reading (and returns) once `give_up` is
    set: a build beside it failed, and the engine ends this one when the process goes."""
    context.seek(0)
    chunks: Iterable[dict[str, Any]] = client.api.build(
        fileobj=context,
        custom_context=True,
        dockerfile=dockerfile,
        tag=tag,
        target=target or None,
        buildargs=buildargs,
        network_mode="host",
        rm=True,
        forcerm=True,
        nocache=nocache,
        pull=False,
        decode=True,
        labels=labels,
    )
    tail: list[str] = []
    for chunk in chunks:
        if give_up is not None and give_up.is_set():
            return
        if "stream" in chunk:
            text = chunk["stream"]
            out.write(text)
            out.flush()
            tail = (tail + text.splitlines())[-30:]
        elif "error" in chunk:
            detail = chunk["error"].strip()
            if explain is not None:
                raise CaffeboxError(explain(detail, tail))
            hint = _build_hint(detail + "\n" + "\n".join(tail), buildargs)
            where = f"target {target!r}" if target else dockerfile
            raise CaffeboxError(f"The image build failed at {where}: {detail}. {hint}")


def _build_hint(text: str, buildargs: dict[str, str]) -> str:
    steps = re.findall(r"^Step \d+/\d+ : (.+)$", text, re.M)
    base = buildargs.get("BASE_IMAGE") or buildargs.get("RUNTIME_IMAGE", "")
    at_from = bool(steps) and steps[-1].startswith("FROM ")
    if at_from:  # FROM ${NAME} [AS stage]: the image is that build arg's value
        name = steps[-1].split()[1].strip("${}")
        base = buildargs.get(name, name)
    unreachable = any(u in text for u in ("no such host", "dial tcp", "registry-1.docker.io"))
    missing_base = ("not found" in text and base in text) or (at_from and unreachable)
    if "pull access denied" in text or "manifest unknown" in text or missing_base:
        return (
            f"The base image {base} is not on this engine and cannot be pulled: run "
            "'caffebox base-image' to make it with debootstrap, or 'docker pull' it."
        )
    if "Could not resolve" in text or "Temporary failure resolving" in text:
        return "The build needs the network for its packages: check DNS and proxy settings."
    return "The build log above shows the failing step."


def read_versions(client: docker.DockerClient, image: str) -> dict[str, str]:
    """Python, numpy and Caffe commit as installed in `image` (a throwaway container)."""
    script = templates.text("read_versions.py")
    raw = client.containers.run(
        image, ["python3", "-c", script], remove=True, network_mode="none", entrypoint=[],
        labels={RUN_LABEL: "1"},
    )  # fmt: skip
    values = dict(line.split("=", 1) for line in raw.decode().splitlines() if "=" in line)
    return values


def label_args(request: BuildRequest, versions: dict[str, str], commit: str) -> dict[str, str]:
    """Build args of the final (labels) stage only: none is an ARG of the build or runtime
    stage, so passing them does not miss those stages' cache (no second compile)."""
    return {
        "VARIANT": request.variant.name,
        "CAFFE_SOURCE": request.source.description,
        "CAFFE_REVISION": versions.get("CAFFE_COMMIT") or commit,
        "PYTHON_VERSION": versions.get("PYTHON_VERSION", ""),
        "NUMPY_VERSION": versions.get("NUMPY_VERSION", ""),
        # Not CUDA_VERSION: NVIDIA's images set an ENV of that name, which would win.
        "CAFFEBOX_CUDA_VERSION": versions.get("CUDA_VERSION", ""),
        "CAFFEBOX_CUDNN_VERSION": versions.get("CUDNN_VERSION", ""),
        "CAFFEBOX_VERSION": __version__,
        # The build stage's base: a project's nvcc = true copies the CUDA toolkit from it.
        "CAFFEBOX_BUILD_BASE": request.base_image or request.variant.base_image,
        "BUILD_DATE": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class _Beside:
    """One build call on a thread of its own, beside the caller's; result() waits for it
    and raises its error. A daemon thread: Ctrl-C does not wait for it, and the engine
    stops its build when the process goes."""

    def __init__(self, **call: Any) -> None:
        self.error: BaseException | None = None
        self.failed = threading.Event()
        self.thread = threading.Thread(target=self._run, kwargs=call, daemon=True)
        self.thread.start()

    def _run(self, **call: Any) -> None:
        try:
            stream_build(**call)
        except BaseException as exc:  # handed to the caller's thread by result()
            self.error = exc
            self.failed.set()

    def result(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def _runtime_base_context() -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(paths.RUNTIME_BASE_DOCKERFILE), arcname="docker/runtime-base.Dockerfile")
    return buf


def _build_stage_beside_runtime_base(
    client: docker.DockerClient,
    request: BuildRequest,
    context: io.BytesIO,
    args: dict[str, str],
    out: TextIO,
    runtime_base_out: TextIO | None,
) -> None:
    """The build stage (`out`), and the runtime base on a thread beside it; raises either's
    error once both have ended. A runtime base that cannot build (a missing runtime image)
    ends the build stage at once rather than after the compile."""
    side_log = runtime_base_out or io.StringIO()
    side = _Beside(
        client=client, context=_runtime_base_context(), tag=request.runtime_base_tag(),
        target="", buildargs=request.runtime_base_args(), nocache=request.nocache,
        out=side_log, dockerfile="docker/runtime-base.Dockerfile",
    )  # fmt: skip

    def end_runtime_base() -> None:
        side.thread.join()
        if runtime_base_out is None:
            out.write(
                f"caffebox: the runtime base {request.runtime_base_tag()}, built meanwhile:\n"
            )
            out.write(side_log.getvalue() if isinstance(side_log, io.StringIO) else "")

    try:
        stream_build(
            client, context, tag=None, target="build", buildargs=args, nocache=request.nocache,
            out=out, give_up=side.failed,
        )  # fmt: skip
    except CaffeboxError:
        end_runtime_base()  # its build ends before the build stage's error is told
        raise
    end_runtime_base()
    side.result()


def build(
    client: docker.DockerClient,
    request: BuildRequest,
    out: TextIO = sys.stdout,
    runtime_base_out: TextIO | None = None,
) -> str:
    """Build the image; returns its id. Output is streamed to `out`; the runtime base's,
    built at the same time as the build stage, to `runtime_base_out` (default: to `out`
    once the build stage ends, so the two logs do not interleave)."""
    context = build_context(request)
    args = request.buildargs()
    if request.compile_only:
        out.write(f"caffebox: compiling Caffe only (build stage) as {request.tag}\n")
        stream_build(
            client, context, tag=request.tag, target="build", buildargs=args,
            nocache=request.nocache, out=out,
        )  # fmt: skip
        return str(client.images.get(request.tag).id)
    runtime_base, runtime_tag = request.runtime_base_tag(), tag_beside(request.tag, "runtime")
    out.write(
        f"caffebox: building {request.tag} (variant {request.variant.name}); the runtime base "
        f"{runtime_base} builds at the same time (its log follows the build stage's)\n"
    )
    try:
        _build_stage_beside_runtime_base(client, request, context, args, out, runtime_base_out)
        # Everything from here takes the build stage and the runtime base just made from
        # the cache (the classic builder picks the newest cached step), whatever the flags:
        # Caffe compiles once.
        stream_build(
            client, context, tag=runtime_tag, target="runtime", buildargs=args,
            nocache=False, out=out,
        )  # fmt: skip
        versions = read_versions(client, runtime_tag)
        args.update(label_args(request, versions, args["CAFFE_COMMIT"]))
        stream_build(
            client, context, tag=request.tag, target="final", buildargs=args, nocache=False,
            out=out,
        )  # fmt: skip
    finally:
        for name in (runtime_tag, runtime_base):
            try:
                client.images.remove(name, noprune=True)
            except docker.errors.DockerException:
                pass  # not made: the build stopped before it
    image = client.images.get(request.tag)
    out.write(
        f"caffebox: built {request.tag} ({image.short_id}): Python {args['PYTHON_VERSION']}, "
        f"numpy {args['NUMPY_VERSION']}, Caffe {args['CAFFE_REVISION'] or 'unknown commit'}\n"
    )
    return str(image.id)


@dataclass(frozen=True)
class CudaOfflineBase:
    """How `cuda-base --cuda MAJOR` builds: its Dockerfile and the build args of that CUDA.
    Each makes devel (the tag) and runtime (TAG-runtime), as NVIDIA's images come."""

    dockerfile: str
    buildargs: tuple[tuple[str, str], ...] = ()


# By CUDA major; the tags are variants.cuda_offline_base's. Debian's own toolkit with
# cuDNN and NCCL wheels for that CUDA (12.4 on Debian 13, 11.8 on Debian 12), or NVIDIA's
# PyPI wheels alone (13; NVIDIA's CUDA 12 wheels have no nvcc).
CUDA_OFFLINE_BASES = {
    "12": CudaOfflineBase("docker/cuda-offline.Dockerfile"),
    "13": CudaOfflineBase("docker/cuda13-offline.Dockerfile"),
    "11": CudaOfflineBase("docker/cuda-offline.Dockerfile", (
        ("CUDNN_WHEEL", "nvidia-cudnn-cu11==9.10.2.21"),
        ("NCCL_WHEEL", "nvidia-nccl-cu11==2.21.5"))),
}


def build_cuda_offline_base(
    client: docker.DockerClient,
    tag: str,
    base_image: str,
    ca_certificates: str = "auto",
    out: TextIO = sys.stdout,
    cuda: str = "12",
) -> None:
    """Build an offline CUDA base, devel tagged `tag` and runtime `tag`-runtime: CUDA 12.4
    or 11.8 from Debian with cuDNN and NCCL wheels, or CUDA 13 wholly from NVIDIA's wheels."""
    known = CUDA_OFFLINE_BASES.get(cuda.split(".")[0])
    if known is None:
        raise CaffeboxError(
            f"cuda-base --cuda {cuda}: caffebox makes offline CUDA bases for "
            f"{' and '.join(sorted(CUDA_OFFLINE_BASES))} only."
        )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(paths.DOCKER_DIR), arcname="docker")
        add_bytes(tar, "build/ca-certificates.crt", read_certificates(ca_certificates))
    for target in ("devel", "runtime"):
        # The runtime base beside the devel one: caffebox/cuda-offline:12-trixie-runtime.
        name = tag_beside(tag, "runtime") if target == "runtime" else tag
        out.write(f"caffebox: building the offline CUDA base {name} on {base_image}\n")
        stream_build(
            client, buf, tag=name, target=target,
            buildargs={"BASE_IMAGE": base_image, **dict(known.buildargs)},
            nocache=False, out=out, dockerfile=known.dockerfile,
        )  # fmt: skip
