"""Image variants: everything that differs between the cpu and gpu images."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """What one image variant compiles and which base it builds on."""

    name: str
    cpu_only: bool
    base_image: str
    runtime_image: str
    blas: str = "open"
    blas_pkg: str = "openblas"
    python: str = "python3"
    use_cudnn: bool = False
    use_nccl: bool = False
    cuda_dir: str = ""
    cuda_arch: str = ""
    extra_build_packages: tuple[str, ...] = ()

    @property
    def pkgconfig_modules(self) -> str:
        """pkg-config modules whose include/library folders Caffe needs."""
        return "hdf5 opencv4"


CPU = Variant(
    name="cpu",
    cpu_only=True,
    base_image="debian:bookworm-slim",
    runtime_image="debian:bookworm-slim",
)

VARIANTS: dict[str, Variant] = {CPU.name: CPU}


def get_variant(name: str) -> Variant:
    """The variant called `name`, or an error listing the known ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        from caffebox.errors import CaffeboxError

        known = ", ".join(sorted(VARIANTS))
        raise CaffeboxError(
            f"Unknown variant {name!r}: caffebox builds {known}. Pass --variant with one of them."
        ) from None
