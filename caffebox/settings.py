"""caffebox's settings: defaults for invoke's own configuration system.

Override them in invoke.yaml (a `caffebox:` section), ~/.invoke.yaml, or the
environment (INVOKE_CAFFEBOX_IMAGE=..., INVOKE_CAFFEBOX_CAFFE_SRC=...).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from caffebox.errors import CaffeboxError

DEFAULTS: dict[str, Any] = {
    "caffebox": {
        # The image `train`, `run`, `python` and the other tasks that start a container run.
        "image": "caffebox:cpu",
        # docker (Docker or Podman's Docker-compatible API) or charliecloud (ch-run on an
        # unpacked export; --image is then its folder).
        "runtime": "docker",
        "cpu_image": "caffebox:cpu",
        "gpu_image": "caffebox:gpu",
        # The Debian release the cpu image and cuda-base build on: trixie (13: Python 3.13,
        # numpy 2) or bookworm (12: Python 3.11, numpy 1); build-gpu takes --distro only
        # when told (its default base is NVIDIA's Ubuntu).
        "distro": "trixie",
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
        # The CA bundle git and pip trust during the build: 'auto' = the host's system
        # bundle (so TLS-intercepting proxies the host trusts work), 'none', or a path.
        "ca_certificates": "auto",
        # Where published images live, as REGISTRY/NAMESPACE/NAME (e.g.
        # ghcr.io/my-org/caffebox): a missing image is pulled from here before any build.
        "registry": "",
        # Let cuDNN run float convolutions in TF32 on Ampere and later (faster; measured on
        # an H100: 8.6e-2 relative difference in an input gradient, FP32 1.1e-6):
        # CAFFEBOX_CUDNN_TF32=1 in every run.
        "cudnn_tf32": False,
        # Bounds on a runaway Python layer in every run: processes in the container, and
        # memory ('auto': this host's memory less a tenth, at least 1 GiB kept for the
        # host; 'none'; or a size such as '16g').
        "pids_limit": 4096,
        "memory_limit": "auto",
        # Seconds Ctrl-C, SIGTERM or SIGHUP give a run to snapshot and stop before it is
        # killed (a second Ctrl-C kills at once).
        "stop_grace": 60,
        # Debian mirror for `base-image` when the base cannot be pulled.
        "debian_mirror": "http://deb.debian.org/debian",
    }
}


def config_files(folder: Path) -> list[Path]:
    """The invoke config files invoke reads for a project folder, plus the user's and system's."""
    names = ("invoke.yaml", "invoke.yml")
    found = [folder / n for n in names]
    found += [Path.home() / f".{n}" for n in names]
    found += [Path("/etc") / n for n in names]
    return [p for p in found if p.is_file()]


def check_config_files(folder: Path) -> None:
    """Raise one clear error for an invoke config file that is not YAML invoke can read.

    invoke itself stops on such a file with a traceback of its own code.
    """
    for path in config_files(folder):
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise CaffeboxError(f"Cannot read the settings file {path} ({exc}).") from None
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            line = f"line {where.line + 1}: " if where is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise CaffeboxError(
                f"The settings file {path} is not valid YAML ({line}{problem}). Fix it there: "
                "settings go under a 'caffebox:' key, one 'name: value' per line, e.g. "
                "'caffebox: {image: \"caffebox:cpu\"}'."
            ) from None
        if data is not None and not isinstance(data, dict):
            raise CaffeboxError(
                f"The settings file {path} holds a {type(data).__name__}, not a mapping. Write "
                "settings under a 'caffebox:' key, e.g. 'caffebox: {image: \"caffebox:cpu\"}'."
            )


def exit_on_broken_config(folder: Path) -> None:
    """check_config_files for entry points that run before caffebox's error handling."""
    try:
        check_config_files(folder)
    except CaffeboxError as exc:
        sys.stderr.write(f"caffebox: {exc}\n")
        raise SystemExit(exc.exit_code) from None
