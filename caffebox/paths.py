"""Where caffebox's own files live (the checkout that `pip install -e .` points at)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKER_DIR = ROOT / "docker"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
TEMPLATE = ROOT / "Makefile.config.template"
LAYERS_DIR = ROOT / "layers"

# Where things live inside the image.
IMAGE_LAYERS_ROOT = "/opt/caffebox"
IMAGE_LAYERS_DIR = f"{IMAGE_LAYERS_ROOT}/layers"
# The tutorial's `from test_gradient_for_python_layer import ...` finds its module here.
IMAGE_COMPAT_DIR = f"{IMAGE_LAYERS_DIR}/compat"
IMAGE_CAFFE_PYTHON = "/opt/caffe/python"
IMAGE_PYDEPS = "/opt/caffe/pydeps"
