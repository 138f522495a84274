"""Making the Debian base image where no registry can be reached.

`docker import` of a debootstrapped root filesystem gives a real Debian image; it is
tagged with the name the Dockerfile uses by default, so the Dockerfile never changes
between a machine with a registry and one without.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import TextIO

import docker

from caffebox.engine import image_exists
from caffebox.errors import CaffeboxError
from caffebox.settings import DEFAULTS

# The mirror setting's default (caffebox.settings), for callers without settings.
DEFAULT_MIRROR: str = DEFAULTS["caffebox"]["debian_mirror"]

# What a tag such as debian:bookworm-slim means to debootstrap.
_SUITES = ("bookworm", "trixie", "bullseye", "sid")


def suite_for(image: str) -> str:
    """The Debian suite named in an image tag (debian:bookworm-slim -> bookworm)."""
    name, _, tag = image.partition(":")
    if not name.endswith("debian"):
        raise CaffeboxError(
            f"caffebox base-image makes Debian images only, not {image!r}. Pull that image "
            "with 'docker pull', or name a debian:<suite> image."
        )
    suite = (tag or "bookworm").split("-")[0]
    if suite not in _SUITES:
        raise CaffeboxError(
            f"{image!r} names no Debian suite caffebox knows ({', '.join(_SUITES)}). "
            "Use a tag such as debian:bookworm-slim."
        )
    return suite


def _try_pull(client: docker.DockerClient, image: str, out: TextIO) -> bool:
    try:
        client.images.pull(image)
    except docker.errors.APIError as exc:
        out.write(f"caffebox: cannot pull {image} ({exc.explanation or exc}); making it instead\n")
        return False
    return True


# What Docker's official debian:*-slim images leave out (debuerreotype's slimify): docs,
# manuals, translations. dpkg keeps leaving them out of every package installed later.
SLIM_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/groff/*",
    "/usr/share/info/*",
    "/usr/share/linda/*",
    "/usr/share/lintian/overrides/*",
    "/usr/share/locale/*",
    "/usr/share/man/*",
)
SLIM_INCLUDES = ("/usr/share/doc/*/copyright",)


def slim(rootfs: Path) -> None:
    """Make a debootstrapped tree what a '-slim' tag promises: the dpkg excludes, and the
    files they name removed from the packages already there."""
    conf = rootfs / "etc/dpkg/dpkg.cfg.d/docker-slim"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(
        "# caffebox base-image: as Docker's debian slim images\n"
        + "".join(f"path-exclude {p}\n" for p in SLIM_EXCLUDES)
        + "".join(f"path-include {p}\n" for p in SLIM_INCLUDES)
    )
    for pattern in SLIM_EXCLUDES:
        for item in (rootfs / pattern.strip("/").removesuffix("/*")).glob("**/*"):
            name = "/" + str(item.relative_to(rootfs))
            keep = any(fnmatch.fnmatch(name, include) for include in SLIM_INCLUDES)
            if (item.is_file() or item.is_symlink()) and not keep:
                item.unlink()


def debootstrap_image(
    client: docker.DockerClient, image: str, mirror: str, out: TextIO = sys.stdout
) -> None:
    """debootstrap a minimal Debian into a temporary folder and import it as `image`."""
    if shutil.which("debootstrap") is None:
        raise CaffeboxError(
            "debootstrap is not installed, so caffebox cannot make the base image "
            f"{image}. Install it (apt-get install debootstrap) or pull {image}."
        )
    suite = suite_for(image)
    with tempfile.TemporaryDirectory(prefix="caffebox-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        out.write(f"caffebox: debootstrap --variant=minbase {suite} from {mirror}\n")
        out.flush()
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", suite, str(rootfs), mirror],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if done.returncode != 0:
            raise CaffeboxError(
                f"debootstrap of {suite} from {mirror} failed (exit {done.returncode}; it must "
                f"run as root). Its last lines: {' | '.join(done.stdout.splitlines()[-3:])}. "
                "Check the mirror (--mirror) and that you run this as root."
            )
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / cache).glob("*"):
                if item.is_file():
                    item.unlink()
        if "slim" in image.partition(":")[2]:
            slim(rootfs)
        archive = Path(tmp) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            for item in sorted(rootfs.iterdir()):
                tar.add(str(item), arcname=item.name)
        repo, _, tag = image.partition(":")
        client.api.import_image_from_file(
            str(archive), repository=repo, tag=tag or "latest", changes=['CMD ["bash"]']
        )
    out.write(f"caffebox: imported {image}\n")


def ensure_base_image(
    client: docker.DockerClient,
    image: str,
    mirror: str = DEFAULT_MIRROR,
    force_debootstrap: bool = False,
    out: TextIO = sys.stdout,
) -> None:
    """Make sure `image` exists: keep it, pull it, or debootstrap it."""
    if not force_debootstrap and image_exists(client, image):
        out.write(f"caffebox: base image {image} is present\n")
        return
    if force_debootstrap or not _try_pull(client, image, out):
        debootstrap_image(client, image, mirror, out)
