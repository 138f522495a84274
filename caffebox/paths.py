"""Where caffebox's own files live: package data, read the same from a checkout or a wheel.

The checkout keeps docker/, Makefile.config.template and layers/ at its top level;
caffebox/assets links to them, and the wheel carries them as files (caffebox/assets,
and layers/ as the caffebox_layers package).
"""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

ASSETS = Path(str(resources.files("caffebox") / "assets"))
# Resolved: in a checkout these are links to the top-level docker/ and template.
DOCKER_DIR = (ASSETS / "docker").resolve()
DOCKERFILE = DOCKER_DIR / "Dockerfile"
RUNTIME_BASE_DOCKERFILE = DOCKER_DIR / "runtime-base.Dockerfile"
TEMPLATE = (ASSETS / "Makefile.config.template").resolve()
# The checkout the package was installed from (editable), if any: the test suite lives there.
ROOT = Path(__file__).resolve().parent.parent


def _layers_dir() -> Path:
    spec = importlib.util.find_spec("caffebox_layers")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("caffebox_layers is not installed beside caffebox: reinstall caffebox")
    return Path(next(iter(spec.submodule_search_locations)))


LAYERS_DIR = _layers_dir()
# The package's import name: the same on the host and in every image.
LAYERS_PACKAGE = "caffebox_layers"

# Where things live inside the image.
IMAGE_LAYERS_ROOT = "/opt/caffebox"
IMAGE_LAYERS_DIR = f"{IMAGE_LAYERS_ROOT}/{LAYERS_PACKAGE}"
# The tutorial's `from test_gradient_for_python_layer import ...` finds its module here.
IMAGE_COMPAT_DIR = f"{IMAGE_LAYERS_DIR}/compat"
IMAGE_CAFFE_PYTHON = "/opt/caffe/python"
IMAGE_PYDEPS = "/opt/caffe/pydeps"


def shown(path: Path, cwd: Path) -> str:
    """`path` as the user would type it: relative to the current folder when inside it."""
    return str(path.relative_to(cwd)) if path == cwd or cwd in path.parents else str(path)
