"""`caffebox export`: an image's root filesystem as a .tar.zst for hosts without Docker.

Clusters run unprivileged runtimes (Charliecloud's ch-run, Apptainer's --sandbox) or
chroot, none of which read an image's ENV. The export adds `caffebox-run`, a shell
entry that sets what the image's ENV sets, so `caffebox-run caffe train ...` behaves
as in Docker. `--without-cuda-libs` leaves out the CUDA toolkit libraries (cudart,
cuBLAS, cuDNN, cuRAND, NCCL, NVRTC), wherever they are, and everything else under
/usr/local/cuda* (a gpu image built on an offline base carries nvcc there), so the host's
own are used; the driver is always the host's.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import docker

from caffebox import templates
from caffebox.errors import CaffeboxError
from caffebox.runs import RUN_LABEL

ENTRY = "usr/bin/caffebox-run"
# Charliecloud reads an image's environment from here (ch-run --set-env).
CH_ENVIRONMENT = "ch/environment"
# What the image was (labels, id, digests), for run records made with --runtime charliecloud.
FACTS = "etc/caffebox/image.json"
# Shared objects of the CUDA toolkit that the host provides with --without-cuda-libs.
CUDA_LIBRARIES = re.compile(
    r"^lib(cudart|cublas|cublasLt|cudnn\w*|curand|nccl|nvrtc|nvrtc-builtins)\.so(\.|$)"
)
# Where the entry script looks for the host's CUDA libraries, after $LD_LIBRARY_PATH.
CUDA_SEARCH = (
    "/usr/local/cuda/lib64",
    "/usr/local/cuda/lib",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
)
# Inside the container, NVIDIA's pip wheels are found where the user binds them.
WHEEL_GLOBS = ("/opt/nvidia/*/lib", "/usr/local/lib/python3*/*-packages/nvidia/*/lib")


def in_cuda_toolkit(name: str) -> bool:
    """A file inside /usr/local/cuda* (the compiler, headers, static and other libraries):
    a runtime with the host's CUDA needs none of it. The folder itself stays, as the place
    to bind the host's CUDA."""
    parts = name.split("/")
    return len(parts) > 3 and parts[:2] == ["usr", "local"] and parts[2].startswith("cuda")


def is_cuda_library(name: str) -> bool:
    """True for a CUDA toolkit library file or symlink (not the driver's libcuda.so)."""
    return bool(CUDA_LIBRARIES.match(Path(name).name))


def entry_script(
    image: str,
    env: Iterable[str],
    cuda_from_host: bool,
    search: Iterable[str] = CUDA_SEARCH,
    wheel_globs: Iterable[str] = WHEEL_GLOBS,
) -> str:
    """The `caffebox-run` shell script: the image's ENV (PYTHONPATH after the user's), a
    usable HOME, --layers, the host's CUDA (caffebox/templates/caffebox-run*.sh)."""
    exports = []
    for item in env:
        name, _, value = item.partition("=")
        if name == "PYTHONPATH":
            # The tutorial's PYTHONPATH=/path/to:$PYTHONPATH caffe train: the user's first.
            exports.append(f'export PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}"{shlex.quote(value)}')
        elif name and name not in ("HOME", "HOSTNAME"):
            exports.append(f"export {name}={shlex.quote(value)}")
    cuda = ""
    if cuda_from_host:
        names = ("cudart", "cublas", "cudnn", "curand", "nccl", "nvrtc")
        cuda = templates.render(
            "caffebox-run-cuda.sh", libs=" ".join(f'"$1"/lib{n}.so*' for n in names),
            search=" ".join(search), wheel_globs=" ".join(wheel_globs),
        ).rstrip("\n")  # fmt: skip
    return templates.render("caffebox-run.sh", image=image, env="\n".join(exports), cuda=cuda)


class _ChunkReader(io.RawIOBase):
    """A file object over the engine's export stream (an iterator of byte chunks)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.total += n
        return n


@dataclass
class ExportReport:
    """What went into the tarball, for the summary line and the README figures."""

    files: int = 0
    unpacked_bytes: int = 0
    left_out: list[str] = field(default_factory=list)
    left_out_bytes: int = 0
    biggest: dict[str, int] = field(default_factory=dict)

    def count(self, member: tarfile.TarInfo) -> None:
        self.files += 1
        self.unpacked_bytes += member.size
        parts = _clean(member.name).split("/")
        top = "/" + "/".join(parts[:3]) if parts[0] in ("opt", "usr") else "/" + parts[0]
        self.biggest[top] = self.biggest.get(top, 0) + member.size


def _clean(name: str) -> str:
    """A member name without a leading './' or '/' (the engine's export has neither)."""
    while name.startswith(("./", "/")):
        name = name[1:] if name.startswith("/") else name[2:]
    return name


def _member(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, IO[bytes]]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(time.time())
    return info, io.BytesIO(data)


def rewrite(
    source: IO[bytes], target: IO[bytes], extra: dict[str, tuple[bytes, int]], drop_cuda: bool
) -> ExportReport:
    """Copy a rootfs tar stream, leaving out CUDA libraries if asked and adding `extra`."""
    report = ExportReport()
    with (
        tarfile.open(fileobj=source, mode="r|") as tin,
        tarfile.open(fileobj=target, mode="w|", format=tarfile.PAX_FORMAT) as tout,
    ):
        for member in tin:
            name = _clean(member.name)
            if name in extra or name == ".dockerenv":
                continue
            if member.ischr() or member.isblk() or member.isfifo():
                continue  # device nodes: every runtime binds the host's /dev, and a user
                # unpacking the tarball may not create them
            if (
                drop_cuda
                and not member.isdir()
                and (is_cuda_library(name) or in_cuda_toolkit(name))
            ):
                report.left_out.append("/" + name)
                report.left_out_bytes += member.size
                continue
            report.count(member)
            tout.addfile(member, tin.extractfile(member) if member.isfile() else None)
        for name, (data, mode) in extra.items():
            info, body = _member(name, data, mode)
            report.count(info)
            tout.addfile(info, body)
    return report


def export(client: docker.DockerClient, image: str, out: Path, *, without_cuda_libs: bool = False,
           level: int = 10) -> ExportReport:  # fmt: skip
    """Write `image`'s root filesystem with caffebox-run to `out` (.tar.zst)."""
    import zstandard

    if not out.name.endswith((".tar.zst", ".tzst")):
        raise CaffeboxError(
            f"{out}: name the export .tar.zst (it is a zstd-compressed tarball), e.g. "
            "'caffebox export caffebox:cpu caffebox-cpu.tar.zst'."
        )
    if not out.parent.is_dir():
        raise CaffeboxError(f"{out.parent} is not a folder. Write the export into one that exists.")
    try:
        attrs = client.images.get(image).attrs
    except docker.errors.ImageNotFound:
        raise CaffeboxError(
            f"The image {image} is not on this engine. Build it (caffebox build-cpu), pull it "
            "(caffebox pull), or name one from 'docker images'."
        ) from None
    env = attrs.get("Config", {}).get("Env") or []
    facts = {"name": image, "id": attrs.get("Id", ""), "digests": attrs.get("RepoDigests") or [],
             "labels": attrs.get("Config", {}).get("Labels") or {}}  # fmt: skip
    script = entry_script(image, env, cuda_from_host=without_cuda_libs).encode()
    ch_env = "".join(f"{e}\n" for e in env if not e.startswith(("HOME=", "HOSTNAME="))).encode()
    extra = {ENTRY: (script, 0o755), CH_ENVIRONMENT: (ch_env, 0o644),
             FACTS: (json.dumps(facts, indent=2).encode() + b"\n", 0o644)}  # fmt: skip
    container = client.containers.create(image, command=["true"], labels={RUN_LABEL: "1"})
    partial = out.with_name(out.name + ".partial")
    try:
        # The SDK streams the export as byte chunks (its type stubs say str).
        chunks = cast(Iterable[bytes], container.export())
        reader = io.BufferedReader(_ChunkReader(chunks), buffer_size=1 << 20)
        compressor = zstandard.ZstdCompressor(level=level, threads=-1)
        with open(partial, "wb") as raw, compressor.stream_writer(raw, closefd=False) as zout:
            report = rewrite(reader, zout, extra, drop_cuda=without_cuda_libs)
        partial.replace(out)
    finally:
        container.remove(force=True)
        partial.unlink(missing_ok=True)
    return report


def describe(report: ExportReport, out: Path) -> str:
    """The summary: compressed size, unpacked size, what takes the space, what was left out."""
    mb = 1e6
    lines = [
        f"caffebox: wrote {out} ({out.stat().st_size / mb:.0f} MB compressed, "
        f"{report.unpacked_bytes / mb:.0f} MB unpacked, {report.files} entries)"
    ]
    top = sorted(report.biggest.items(), key=lambda kv: -kv[1])[:6]
    lines.append("caffebox: largest: " + ", ".join(f"{k} {v / mb:.0f} MB" for k, v in top))
    if report.left_out:
        lines.append(
            f"caffebox: left out {len(report.left_out)} CUDA files "
            f"({report.left_out_bytes / mb:.0f} MB): the host's are used"
        )
    lines.append(
        f"caffebox: unpack with 'mkdir img && tar --zstd -xf {out.name} -C img', then "
        "'ch-run -b $PWD:/workspace -c /workspace img -- caffebox-run caffe train -solver "
        "solver.prototxt'"
    )
    return "\n".join(lines)


def unpack(archive: Path, folder: Path) -> None:
    """An export unpacked into `folder` (made, empty) for ch-run: `caffebox export IMAGE
    DIR/` in one step. tar as the user: device nodes are skipped, as ch-run needs none."""
    if folder.exists() and any(folder.iterdir()):
        raise CaffeboxError(
            f"{folder} is not empty. Unpack an export into a new folder (ch-run's image "
            "directory), e.g. 'caffebox export caffebox:cpu /shared/images/caffebox-cpu/'."
        )
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["tar", "--zstd", "-xf", str(archive), "-C", str(folder),
                           "--no-same-owner", "--exclude=dev/*"],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise CaffeboxError(
            f"Could not unpack the export into {folder}: {done.stderr.strip()[-500:]}. Check "
            "that tar has --zstd (GNU tar 1.31+ with zstd installed) and that the folder is "
            "writable.",
            exit_code=1,
        )
