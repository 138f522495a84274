"""GPU selection for runs: parsing --gpu, the engine's device requests, and the checks
that must pass before a GPU container starts."""

from __future__ import annotations

from typing import Any

from docker.types import DeviceRequest

from caffebox import contract
from caffebox.errors import CaffeboxError


def parse_gpus(text: str) -> list[str]:
    """'0', '0,1' or 'all' -> ['0'], ['0', '1'] or ['all']."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if items == ["all"]:
        return items
    if not items or not all(item.isdigit() for item in items):
        raise CaffeboxError(
            f"--gpu {text!r}: give GPU numbers as nvidia-smi lists them ('0', '0,1') or 'all'."
        )
    if len(set(items)) != len(items):
        raise CaffeboxError(f"--gpu {text!r} names a GPU twice.")
    return items


def device_requests(gpus: list[str]) -> list[dict[str, Any]]:
    """The engine's device requests for `gpus` (what `docker run --gpus` sends)."""
    if not gpus:
        return []
    if gpus == ["all"]:
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return [DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])]


def caffe_gpu_flag(gpus: list[str]) -> str:
    """Caffe's -gpu value inside the container, where the chosen GPUs are renumbered 0..n-1."""
    return "all" if gpus == ["all"] else ",".join(str(i) for i in range(len(gpus)))


def check_engine_has_gpus(client: contract.Engine) -> None:
    """An engine without NVIDIA's container runtime cannot hand GPUs to a container."""
    runtimes = client.info().get("Runtimes") or {}
    if "nvidia" not in runtimes:
        raise CaffeboxError(
            "--gpu was given, but this Docker engine has no NVIDIA runtime (docker info lists "
            f"runtimes: {', '.join(sorted(runtimes)) or 'none'}). Install the NVIDIA Container "
            "Toolkit and run 'sudo nvidia-ctk runtime configure --runtime=docker' then restart "
            "Docker; or train without --gpu on the cpu image."
        )


def check_gpu_run(client: contract.Engine, image: str, variant: str, gpus: list[str]) -> None:
    """Before a container asks for `gpus`: a gpu image, and an engine that can hand GPUs in."""
    check_image_variant(variant, image, gpus)
    if gpus:
        check_engine_has_gpus(client)


def check_image_variant(variant: str, image: str, gpus: list[str]) -> None:
    """--gpu needs the gpu image: the cpu image is built CPU_ONLY."""
    if gpus and variant == "cpu":
        raise CaffeboxError(
            f"--gpu was given, but {image} is the CPU image (built CPU_ONLY). Build the GPU "
            "image with 'caffebox build-gpu' and pass --image caffebox:gpu (or set image)."
        )
