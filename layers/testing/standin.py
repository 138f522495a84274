"""A small numpy stand-in for pycaffe's `caffe.Layer` and `Blob`, for machines without Caffe.

Switch it on explicitly, before importing a layer module:

    from caffebox_layers.testing import standin
    standin.install()          # refuses if a real caffe is importable
    from caffebox_layers.losses import EuclideanLoss

It covers what a Python layer touches: Blob ``data``/``diff`` (float32), ``shape``,
``count``, ``num/channels/height/width``, ``reshape``; ``self.blobs.add_blob``;
``param_str`` and ``phase``; bottom/top vectors that, like pycaffe's, index but do
not iterate. It is never used when a real caffe exists.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np

TRAIN, TEST = 0, 1


class Blob:
    """A float32 data/diff pair with pycaffe's Blob interface."""

    def __init__(self, *shape: int) -> None:
        self._data = np.zeros(shape, dtype=np.float32)
        self._diff = np.zeros(shape, dtype=np.float32)

    @property
    def data(self) -> np.ndarray:
        return self._data

    @property
    def diff(self) -> np.ndarray:
        return self._diff

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    @property
    def count(self) -> int:
        return int(self._data.size)

    def _axis(self, i: int) -> int:
        # pycaffe's legacy accessors: 1 for a missing axis, as Caffe's LegacyShape.
        return self.shape[i] if i < len(self.shape) else 1

    num = property(lambda self: self._axis(0))
    channels = property(lambda self: self._axis(1))
    height = property(lambda self: self._axis(2))
    width = property(lambda self: self._axis(3))

    def reshape(self, *shape: int) -> None:
        """Reshape like Caffe: contents are kept while the size does not change."""
        shape = tuple(int(s) for s in shape)
        if int(np.prod(shape)) == self._data.size:
            self._data = self._data.reshape(shape)
            self._diff = self._diff.reshape(shape)
        else:
            self._data = np.zeros(shape, dtype=np.float32)
            self._diff = np.zeros(shape, dtype=np.float32)


class RawBlobVec(list):
    """A layer's bottom or top vector. Like pycaffe's, it has len() and indexing but
    cannot be iterated (pycaffe raises TypeError), so code that works here works there."""

    def __iter__(self):
        raise TypeError(
            "No to_python (by-value) converter found for C++ type: caffe::Blob<float>* "
            "(pycaffe cannot iterate bottom/top: index them, e.g. for i in range(len(top)))"
        )

    def __getitem__(self, index):
        if isinstance(index, slice):
            return RawBlobVec(list.__getitem__(self, index))
        return list.__getitem__(self, index)


class BlobVec(list):
    """A layer's parameter blobs, with pycaffe's add_blob."""

    def add_blob(self, *shape: int) -> None:
        self.append(Blob(*shape))


class Layer:
    """Base class for Python layers; Caffe sets param_str and phase before setup."""

    def __init__(self) -> None:
        self.param_str = self.param_str_ = ""  # both names, as caffebox's builds
        self.phase = TRAIN
        self.blobs = BlobVec()

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass


def real_caffe_available() -> bool:
    """True when a real pycaffe is imported or importable."""
    module = sys.modules.get("caffe")
    if module is not None:
        return not getattr(module, "IS_CAFFEBOX_STANDIN", False)
    return importlib.util.find_spec("caffe") is not None


def install() -> types.ModuleType:
    """Register the stand-in as `caffe`; an error if a real caffe exists."""
    if real_caffe_available():
        raise RuntimeError(
            "A real caffe is importable here; the numpy stand-in never shadows it. "
            "Test against the real one (caffebox_layers.testing backend='caffe')."
        )
    module = sys.modules.get("caffe")
    if module is None:
        module = types.ModuleType("caffe", "caffebox's numpy stand-in for pycaffe")
        module.Layer, module.Blob, module.TRAIN, module.TEST = Layer, Blob, TRAIN, TEST
        module.IS_CAFFEBOX_STANDIN = True
        sys.modules["caffe"] = module
    return module
