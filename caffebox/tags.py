"""The tag scheme of published images, derived from the labels every caffebox image has.

cpu                                      moving: the newest cpu image
cpu-bvlc9b89154-py3.11                   exact: what is inside
cpu-bvlc9b89154-py3.11-caffebox0.1.0     exact, and the caffebox that built it
gpu-cuda12.4-cudnn9-bvlc9b89154-py3.10   (gpu images add CUDA and cuDNN)
"""

from __future__ import annotations

import re

from caffebox import __version__

BVLC_REPOS = ("github.com/BVLC/caffe",)
_NOT_TAG = re.compile(r"[^a-z0-9.]+")


def source_slug(source: str) -> str:
    """A short name for the Caffe source: 'bvlc', or a fork's or tarball's own name."""
    if any(repo.lower() in source.lower() for repo in BVLC_REPOS):
        return "bvlc"
    name = source.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".git", ".tar.gz", ".tgz"):
        name = name.removesuffix(suffix)
    return _NOT_TAG.sub("-", name.lower()).strip("-.") or "caffe"


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def image_tags(labels: dict[str, str], version: str = __version__) -> list[str]:
    """The moving tag, the exact tag and the exact tag with the caffebox version."""
    variant = labels.get("io.caffebox.variant", "")
    if variant not in ("cpu", "gpu"):
        raise ValueError("not a caffebox image (no io.caffebox.variant label)")
    parts = [variant]
    if variant == "gpu":
        cuda = labels.get("io.caffebox.cuda.version", "")
        cudnn = labels.get("io.caffebox.cudnn.version", "")
        parts += [f"cuda{_major_minor(cuda)}"] if cuda else []
        parts += [f"cudnn{cudnn.split('.')[0]}"] if cudnn else []
    slug = source_slug(labels.get("org.opencontainers.image.source", ""))
    revision = labels.get("org.opencontainers.image.revision", "")
    if revision.startswith("sha256:"):  # a tarball or tree without git: its content hash
        revision = "src" + revision.removeprefix("sha256:")[:7]
    elif revision in ("", "unknown"):
        revision = ""
    else:
        revision = revision[:7]
    parts.append(
        f"{slug}{revision}" if slug == "bvlc" else "-".join(filter(None, [slug, revision]))
    )
    python = labels.get("io.caffebox.python.version", "")
    parts += [f"py{_major_minor(python)}"] if python else []
    exact = "-".join(parts)[:110]
    return [variant, exact, f"{exact}-caffebox{version}"]
