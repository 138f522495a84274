"""Published images: push under the tag scheme, pull with progress, digest references.

A user or a CI job with a `registry` setting gets the image without compiling Caffe:
the tasks that run an image pull it when it is missing, before falling back to a build.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import docker
from docker.auth import split_repo_name
from docker.utils import parse_repository_tag
from tqdm import tqdm

from caffebox import engine, tags
from caffebox.errors import CaffeboxError


def split_reference(ref: str) -> tuple[str, str]:
    """'host:5000/ns/name:tag' -> ('host:5000/ns/name', 'tag'); a digest is the second
    part ('sha256:...'); no tag is 'latest'. The SDK's own parser."""
    repo, tag = parse_repository_tag(ref)
    return repo, tag or "latest"


def has_registry(ref: str) -> bool:
    """True when the name starts with a registry host ('ghcr.io/...', 'localhost:5000/...')."""
    return bool(split_repo_name(ref)[1] != ref)  # the SDK's reading of a name


def remote_for(image: str, registry: str) -> str:
    """Where a missing image comes from: itself when it names a registry, else the
    `registry` setting's repository with the image's tag (caffebox:cpu -> REGISTRY:cpu)."""
    if has_registry(image) or "@" in image:
        return image
    if not registry:
        return ""
    _repo, tag = split_reference(image)
    return f"{registry}:{tag}"


def _reason(detail: str, where: str) -> str:
    low = detail.lower()
    if "unauthorized" in low or "authentication required" in low or "denied" in low:
        return (
            f"{where} refused the credentials ({detail}). Log in first: 'docker login "
            f"{where.split('/')[0]}' (for GHCR with a token that may write packages)."
        )
    if "connection refused" in low or "no such host" in low or "dial tcp" in low:
        return (
            f"{where.split('/')[0]} cannot be reached ({detail}). Check the registry's address "
            "in the registry setting or --registry, and that it is running."
        )
    if "manifest unknown" in low or "not found" in low:
        return f"{where} has no such image ({detail}). Publish it first (caffebox publish)."
    if "http response to https client" in low:
        return (
            f"{where.split('/')[0]} speaks plain HTTP ({detail}). The engine allows that only "
            "for 127.0.0.0/8 and registries listed under insecure-registries in daemon.json."
        )
    return f"{where}: {detail}."


class _Progress:
    """One tqdm bar over all layers' bytes of a push or pull stream."""

    def __init__(self, what: str, out: TextIO) -> None:
        self.bar = tqdm(desc=what, unit="B", unit_scale=True, file=out, leave=True,
                        disable=not out.isatty())  # fmt: skip
        self.layers: dict[str, tuple[int, int]] = {}

    def feed(self, chunk: dict[str, Any]) -> None:
        detail = chunk.get("progressDetail") or {}
        layer = chunk.get("id", "")
        if layer and detail.get("total"):
            self.layers[layer] = (int(detail.get("current", 0)), int(detail["total"]))
            self.bar.total = sum(t for _, t in self.layers.values())
            self.bar.n = sum(c for c, _ in self.layers.values())
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _follow(start: Callable[[], Iterable[dict[str, Any]]], what: str, where: str,
            out: TextIO) -> dict[str, Any]:  # fmt: skip
    """Start a push/pull and consume its stream with a progress bar; the last `aux`
    (the digest), or one clear error whether the engine refuses at once or midway."""
    progress = _Progress(what, out)
    aux: dict[str, Any] = {}
    try:
        for chunk in start():
            if "error" in chunk:
                raise CaffeboxError(_reason(chunk["error"].strip(), where), exit_code=1)
            aux = chunk.get("aux") or aux
            progress.feed(chunk)
    except docker.errors.APIError as exc:
        raise CaffeboxError(_reason(exc.explanation or str(exc), where), exit_code=1) from None
    finally:
        progress.close()
    return aux


@dataclass
class Published:
    reference: str
    digest: str


def plan_tags(client: docker.DockerClient, image: str, repository: str) -> list[str]:
    """Every REPOSITORY:TAG the image gets under the tag scheme."""
    try:
        labels = client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        raise CaffeboxError(
            f"The image {image} is not on this engine, so it cannot be published. Build it "
            "(caffebox build-cpu / build-gpu) or pass --image with one from 'docker images'."
        ) from None
    try:
        names = tags.image_tags(labels)
    except ValueError:
        raise CaffeboxError(
            f"{image} is not a caffebox image (it has no io.caffebox.variant label), so the tag "
            "scheme cannot say what is inside. Publish an image built by caffebox."
        ) from None
    return [f"{repository}:{t}" for t in names]


def check_repository(repository: str) -> str:
    repository = repository.strip().rstrip("/")
    if not repository:
        raise CaffeboxError(
            "Name the registry repository to publish to: --registry REGISTRY/NAMESPACE/NAME "
            "(e.g. ghcr.io/my-org/caffebox), or set the registry setting."
        )
    if ":" in repository.rsplit("/", 1)[-1] or "@" in repository:
        raise CaffeboxError(
            f"--registry {repository}: give the repository without a tag or digest; caffebox "
            "adds the tags of its scheme."
        )
    return repository


def publish(client: docker.DockerClient, image: str, repository: str, *, dry_run: bool = False,
            out: TextIO = sys.stdout) -> list[Published]:  # fmt: skip
    """Push `image` under every tag of the scheme; returns the references and the digest."""
    repository = check_repository(repository)
    references = plan_tags(client, image, repository)
    if dry_run:
        for ref in references:
            out.write(ref + "\n")
        return [Published(ref, "") for ref in references]
    done = []
    target = client.images.get(image)
    for ref in references:
        repo, tag = split_reference(ref)
        target.tag(repo, tag)
        aux = _follow(
            functools.partial(client.api.push, repo, tag, stream=True, decode=True),
            f"push {tag}", repository, out,
        )  # fmt: skip
        done.append(Published(ref, aux.get("Digest", "")))
        out.write(f"caffebox: pushed {ref} {aux.get('Digest', '')}\n")
    return done


def pull(
    client: docker.DockerClient, remote: str, local: str = "", out: TextIO = sys.stdout
) -> None:
    """Pull `remote` with a progress bar and tag it as `local` (when given and different)."""
    repo, tag = split_reference(remote)
    out.write(f"caffebox: pulling {remote}\n")
    if tag.startswith("sha256:"):
        _follow(lambda: client.api.pull(f"{repo}@{tag}", stream=True, decode=True), "pull",
                repo, out)  # fmt: skip
    else:
        _follow(lambda: client.api.pull(repo, tag, stream=True, decode=True), "pull", repo, out)
    if local and local != remote:
        local_repo, local_tag = split_reference(local)
        client.images.get(remote).tag(local_repo, local_tag)


def pull_named(client: docker.DockerClient, name: str, registry: str) -> str:
    """`caffebox pull`: the image from where the registry setting (or its own full
    reference) says; returns where it came from."""
    remote = remote_for(name, registry)
    if not remote:
        raise CaffeboxError(
            f"Nowhere to pull {name} from: set the registry setting (e.g. "
            "INVOKE_CAFFEBOX_REGISTRY=ghcr.io/my-org/caffebox) or name a full reference."
        )
    pull(client, remote, name)
    return remote


def ensure_image(
    client: docker.DockerClient, image: str, registry: str, out: TextIO = sys.stdout
) -> str:
    """Make sure `image` exists, pulling it when a registry can give it.

    Returns '' when it exists or was pulled, else why it could not be pulled (for the
    caller's error or its fallback to a build).
    """
    if engine.image_exists(client, image):
        return ""
    remote = remote_for(image, registry)
    if not remote:
        return "no registry setting names where to pull it from"
    try:
        pull(client, remote, image, out=out)
    except CaffeboxError as exc:
        out.write(f"caffebox: could not pull {remote}: {exc}\n")
        return str(exc)
    return ""
