"""Where the Caffe source comes from: git (the default), a local tree or a tarball."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from caffebox.errors import CaffeboxError

DEFAULT_REPO = "https://github.com/BVLC/caffe.git"
DEFAULT_REF = "9b891540183ddc834a02b2bd81b31afae71b2153"

# Build products and VCS data never travel into the build context.
_SKIP_DIRS = {".git", ".build_release", ".build_debug", "build", "distribute", "__pycache__"}


@dataclass(frozen=True)
class CaffeSource:
    """One Caffe source: either a git repo and ref, or a local path (tree or .tar.gz)."""

    repo: str = DEFAULT_REPO
    ref: str = DEFAULT_REF
    path: Path | None = None

    @classmethod
    def from_options(cls, src: str | None, repo: str | None, ref: str | None) -> CaffeSource:
        """Validate the task options: a local path excludes repo/ref."""
        if src:
            if repo or ref:
                raise CaffeboxError(
                    "Give either --caffe-src or --caffe-repo/--caffe-ref, not both: a local "
                    "source is built as it is."
                )
            path = Path(src).expanduser().resolve()
            if not path.exists():
                raise CaffeboxError(
                    f"The Caffe source {path} does not exist. Pass --caffe-src a Caffe source "
                    "folder or a .tar.gz of one."
                )
            if path.is_file() and not path.name.endswith((".tar.gz", ".tgz")):
                raise CaffeboxError(
                    f"The Caffe source {path} is a file but not a .tar.gz. Pass a source "
                    "folder or a gzipped tarball."
                )
            if path.is_dir() and not (path / "Makefile").is_file():
                raise CaffeboxError(
                    f"{path} has no Makefile, so it is not a Caffe source tree. Pass the folder "
                    "that holds Caffe's Makefile, src/ and python/."
                )
            return cls(path=path)
        return cls(repo=repo or DEFAULT_REPO, ref=ref or DEFAULT_REF)

    @property
    def description(self) -> str:
        """For the image label org.opencontainers.image.source."""
        return str(self.path) if self.path else self.repo

    def commit(self) -> str:
        """What names this source's code before building: the ref, a local tree's git HEAD,
        else 'sha256:' and the hash of the source as sent (a tarball, or the tree packed
        reproducibly), so a fork without git is more than "unknown"."""
        if self.path is None:
            return self.ref
        if self.path.is_dir() and (self.path / ".git").exists():
            out = subprocess.run(
                ["git", "-C", str(self.path), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
            )
            if out.returncode == 0:
                return out.stdout.strip()
        return "sha256:" + hashlib.sha256(self._packed()).hexdigest()

    def _packed(self) -> bytes:
        assert self.path is not None
        return self.path.read_bytes() if self.path.is_file() else _tar_tree(self.path)

    def add_to_context(self, context: tarfile.TarFile, arcdir: str) -> None:
        """Put the source into the build context as `arcdir/caffe.tar.gz` (or nothing)."""
        keep = tarfile.TarInfo(f"{arcdir}/.keep")
        context.addfile(keep, io.BytesIO(b""))
        if self.path is None:
            return
        if self.path.is_file():
            context.add(str(self.path), arcname=f"{arcdir}/caffe.tar.gz")
            return
        data = self._packed()
        info = tarfile.TarInfo(f"{arcdir}/caffe.tar.gz")
        info.size = len(data)
        context.addfile(info, io.BytesIO(data))


@functools.lru_cache(maxsize=4)
def _tar_tree(root: Path) -> bytes:
    """A reproducible .tar.gz of a source tree (same tree, same bytes: the cache holds)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(_walk(root)):
                tar.add(str(path), arcname=str(path.relative_to(root)), recursive=False)
    return buf.getvalue()


def _walk(root: Path) -> Iterator[Path]:
    for path in root.iterdir():
        if path.name in _SKIP_DIRS and path.is_dir():
            continue
        yield path
        if path.is_dir() and not path.is_symlink():
            yield from _walk(path)
