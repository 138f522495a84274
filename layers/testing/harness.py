"""One Python layer wired to input blobs: in a real pycaffe Net, or on the numpy stand-in.

Both harnesses expose the same thing, which is all a gradient check needs:
``bottoms``, ``tops``, ``params`` (the layer's blobs), ``propagate_down``,
``forward()`` and ``backward()``.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any, Union

import numpy as np

Inputs = Union[Mapping[str, np.ndarray], Sequence[tuple[str, np.ndarray]]]
LAYER_NAME = "layer_under_test"


def split_layer(layer: Any) -> tuple[str, str]:
    """'pkg.mod.Class' or a class -> (module, class name)."""
    if isinstance(layer, str):
        module, _, name = layer.rpartition(".")
        if not module:
            raise ValueError(
                f"{layer!r}: give the layer as 'module.Class', e.g. "
                "caffebox_layers.losses.EuclideanLoss"
            )
        return module, name
    return layer.__module__, layer.__name__


def normalise_inputs(inputs: Inputs) -> list[tuple[str, np.ndarray]]:
    pairs = list(inputs.items()) if isinstance(inputs, Mapping) else list(inputs)
    return [(str(name), np.asarray(value, dtype=np.float32)) for name, value in pairs]


def output_names(outputs: int | Sequence[str]) -> list[str]:
    return [f"out{i}" for i in range(outputs)] if isinstance(outputs, int) else list(outputs)


def caffe_backend() -> tuple[Any, str]:
    """The importable caffe module and whether it is 'caffe' (real) or 'standin'."""
    module = sys.modules.get("caffe")
    if module is None:
        try:
            import caffe as module  # noqa: F811
        except ImportError:
            raise RuntimeError(
                "No caffe here. Run inside a caffebox image (caffebox gradcheck / caffebox "
                "test-layers), or switch on the numpy stand-in first: "
                "from caffebox_layers.testing import standin; standin.install()"
            ) from None
    kind = "standin" if getattr(module, "IS_CAFFEBOX_STANDIN", False) else "caffe"
    return module, kind


class StandinHarness:
    """The layer object called directly, with stand-in Blobs (no Caffe at all)."""

    backend = "standin"

    def __init__(self, layer, inputs, outputs, param_str, propagate_down, phase):
        from caffebox_layers.testing import standin

        module, name = split_layer(layer)
        cls = (
            layer if not isinstance(layer, str) else getattr(importlib.import_module(module), name)
        )
        self.layer = cls()
        # Caffe (as caffebox builds it) sets both names: BVLC's and 2015 forks'.
        self.layer.param_str = self.layer.param_str_ = param_str
        self.layer.phase = phase
        self.bottoms = standin.RawBlobVec()
        for _, value in normalise_inputs(inputs):
            blob = standin.Blob(*value.shape)
            blob.data[...] = value
            self.bottoms.append(blob)
        self.tops = standin.RawBlobVec(standin.Blob() for _ in output_names(outputs))
        self.propagate_down = list(propagate_down)
        self.layer.setup(self.bottoms, self.tops)
        self.layer.reshape(self.bottoms, self.tops)

    @property
    def params(self):
        return list(self.layer.blobs)

    def forward(self) -> None:
        self.layer.reshape(self.bottoms, self.tops)
        self.layer.forward(self.bottoms, self.tops)

    def backward(self) -> None:
        self.layer.backward(self.tops, self.propagate_down, self.bottoms)


def net_prototxt(layer, inputs, outputs, param_str, propagate_down) -> str:
    """The tutorial's net: DummyData per input, the Python layer, force_backward."""
    module, name = split_layer(layer)
    lines = ['name: "gradient_check"', "force_backward: true"]
    pairs = normalise_inputs(inputs)
    for input_name, value in pairs:
        dims = " ".join(f"dim: {d}" for d in value.shape)
        lines.append(
            f'layer {{ name: "input_{input_name}" type: "DummyData" top: "{input_name}" '
            f"dummy_data_param {{ shape {{ {dims} }} }} }}"
        )
    bottoms = " ".join(f'bottom: "{n}"' for n, _ in pairs)
    tops = " ".join(f'top: "{n}"' for n in output_names(outputs))
    downs = " ".join(f"propagate_down: {'true' if d else 'false'}" for d in propagate_down)
    escaped = param_str.replace("\\", "\\\\").replace('"', '\\"')
    lines.append(
        f'layer {{ name: "{LAYER_NAME}" type: "Python" {bottoms} {tops} {downs} '
        f'python_param {{ module: "{module}" layer: "{name}" param_str: "{escaped}" }} }}'
    )
    return "\n".join(lines) + "\n"


class CaffeHarness:
    """The layer inside a real pycaffe Net, run with Net._forward/_backward on it alone."""

    backend = "caffe"

    def __init__(self, layer, inputs, outputs, param_str, propagate_down, phase):
        import caffe

        text = net_prototxt(layer, inputs, outputs, param_str, propagate_down)
        with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
            f.write(text)
        try:
            self.net = caffe.Net(f.name, phase)
        finally:
            os.unlink(f.name)
        pairs = normalise_inputs(inputs)
        self.bottoms = [self.net.blobs[name] for name, _ in pairs]
        for blob, (_, value) in zip(self.bottoms, pairs):
            blob.data[...] = value
        self.tops = [self.net.blobs[name] for name in output_names(outputs)]
        self.propagate_down = list(propagate_down)
        self.index = list(self.net._layer_names).index(LAYER_NAME)
        self.layer = self.net.layers[self.index]

    @property
    def params(self):
        return list(self.layer.blobs)

    def forward(self) -> None:
        self.net._forward(self.index, self.index)

    def backward(self) -> None:
        self.net._backward(self.index, self.index)


def make_harness(
    layer,
    inputs: Inputs,
    outputs: int | Sequence[str] = 1,
    param_str: str = "",
    propagate_down: Sequence[bool] | None = None,
    phase: int = 0,
    backend: str = "auto",
):
    """A harness on the requested backend: 'caffe', 'standin' or 'auto' (what is here)."""
    if propagate_down is None:
        propagate_down = [True] * len(normalise_inputs(inputs))
    if backend == "standin":
        from caffebox_layers.testing import standin

        standin.install()  # refuses where a real caffe exists
    if backend == "auto":
        backend = caffe_backend()[1]
    cls = CaffeHarness if backend == "caffe" else StandinHarness
    return cls(layer, inputs, outputs, param_str, propagate_down, phase)
