"""A project's own environment: `caffebox.toml` and the project image built from it.

Old projects import packages the image lacks (easydict), build Cython extensions (gcc,
python3-dev, cython3) and run `python setup.py`. A caffebox.toml in the project (the current
folder or the nearest one above it) declares them, as Replicate's cog.yaml and repo2docker's
apt.txt / requirements.txt / postBuild do:

    [image]
    apt = ["cython3", "python3-dev", "gcc"]
    pip = ["easydict"]            # or: requirements = "requirements.txt"
    run = []                      # shell commands, as root, at build time

Every task that runs the image then runs the project image: that image plus one layer,
built once and reused while neither the image's id nor these files change (their hash is
in the tag and a label). The build context is those files alone, never the project folder.
pip installs under constraints that pin every distribution the image already has, so
nothing pycaffe was compiled against (numpy, protobuf) is replaced.
"""

from __future__ import annotations

import hashlib
import io
import re
import shlex
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import docker

from caffebox import contract, engine, images, paths, templates
from caffebox.errors import CaffeboxError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the wheel supports 3.9
    import tomli as tomllib

CONFIG_NAME = "caffebox.toml"
HASH_LABEL = "io.caffebox.project.hash"
BASE_LABEL = "io.caffebox.project.base"
FILE_LABEL = "io.caffebox.project.file"
DEVEL_LABEL = "io.caffebox.project.devel"
# Bumped when the recipe below changes, so images made by an older one are rebuilt.
RECIPE = "1"
KEYS = {"apt", "pip", "requirements", "run", "nvcc"}
# The gpu image's build base (its devel image): where nvcc = true copies the toolkit from.
BUILD_BASE_LABEL = "io.caffebox.build.base"
CUDA_LABEL = "io.caffebox.cuda.version"
# What an offline CUDA base is (docker/cuda-offline.Dockerfile's label): Debian's toolkit.
OFFLINE_BASE_LABEL = "io.caffebox.image"
DEBIAN_CUDA_BASE = "cuda-offline-base"
# What pycaffe and caffebox_layers use from the image: never replaced by a project's pip.
PROTECTED = {
    "numpy": "pycaffe's _caffe.so is compiled against the image's numpy",
    "protobuf": "pycaffe reads and writes Caffe's prototxt with the image's protobuf",
    "scipy": "caffe.io and scikit-image use the image's scipy",
    "scikit-image": "caffe.io uses the image's scikit-image",
    "pillow": "scikit-image and caffe.io read images with the image's Pillow",
}
@dataclass(frozen=True)
class ProjectConfig:
    """A parsed caffebox.toml."""

    path: Path
    apt: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    requirements: Path | None = None
    run: tuple[str, ...] = ()
    nvcc: bool = False

    def digest(self, base_id: str, devel_id: str = "") -> str:
        """What the project image is made of: the base image (and the devel image nvcc
        comes from), these files, the recipe."""
        h = hashlib.sha256(f"{RECIPE}\n{base_id}\n{devel_id}\n".encode())
        h.update(self.path.read_bytes())
        if self.requirements is not None:
            h.update(self.requirements.read_bytes())
        return h.hexdigest()

    def dockerfile(self, base: str, devel: str = "", debian_cuda: bool = False) -> str:
        """One layer on the base: the CUDA toolkit of its devel image (nvcc = true: copied
        from it, or for a base on Debian's own CUDA its nvidia-cuda-toolkit package, the
        same version as the image's CUDA packages), apt, then pip under constraints, then
        each run step."""
        apt = ["python-is-python3", *self.apt]
        debian_cuda = bool(devel) and debian_cuda
        copy = bool(devel) and not debian_cuda
        if devel:
            apt.append("g++")  # nvcc's host compiler
        if debian_cuda:
            apt.append("nvidia-cuda-toolkit")
        if self.pip or self.requirements:
            apt.append("python3-pip")
        lines = [
            f"FROM {base}",
            "ARG DEBIAN_FRONTEND=noninteractive",
            "USER root",
            "COPY caffebox-project /tmp/caffebox-project",
            *([f"COPY --from={devel} /usr/local/cuda /usr/local/cuda",
               "ENV PATH=/usr/local/cuda/bin:$PATH CUDAHOME=/usr/local/cuda"] if copy else []),
            # Debian's nvcc is /usr/bin/nvcc, its headers in /usr/include.
            *(["ENV CUDAHOME=/usr"] if debian_cuda else []),
            "RUN " + ("sh /tmp/caffebox-project/debian-non-free.sh && " if debian_cuda else "")
            # dpkg without its fsyncs: the layer is written when the step ends anyway, and
            # Debian's CUDA toolkit (nvcc = true) unpacks 5 GB.
            + "apt-get update && apt-get install -y --no-install-recommends "
            + "-o Dpkg::Options::=--force-unsafe-io "
            + " ".join(apt) + " && rm -rf /var/lib/apt/lists/*",
        ]  # fmt: skip
        if self.pip or self.requirements:
            pip = ["python3", "-m", "pip", "install", "--no-cache-dir", "--break-system-packages",
                   "--root-user-action=ignore", "--no-warn-script-location",
                   "-c", "/tmp/caffebox-project/constraints.txt", *self.pip]  # fmt: skip
            if self.requirements is not None:
                pip += ["-r", "/tmp/caffebox-project/requirements.txt"]
            lines.append(
                "RUN python3 /tmp/caffebox-project/constraints.py > "
                "/tmp/caffebox-project/constraints.txt && if [ -s "
                "/tmp/caffebox-project/ca-certificates.crt ]; then export "
                "PIP_CERT=/tmp/caffebox-project/ca-certificates.crt; fi && "
                + shlex.join(pip)
            )
        lines += [f"RUN {step}" for step in self.run]
        lines += ["RUN rm -rf /tmp/caffebox-project"]
        return "\n".join(lines) + "\n"


def find(cwd: Path) -> Path | None:
    """The caffebox.toml of the project: in `cwd` or the nearest folder above it."""
    for folder in (cwd, *cwd.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def _strings(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise CaffeboxError(
            f"{path}: [image] {key} must be a list of strings, e.g. {key} = "
            f"{_EXAMPLES[key]}; it is {value!r}."
        )
    return tuple(v.strip() for v in value)


_EXAMPLES = {"apt": '["cython3", "gcc"]', "pip": '["easydict"]', "run": '["make -C lib"]'}


def _package_name(spec: str) -> str:
    return re.split(r"[\s<>=!~;\[@]", spec, maxsplit=1)[0].lower().replace("_", "-")


def load(path: Path) -> ProjectConfig:
    """Parse and check a caffebox.toml; one paragraph (exit 2) for what is wrong."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise CaffeboxError(f"{path} cannot be read ({exc}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise CaffeboxError(
            f"{path} is not valid TOML ({exc}). caffebox.toml declares the project image: "
            '[image] with apt = [...], pip = [...], requirements = "FILE", run = [...].'
        ) from None
    unknown = set(data) - {"image"}
    image = data.get("image", {})
    if not isinstance(image, dict):
        unknown.add("image")
    else:
        unknown |= {f"image.{k}" for k in set(image) - KEYS}
    if unknown:
        raise CaffeboxError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}. caffebox.toml has one "
            "table, [image], with the keys apt, pip, requirements, run and nvcc."
        )
    apt = _strings(path, "apt", image.get("apt", []))
    pip = _strings(path, "pip", image.get("pip", []))
    run = _strings(path, "run", image.get("run", []))
    nvcc = image.get("nvcc", False)
    if not isinstance(nvcc, bool):
        raise CaffeboxError(
            f"{path}: [image] nvcc must be true or false (true: the gpu image's CUDA toolkit, "
            f"nvcc and headers, for building CUDA extensions); it is {nvcc!r}."
        )
    for name in apt:
        if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]*(:[a-z0-9]+)?(=[\w.+:~-]+)?", name):
            raise CaffeboxError(
                f"{path}: [image] apt has {name!r}, which is not a Debian package name "
                "(lower case, e.g. 'python3-dev', optionally 'name=version')."
            )
    requirements = None
    if "requirements" in image:
        given = image["requirements"]
        requirements = (path.parent / str(given)).resolve()
        if not isinstance(given, str) or not requirements.is_file():
            raise CaffeboxError(
                f"{path}: requirements = {given!r}: {requirements} is not a file. Give a "
                "pip requirements file relative to caffebox.toml."
            )
    wanted = list(pip)
    if requirements is not None:
        wanted += [line.split("#")[0].strip() for line in requirements.read_text().splitlines()]
    for spec in wanted:
        name = _package_name(spec) if spec and not spec.startswith("-") else ""
        if name in PROTECTED:
            where = "pip" if spec in pip else f"requirements ({requirements})"
            raise CaffeboxError(
                f"{path}: [image] {where} asks for {spec!r}, but {PROTECTED[name]}: pip "
                f"would replace it and pycaffe could then fail to import. Remove '{name}' from "
                "the list: the image's own version is already importable."
            )
    return ProjectConfig(path=path, apt=apt, pip=pip, requirements=requirements, run=run,
                         nvcc=nvcc)


def build_context(config: ProjectConfig, base: str, certificates: bytes,
                  devel: str = "", debian_cuda: bool = False) -> io.BytesIO:  # fmt: skip
    """The Dockerfile and the declared files only (never the project folder)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        files = {
            "Dockerfile": config.dockerfile(base, devel, debian_cuda).encode(),
            "caffebox-project/caffebox.toml": config.path.read_bytes(),
            "caffebox-project/constraints.py": templates.text("constraints.py").encode(),
            "caffebox-project/ca-certificates.crt": certificates,
        }
        if config.requirements is not None:
            files["caffebox-project/requirements.txt"] = config.requirements.read_bytes()
        if debian_cuda:
            files["caffebox-project/debian-non-free.sh"] = (
                paths.DOCKER_DIR / "debian-non-free.sh").read_bytes()
        for name, data in files.items():
            images.add_bytes(tar, name, data)
    buf.seek(0)
    return buf


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The classic builder's own lines, not the step's.
_ENGINE_LINE = re.compile(r"^\s*(---> |Removing intermediate container|Successfully )")


def explain(config: ProjectConfig, detail: str, tail: Sequence[str]) -> str:
    """One paragraph for a failed project build: the tool's own error line quoted."""
    lines = [_ANSI.sub("", line).rstrip() for line in tail]
    lines = [x for x in lines if x.strip() and not _ENGINE_LINE.match(x)]
    text = "\n".join(lines)
    where = f"{config.path}: the project image did not build"
    found = re.findall(r"^E: (Unable to locate package .+|Package .+ has no installation "
                       r"candidate.*)$", text, re.M)  # fmt: skip
    if found:
        return (f"{where}: apt says '{found[-1]}'. Fix [image] apt: the names are Debian "
                "packages of the image's release (search on packages.debian.org).")  # fmt: skip
    conflict = re.findall(r"The user requested \(constraint\) ([\w.-]+)==(\S+)", text)
    if conflict or "conflicting dependencies" in text:
        pinned = ", ".join(f"{n} {v}" for n, v in conflict) or "a package the image has"
        return (f"{where}: pip would have to replace {pinned}, which the image already has "
                "(pycaffe was built and checked with the image's packages as they are). Ask "
                "for a version of the package that accepts it (pip's own explanation is "
                "above).")  # fmt: skip
    found = re.findall(r"^ERROR: (.+)$", text, re.M)
    if found:
        return (f"{where}: pip says '{found[-1]}'. Fix [image] pip (or the requirements "
                "file): the name and version must exist on PyPI.")  # fmt: skip
    step = re.findall(r"^Step \d+/\d+ : RUN (.+)$", text, re.M)
    last = [line for line in lines if not line.startswith("Step ")][-3:]
    command = step[-1] if step else "a build step"
    return (f"{where}: '{command}' failed ({detail}); its last lines: "
            f"{' | '.join(s.strip() for s in last)}. Fix that [image] run step.")  # fmt: skip


def devel_image(client: contract.Engine, base: str, labels: dict[str, str],
                config: ProjectConfig) -> str:  # fmt: skip
    """The devel image a gpu image was built on (its nvcc, headers and libraries match the
    image's CUDA exactly); one paragraph where there is none to copy from."""
    if not labels.get(CUDA_LABEL):
        raise CaffeboxError(
            f"{config.path}: [image] nvcc = true, but {base} is a cpu image (no CUDA). Run "
            "on a gpu image (--gpus or --image caffebox:gpu), or remove nvcc."
        )
    devel = labels.get(BUILD_BASE_LABEL, "")
    if not devel:
        raise CaffeboxError(
            f"{config.path}: [image] nvcc = true, but {base} does not say which CUDA image "
            "it was built on (built before caffebox recorded it). Build it again with "
            "'caffebox build-gpu' (the compile is cached)."
        )
    if not engine.image_exists(client, devel):
        raise CaffeboxError(
            f"{config.path}: [image] nvcc = true copies the CUDA toolkit from {base}'s build "
            f"base {devel}, which is not on this engine. Make it ('caffebox cuda-base', for "
            "caffebox's offline bases) or pull it, then run again."
        )
    return devel


def tag_for(base: str, digest: str) -> str:
    return images.tag_beside(base, f"project-{digest[:12]}")


def ensure(client: docker.DockerClient, base: str, config: ProjectConfig, certificates: bytes,
           out: TextIO = sys.stdout) -> str:  # fmt: skip
    """The project image for `base` (built now, or reused); its tag."""
    base_image = client.images.get(base)
    devel = devel_image(client, base, base_image.labels or {}, config) if config.nvcc else ""
    devel_id, debian_cuda = "", False
    if devel:
        made_on = client.images.get(devel)
        devel_id = str(made_on.id)
        # caffebox's offline bases on Debian's own CUDA (12.4, 11.8) say so by this label.
        debian_cuda = (made_on.labels or {}).get(OFFLINE_BASE_LABEL) == DEBIAN_CUDA_BASE
    base_id = str(base_image.id)
    digest = config.digest(base_id, devel_id)
    tag = tag_for(base, digest)
    if engine.image_exists(client, tag):
        out.write(f"caffebox: project image {tag} (from {config.path}, reused)\n")
        return tag
    out.write(f"caffebox: building the project image {tag} from {config.path} on {base}\n")
    images.stream_build(
        client, build_context(config, base, certificates, devel, debian_cuda), tag=tag, target="",
        buildargs={}, nocache=False, out=out, dockerfile="Dockerfile",
        labels={HASH_LABEL: digest, BASE_LABEL: base_id, FILE_LABEL: str(config.path),
                DEVEL_LABEL: devel_id},
        explain=lambda detail, tail: explain(config, detail, tail),
    )  # fmt: skip
    out.write(f"caffebox: built the project image {tag}\n")
    return tag


def check_current(labels: dict[str, str], image: str, config_path: Path | None) -> None:
    """An image given by name (an export, a Slurm task's --image) that is a project image
    must match the project's caffebox.toml as it is now; a plain one must not stand in for
    a project that declares one where caffebox cannot build (ch-run)."""
    digest = labels.get(HASH_LABEL, "")
    if not digest:
        if config_path is not None:
            raise CaffeboxError(
                f"{config_path} declares a project image, but {image} is not one (made "
                "without it). Build it with 'caffebox build-project' and export or pass the "
                "tag it prints."
            )
        return
    if config_path is None:
        return
    now = load(config_path).digest(labels.get(BASE_LABEL, ""), labels.get(DEVEL_LABEL, ""))
    if now != digest:
        raise CaffeboxError(
            f"{image} is a project image made from an older {config_path} (or its "
            "requirements file): it is stale. Build it again with 'caffebox build-project' "
            "(then export it again for ch-run), and pass the new tag."
        )
