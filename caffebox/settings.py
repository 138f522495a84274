"""caffebox's settings: defaults for invoke's own configuration system.

Override them in invoke.yaml (a `caffebox:` section), ~/.invoke.yaml, or the
environment (INVOKE_CAFFEBOX_IMAGE=..., INVOKE_CAFFEBOX_CAFFE_SRC=...).
"""

from __future__ import annotations

from typing import Any

from caffebox.baseimage import DEFAULT_MIRROR

DEFAULTS: dict[str, Any] = {
    "caffebox": {
        # The image `train`, `shell` and friends run.
        "image": "caffebox:cpu",
        "cpu_image": "caffebox:cpu",
        "gpu_image": "caffebox:gpu",
        # Override a variant's base images (empty = the variant's own, see variants.py).
        "cpu_base_image": "",
        "cpu_runtime_image": "",
        "gpu_base_image": "",
        "gpu_runtime_image": "",
        # Where the Caffe source comes from when a task is not told: a local tree or
        # .tar.gz (caffe_src), else git (caffe_repo at caffe_ref; empty = BVLC pinned).
        "caffe_src": "",
        "caffe_repo": "",
        "caffe_ref": "",
        # Parallel compile jobs in the image build (0 = all cores).
        "jobs": 0,
        # A PEM bundle of extra CA certificates for git and pip during the build
        # (for TLS-intercepting proxies); empty = none.
        "ca_certificates": "",
        # Debian mirror for `base-image` when the base cannot be pulled.
        "debian_mirror": DEFAULT_MIRROR,
    }
}
