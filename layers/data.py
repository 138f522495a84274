"""ArrayData: a data layer that serves arrays from a .npy or .npz file.

    layer {
      name: "digits" type: "Python" top: "data" top: "label"
      include { phase: TRAIN }
      python_param {
        module: "caffebox_layers.data" layer: "ArrayData"
        param_str: "{'source': 'examples/digits/digits_train.npz', 'keys': ['data', 'label'],"
                   " 'batch_size': 64, 'scale': [0.0625, 1], 'seed': 1}"
      }
    }

One top per array (``keys`` names them in a .npz, in top order; a .npy is one
array). The first axis is the sample axis; each forward takes the next
``batch_size`` samples, wrapping round at the end of an epoch. Samples are
shuffled every epoch in the TRAIN phase (``shuffle`` overrides), with ``seed``
making the order reproducible. ``source`` is relative to Caffe's working directory.
"""

from __future__ import annotations

import os

import caffe
import numpy as np

from caffebox_layers import blobs
from caffebox_layers.params import ParamError, layer_params

TRAIN = 0  # caffe.TRAIN; spelled out so the numpy stand-in needs no proto module


class ArrayData(caffe.Layer):
    """Serve batches of in-memory arrays as tops; no backward."""

    defaults = {
        "source": "",
        "keys": None,
        "batch_size": 64,
        "shuffle": None,
        "seed": 0,
        "scale": 1.0,
    }

    def setup(self, bottom, top):
        name = type(self).__name__
        p = layer_params(self, self.defaults, required=["source"])
        if len(bottom) != 0:
            raise ParamError(f"{name} takes no bottoms, got {len(bottom)}.")
        self.arrays = self._load(p["source"], p["keys"], name)
        if len(top) != len(self.arrays):
            raise ParamError(
                f"{name}: {p['source']} gives {len(self.arrays)} arrays but the layer has "
                f"{len(top)} tops; list the arrays with 'keys'."
            )
        scales = p["scale"] if isinstance(p["scale"], (list, tuple)) else [p["scale"]] * len(top)
        if len(scales) != len(top):
            raise ParamError(f"{name}: 'scale' needs one value per top ({len(top)}).")
        self.scales = [float(s) for s in scales]
        self.batch_size = int(p["batch_size"])
        if self.batch_size < 1:
            raise ParamError(f"{name}: 'batch_size' must be at least 1.")
        shuffle = p["shuffle"]
        in_train = getattr(self, "phase", TRAIN) == TRAIN
        self.shuffle = in_train if shuffle is None else bool(shuffle)
        self.rng = np.random.RandomState(p["seed"])
        self.count = len(self.arrays[0])
        self.order = self._new_order()
        self.cursor = 0

    @staticmethod
    def _load(source: str, keys, name: str) -> list[np.ndarray]:
        if not os.path.isfile(source):
            raise ParamError(
                f"{name}: source {source!r} not found (relative to {os.getcwd()}). "
                "Fix 'source' in param_str."
            )
        loaded = np.load(source, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            arrays = [loaded]
        else:
            keys = keys or list(loaded.files)
            missing = [k for k in keys if k not in loaded.files]
            if missing:
                raise ParamError(
                    f"{name}: {source} has no array {missing[0]!r}; it has {loaded.files}."
                )
            arrays = [loaded[k] for k in keys]
        counts = {len(a) for a in arrays}
        if len(counts) != 1:
            raise ParamError(f"{name}: the arrays in {source} differ in length: {sorted(counts)}.")
        return arrays

    def _new_order(self) -> np.ndarray:
        return self.rng.permutation(self.count) if self.shuffle else np.arange(self.count)

    def _next_indices(self) -> np.ndarray:
        picked = []
        need = self.batch_size
        while need:
            take = min(need, self.count - self.cursor)
            picked.append(self.order[self.cursor : self.cursor + take])
            self.cursor += take
            need -= take
            if self.cursor == self.count:
                self.order = self._new_order()
                self.cursor = 0
        return np.concatenate(picked)

    # pycaffe's bottom/top vectors can be indexed but not iterated: use indices.
    def reshape(self, bottom, top):
        for i, array in enumerate(self.arrays):
            blobs.reshape(top[i], self.batch_size, *array.shape[1:])

    def forward(self, bottom, top):
        idx = self._next_indices()
        for i, (array, scale) in enumerate(zip(self.arrays, self.scales)):
            top[i].data[...] = array[idx].astype(np.float32) * scale

    def backward(self, top, propagate_down, bottom):
        """Data has no gradient."""
