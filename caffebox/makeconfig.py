"""Render Makefile.config.template for a variant.

The template uses @NAME@ placeholders (not $-syntax, which Make owns). Values that
depend on the image, such as the Python version, stay as $(shell ...) probes in the
template itself and are resolved inside the image while Caffe builds.
"""

from __future__ import annotations

import re
from pathlib import Path

from caffebox import paths
from caffebox.errors import CaffeboxError
from caffebox.variants import Variant

_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


def _flag(on: bool) -> str:
    return "1" if on else ""


def template_values(variant: Variant) -> dict[str, str]:
    """The placeholder values for one variant."""
    return {
        "VARIANT": variant.name,
        "CPU_ONLY": _flag(variant.cpu_only),
        "USE_CUDNN": _flag(variant.use_cudnn),
        "USE_NCCL": _flag(variant.use_nccl),
        "CUDA_DIR": variant.cuda_dir,
        "CUDA_ARCHS": " ".join(str(a) for a in sorted(set(variant.cuda_archs))),
        "CUDA_ARCHS_NAMED": _flag(variant.cuda_archs_named),
        "CUDNN_COMPAT": variant.cudnn_compat,
    }


def render(variant: Variant, template: Path = paths.TEMPLATE) -> str:
    """The Makefile.config text for `variant`; unknown placeholders are an error."""
    values = template_values(variant)
    text = template.read_text()
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise CaffeboxError(
            f"{template} uses placeholders caffebox does not know: {', '.join(missing)}. "
            f"Use only {', '.join(sorted(values))}."
        )
    rendered = _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
    if "WITH_PYTHON_LAYER := 1" not in rendered:
        raise CaffeboxError(
            f"{template} no longer sets 'WITH_PYTHON_LAYER := 1': without it Caffe has no "
            "Python layer. Put the line back."
        )
    return rendered
