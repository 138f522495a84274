"""Image variants: everything that differs between the cpu and gpu images."""

from __future__ import annotations

from dataclasses import dataclass, replace

from caffebox.errors import CaffeboxError


@dataclass(frozen=True)
class Variant:
    """What one image variant compiles and which base it builds on."""

    name: str
    cpu_only: bool
    base_image: str
    runtime_image: str
    use_cudnn: bool = False
    use_nccl: bool = False
    cuda_dir: str = ""
    # Compute capabilities as 80, 90. A default list is trimmed, inside the image, to what
    # the base's nvcc compiles (CUDA 13 dropped sm_60/70, CUDA 12.4 lacks sm_100/120); a
    # list the user named is kept whole, and Make stops with an error if nvcc lacks one.
    cuda_archs: tuple[int, ...] = ()
    cuda_archs_named: bool = False
    cudnn_compat: str = ""
    extra_build_packages: tuple[str, ...] = ()


CPU = Variant(
    name="cpu",
    cpu_only=True,
    base_image="debian:trixie-slim",
    runtime_image="debian:trixie-slim",
)

# Compute capabilities compiled by default, Pascal (6.0) to Blackwell (10.0, 12.0), each
# kept where the base's nvcc supports it, plus PTX of the newest kept, which later GPUs
# JIT-compile.
DEFAULT_CUDA_ARCHS = (60, 61, 70, 75, 80, 86, 89, 90, 100, 120)


def parse_cuda_archs(text: str) -> tuple[int, ...]:
    """'80,90', 'sm_80 sm_90' or '8.0 9.0' -> (80, 90); an error names the bad item."""
    archs = []
    for item in text.replace(",", " ").split():
        digits = item.lower().removeprefix("sm_").removeprefix("compute_").replace(".", "")
        if not digits.isdigit() or not 30 <= int(digits) <= 130:
            raise CaffeboxError(
                f"--cuda-arch: {item!r} is not a compute capability. Write them like "
                "'80,90' or 'sm_80 sm_90'."
            )
        archs.append(int(digits))
    if not archs:
        raise CaffeboxError("--cuda-arch is empty: name at least one, e.g. '80,90'.")
    return tuple(archs)


# NVIDIA's CUDA 12.4 images with cuDNN 9 on Ubuntu 22.04: CUDA 12 builds for Pascal (sm_60)
# to Hopper (sm_90) (CUDA 13 drops Pascal and Volta), runs on R525+ drivers through minor-
# version compatibility; Ubuntu 22.04's boost 1.74, OpenCV 4.5, protobuf 3.12 and Python 3.10
# are what Caffe's Makefile build handles.
GPU = Variant(
    name="gpu",
    cpu_only=False,
    base_image="nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04",
    runtime_image="nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04",
    use_cudnn=True,
    use_nccl=True,
    cuda_dir="/usr/local/cuda",
    cuda_archs=DEFAULT_CUDA_ARCHS,
    cudnn_compat="/usr/local/include/caffebox/cudnn_compat.h",
)

VARIANTS: dict[str, Variant] = {CPU.name: CPU, GPU.name: GPU}

# The Debian releases an image builds on (--distro): 13 (Python 3.13, numpy 2.2, GCC 14),
# the default, and 12 (Python 3.11, numpy 1.24, GCC 12).
DISTROS = ("trixie", "bookworm")
# The offline CUDA 13 base `cuda-base` makes on each (its runtime twin adds -runtime).
_CUDA_OFFLINE = {
    "bookworm": "caffebox/cuda-offline:13",
    "trixie": "caffebox/cuda-offline:13-trixie",
}


def debian_image(distro: str) -> str:
    """The slim Debian image of a release, as Docker's library names it."""
    return f"debian:{check_distro(distro)}-slim"


def cuda_offline_base(distro: str, cuda: str = "13") -> str:
    """The offline CUDA build base `cuda-base --cuda CUDA --distro DISTRO` makes."""
    if cuda.split(".")[0] == "11":
        return "caffebox/cuda-offline:11.8"  # Debian 12's own CUDA: one release only
    return _CUDA_OFFLINE[check_distro(distro)]


def check_distro(distro: str) -> str:
    """`distro` if caffebox builds on it, else an error naming those it does."""
    if distro not in DISTROS:
        raise CaffeboxError(
            f"--distro {distro!r}: caffebox builds on Debian {' and '.join(DISTROS)}. Pass "
            "one of them (or --base-image for another base)."
        )
    return distro


def on_distro(variant: Variant, distro: str) -> Variant:
    """`variant` built on a Debian release: the cpu variant on its slim image, the gpu
    variant on the offline CUDA 13 base made on it (NVIDIA publishes no Debian images)."""
    if variant.cpu_only:
        image = debian_image(distro)
        return replace(variant, base_image=image, runtime_image=image)
    base = cuda_offline_base(distro)
    return replace(variant, base_image=base, runtime_image=f"{base}-runtime")


def get_variant(name: str) -> Variant:
    """The variant called `name`, or an error listing the known ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        known = ", ".join(sorted(VARIANTS))
        raise CaffeboxError(
            f"Unknown variant {name!r}: caffebox builds {known}. Pass --variant with one of them."
        ) from None
