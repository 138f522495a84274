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
from typing import Any

import numpy as np

from caffebox_layers.params import ParamError
from caffebox_layers.prefetch import PrefetchingData

TRAIN = 0  # caffe.TRAIN; spelled out so the numpy stand-in needs no proto module


class ArrayData(PrefetchingData):
    """Serve batches of in-memory arrays as tops; no backward. `workers` (default 0 here:
    the arrays are in memory already) loads them ahead in processes of their own."""

    defaults = {
        "source": "",
        "keys": None,
        "batch_size": 64,
        "shuffle": None,
        "seed": 0,
        "scale": 1.0,
        "workers": 0,
    }
    required = ("source",)

    def setup_data(self, p: dict[str, Any]) -> None:
        name = type(self).__name__
        self.arrays = self._load(p["source"], p["keys"], name)
        if self.top_count != len(self.arrays):
            raise ParamError(
                f"{name}: {p['source']} gives {len(self.arrays)} arrays but the layer has "
                f"{self.top_count} tops; list the arrays with 'keys'."
            )
        scales = p["scale"] if isinstance(p["scale"], (list, tuple)) else [p["scale"]] * len(
            self.arrays)
        if len(scales) != len(self.arrays):
            raise ParamError(f"{name}: 'scale' needs one value per top ({len(self.arrays)}).")
        self.scales = [float(s) for s in scales]
        self.batch_size = int(p["batch_size"])
        if self.batch_size < 1:
            raise ParamError(f"{name}: 'batch_size' must be at least 1.")
        shuffle = p["shuffle"]
        in_train = getattr(self, "phase", TRAIN) == TRAIN
        self.shuffle = in_train if shuffle is None else bool(shuffle)
        self.count = len(self.arrays[0])
        self.epochs = EpochOrders(self.count, self.shuffle, p["seed"])

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

    def load_batch(self, index: int) -> tuple[np.ndarray, ...]:
        idx = self.epochs.samples(index * self.batch_size, self.batch_size)
        return tuple(array[idx].astype(np.float32) * scale
                     for array, scale in zip(self.arrays, self.scales))  # fmt: skip


class EpochOrders:
    """Which sample sits at each position of the endless stream of epochs: epoch e is the
    e-th permutation drawn from RandomState(seed) (or 0..n-1 unshuffled), as ArrayData
    always served them. Positions only grow in one process, so old epochs are dropped."""

    def __init__(self, count: int, shuffle: bool, seed: int) -> None:
        self.count, self.shuffle = count, shuffle
        self.rng = np.random.RandomState(seed)
        self.orders: dict[int, np.ndarray] = {}
        self.drawn = 0  # epochs drawn so far

    def order(self, epoch: int) -> np.ndarray:
        while self.drawn <= epoch:
            self.orders[self.drawn] = (self.rng.permutation(self.count) if self.shuffle
                                       else np.arange(self.count))  # fmt: skip
            self.drawn += 1
        return self.orders[epoch]

    def samples(self, start: int, size: int) -> np.ndarray:
        """The sample indices at positions start .. start + size - 1."""
        positions = np.arange(start, start + size)
        epochs, within = np.divmod(positions, self.count)
        picked = np.empty(size, dtype=np.intp)
        for epoch in np.unique(epochs):
            here = epochs == epoch
            picked[here] = self.order(int(epoch))[within[here]]
        for old in [e for e in self.orders if e < epochs[0]]:
            del self.orders[old]
        return picked
