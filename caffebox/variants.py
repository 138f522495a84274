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


# The Debian releases an image builds on (--distro): 13 (Python 3.13, numpy 2.2, GCC 14),
# the default, and 12 (Python 3.11, numpy 1.24, GCC 12).
DISTROS = ("trixie", "bookworm")
# The CUDA majors of caffebox's offline bases (`cuda-base --cuda`), the default first: 12
# (Debian 13's own CUDA 12.4 with cuDNN 9 and NCCL wheels: runs on R525+ drivers through
# minor-version compatibility, builds Maxwell to Hopper, PTX for later GPUs), 13 (NVIDIA's
# wheels alone: R580+ drivers, Turing to Blackwell) and 11 (Debian 12's CUDA 11.8).
CUDAS = ("12", "13", "11")
# (CUDA major, Debian release) -> the offline base `cuda-base` makes (its runtime twin adds
# -runtime). Debian ships CUDA 12 on 13 only and CUDA 11.8 on 12 only.
_CUDA_OFFLINE = {
    ("12", "trixie"): "caffebox/cuda-offline:12-trixie",
    ("13", "trixie"): "caffebox/cuda-offline:13-trixie",
    ("13", "bookworm"): "caffebox/cuda-offline:13",
    ("11", "bookworm"): "caffebox/cuda-offline:11.8",
}
# NVIDIA's own images, one option away (--base-image, --runtime-image; Docker Hub): CUDA 12.4
# with cuDNN 9 on Ubuntu 22.04 (Python 3.10, numpy 1.21).
NVIDIA_BASE_IMAGE = "nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04"
NVIDIA_RUNTIME_IMAGE = "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"

# The default gpu variant: caffebox's own CUDA 12 base on Debian 13, so the gpu image has
# the cpu image's Python, numpy and wheels; the distro setting and --cuda move it.
GPU = Variant(
    name="gpu",
    cpu_only=False,
    base_image=_CUDA_OFFLINE[("12", "trixie")],
    runtime_image=_CUDA_OFFLINE[("12", "trixie")] + "-runtime",
    use_cudnn=True,
    use_nccl=True,
    cuda_dir="/usr/local/cuda",
    cuda_archs=DEFAULT_CUDA_ARCHS,
    cudnn_compat="/usr/local/include/caffebox/cudnn_compat.h",
)

VARIANTS: dict[str, Variant] = {CPU.name: CPU, GPU.name: GPU}


def debian_image(distro: str) -> str:
    """The slim Debian image of a release, as Docker's library names it."""
    return f"debian:{check_distro(distro)}-slim"


def cuda_offline_base(distro: str, cuda: str = "12") -> str:
    """The offline CUDA build base `cuda-base --cuda CUDA --distro DISTRO` makes, or an
    error saying which CUDA each Debian release has."""
    major = cuda.split(".")[0]
    if major not in CUDAS:
        raise CaffeboxError(
            f"--cuda {cuda}: caffebox makes offline CUDA bases for CUDA "
            f"{', '.join(CUDAS)}. Pass one of them, or NVIDIA's images with --base-image "
            f"and --runtime-image (e.g. {NVIDIA_BASE_IMAGE})."
        )
    base = _CUDA_OFFLINE.get((major, check_distro(distro)))
    if base is None:
        has = cudas_on(distro)
        raise CaffeboxError(
            f"--cuda {cuda} on Debian {distro}: Debian {distro} has CUDA "
            f"{' or '.join(has)} here (CUDA 12 is Debian 13's, 11.8 Debian 12's; 13 comes from "
            f"NVIDIA's wheels on both). Pass --cuda {has[0]}, or another --distro."
        )
    return base


def check_distro(distro: str) -> str:
    """`distro` if caffebox builds on it, else an error naming those it does."""
    if distro not in DISTROS:
        raise CaffeboxError(
            f"--distro {distro!r}: caffebox builds on Debian {' and '.join(DISTROS)}. Pass "
            "one of them (or --base-image for another base)."
        )
    return distro


def cudas_on(distro: str) -> list[str]:
    """The CUDA majors caffebox has an offline base for on `distro`, the default first."""
    return [c for c in CUDAS if (c, check_distro(distro)) in _CUDA_OFFLINE]


def default_cuda(distro: str) -> str:
    """The CUDA a gpu image builds with on `distro` when not told: 12 on Debian 13, 13 on
    Debian 12 (Debian 12 has no CUDA 12)."""
    return cudas_on(distro)[0]


def offline_base_of(image: str) -> tuple[str, str] | None:
    """(CUDA major, distro) when `image` is an offline base `cuda-base` makes (devel or
    -runtime), else None: such a base is made on demand, any other is pulled or refused."""
    for (cuda, distro), base in _CUDA_OFFLINE.items():
        if image in (base, base + "-runtime"):
            return cuda, distro
    return None


def on_distro(variant: Variant, distro: str, cuda: str = "") -> Variant:
    """`variant` built on a Debian release: the cpu variant on its slim image, the gpu
    variant on the offline CUDA base for `cuda` made on it (NVIDIA publishes no Debian
    images)."""
    if variant.cpu_only:
        image = debian_image(distro)
        return replace(variant, base_image=image, runtime_image=image)
    base = cuda_offline_base(distro, cuda or default_cuda(distro))
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
