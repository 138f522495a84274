"""From a build task's options and the settings to one image build.

The tasks (`build-cpu`, `build-gpu`) and the run path's build-on-demand both come here,
so an image built because `train` could not find it is the image `build-cpu` makes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from caffebox import engine, images
from caffebox.errors import CaffeboxError
from caffebox.source import CaffeSource
from caffebox.variants import (
    cuda_offline_base,
    debian_image,
    get_variant,
    offline_base_of,
    on_distro,
    parse_cuda_archs,
)


@dataclass(frozen=True)
class BuildOptions:
    """What a build task was told; empty values fall back to the settings."""

    tag: str = ""
    caffe_src: str = ""
    caffe_repo: str = ""
    caffe_ref: str = ""
    jobs: int = 0
    no_cache: bool = False
    cuda_arch: str = ""
    base_image: str = ""
    runtime_image: str = ""
    compile_only: bool = False
    distro: str = ""
    cuda: str = ""


def request(settings: Any, variant: str, options: BuildOptions) -> images.BuildRequest:
    """The BuildRequest for `variant` from the options, settings filling what they leave."""
    s, o = settings, options
    src, repo, ref = o.caffe_src, o.caffe_repo, o.caffe_ref
    if not (src or repo or ref):
        src, repo, ref = s.caffe_src, s.caffe_repo, s.caffe_ref
    chosen = get_variant(variant)
    if o.cuda and chosen.cpu_only:
        raise CaffeboxError("--cuda applies to the gpu variant only (caffebox build-gpu).")
    # Both variants follow the distro setting: the gpu one on caffebox's offline CUDA base
    # made on that release (CUDA 12 on Debian 13 unless --cuda says otherwise).
    chosen = on_distro(chosen, o.distro or s.distro, o.cuda)
    if o.cuda_arch:
        if chosen.cpu_only:
            raise CaffeboxError("--cuda-arch applies to the gpu variant only (caffebox build-gpu).")
        chosen = replace(chosen, cuda_archs=parse_cuda_archs(o.cuda_arch), cuda_archs_named=True)
    return images.BuildRequest(
        variant=chosen,
        source=CaffeSource.from_options(src or None, repo or None, ref or None),
        tag=o.tag or s[f"{variant}_image"],
        jobs=o.jobs or s.jobs or None,
        nocache=o.no_cache,
        ca_certificates=s.ca_certificates,
        base_image=o.base_image or s[f"{variant}_base_image"] or None,
        runtime_image=o.runtime_image or s[f"{variant}_runtime_image"] or None,
        compile_only=o.compile_only,
    )


def build(settings: Any, variant: str, options: BuildOptions = BuildOptions()) -> str:
    """Build one variant's image; returns its tag."""
    made = request(settings, variant, options)
    client = engine.connect()
    ensure_cuda_base(client, made, settings.ca_certificates)
    images.build(client, made)
    return made.tag


def ensure_cuda_base(client: Any, made: images.BuildRequest, ca_certificates: str) -> None:
    """Make the offline CUDA base a gpu build is to start from when the engine lacks it
    (as `cuda-base` would): the default gpu path then needs no step of its own."""
    for image in (made.base_image or made.variant.base_image,
                  made.runtime_image or made.variant.runtime_image):  # fmt: skip
        known = offline_base_of(image)
        if known is None or engine.image_exists(client, image):
            continue
        cuda, distro = known
        images.build_cuda_offline_base(
            client, cuda_offline_base(distro, cuda), debian_image(distro), ca_certificates,
            cuda=cuda,
        )  # fmt: skip
        return


def variant_named(settings: Any, image: str) -> str:
    """'cpu' or 'gpu' when `image` is the tag a build task makes by default, else ''.
    Only those images are built on demand: any other name is the user's own."""
    return {settings.cpu_image: "cpu", settings.gpu_image: "gpu"}.get(image, "")
