"""What `gradcheck` and `test-layers` run in the image: caffebox_layers.testing's gradient
checker on real pycaffe, and the user's pytest suite with our fixtures plugin."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from caffebox.errors import CaffeboxError


@dataclass
class GradcheckOptions:
    """gradcheck's options, as Caffe's own checker names them (defaults as Caffe's)."""

    layer: str
    inputs: list[str] = field(default_factory=list)
    outputs: int = 1
    param_str: str = ""
    propagate_down: str = ""
    step: float = 1e-2
    threshold: float = 1e-3
    kink: float = 0.0
    kink_range: float = -1.0
    seed: int = 1701
    gpu: str = ""


def gradcheck_command(o: GradcheckOptions) -> list[str]:
    """The checker's command line inside the image; one paragraph for what it cannot take."""
    if not o.inputs:
        raise CaffeboxError(
            "gradcheck needs the layer's bottoms: add --input NAME=SHAPE for each, e.g. "
            "--input data=2x3x4x4 --input label=2x1."
        )
    if o.gpu and ("," in o.gpu or o.gpu == "all"):
        raise CaffeboxError(f"gradcheck --gpu {o.gpu!r}: name one GPU, e.g. --gpu 0.")
    command = ["python3", "-m", "caffebox_layers.testing", o.layer, "--backend", "caffe"]
    for item in o.inputs:
        command += ["--input", item]
    command += ["--outputs", str(o.outputs), "--param-str", o.param_str, "--step", str(o.step)]
    command += ["--threshold", str(o.threshold), "--kink", str(o.kink)]
    command += ["--kink-range", str(o.kink_range), "--seed", str(o.seed)]
    command += ["--propagate-down", o.propagate_down] if o.propagate_down else []
    command += ["--gpu", "0"] if o.gpu else []  # the one GPU handed in is device 0 inside
    return command


def test_layers_command(path: str, pytest_args: list[str]) -> tuple[list[str], Path]:
    """pytest with our fixtures on the user's tests; the folder that goes on PYTHONPATH."""
    target = Path(path)
    if not target.exists():
        raise CaffeboxError(
            f"{target.resolve()} does not exist. Pass the folder that holds your layer tests, "
            "e.g. 'caffebox test-layers my_layers/tests'."
        )
    command = ["python3", "-m", "pytest", "-p", "caffebox_layers.testing.plugin"]
    command += ["-p", "no:cacheprovider", str(target), *pytest_args]
    return command, target if target.is_dir() else target.parent
