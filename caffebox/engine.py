"""The Docker engine connection, with one clear error when there is none."""

from __future__ import annotations

import docker
from docker.errors import DockerException

from caffebox import contract
from caffebox.errors import CaffeboxError


def connect() -> docker.DockerClient:
    """A client for the engine named by DOCKER_HOST (default: the local socket)."""
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except DockerException as exc:
        raise CaffeboxError(
            f"Cannot reach the Docker engine ({exc}). Start Docker (e.g. 'sudo systemctl start "
            "docker') and make sure your user may use it (member of the 'docker' group), or set "
            "DOCKER_HOST to the engine's address."
        ) from None
    return client


def image_variant(client: contract.Engine, name: str) -> str:
    """The caffebox variant an image was built as ('cpu', 'gpu'), '' for other images."""
    return str((client.images.get(name).labels or {}).get("io.caffebox.variant", ""))


def image_exists(client: contract.Engine, name: str) -> bool:
    """True when the engine has an image called `name`."""
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def has_own_init(client: contract.Engine, name: str) -> bool:
    """True when the image's entrypoint is an init (caffebox images: tini), so the engine
    need not add one (Podman's needs catatonit on the host for that)."""
    entry = (client.images.get(name).attrs.get("Config") or {}).get("Entrypoint") or []
    return bool(entry) and entry[0].rsplit("/", 1)[-1] in ("tini", "tini-static", "catatonit")


def is_podman(client: contract.Engine) -> bool:
    """True for Podman's Docker-compatible service (`podman system service`)."""
    components = client.version().get("Components") or []
    return any(str(c.get("Name", "")).startswith("Podman") for c in components)


def is_rootless(client: contract.Engine) -> bool:
    """True for an engine running as a normal user (Podman says Rootless; Docker lists
    name=rootless among its security options)."""
    info = client.info()
    options = info.get("SecurityOptions") or []
    return bool(info.get("Rootless")) or any("rootless" in str(o) for o in options)


def _implements(client: docker.DockerClient) -> contract.Engine:
    """mypy's check that Docker's SDK client (Docker, Podman) keeps the engine contract
    (never called)."""
    return client
