"""caffebox_layers.gpu without a GPU: a numpy-backed fake CuPy and blobs that count every
host access. The GPU path must touch no `.data`/`.diff` per step (each copies a GPU blob
to the host), and nothing may evaluate a blob's pointer property unless Caffe runs on the
GPU (that allocates, copies, and aborts on a GPU build without a usable GPU)."""

from __future__ import annotations

import types

import numpy as np
import pytest

from caffebox_layers.testing import standin

if standin.real_caffe_available():  # pragma: no cover - the host suite never has pycaffe
    pytest.skip("a real caffe is importable here", allow_module_level=True)
standin.install()

from caffebox_layers import gpu  # noqa: E402
from caffebox_layers.losses import EuclideanLoss  # noqa: E402

MEMORY: dict[int, np.ndarray] = {}
SYNCED: list[str] = []


def _fake_cupy() -> types.SimpleNamespace:
    """Enough of CuPy for caffebox_layers.gpu, on numpy: a 'device pointer' is a key into
    MEMORY, an array over it is a view of the numpy array registered there."""
    cuda = types.SimpleNamespace(
        UnownedMemory=lambda pointer, size, owner: pointer,
        MemoryPointer=lambda memory, offset: memory,
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1, CUDARuntimeError=RuntimeError),
        get_current_stream=lambda: types.SimpleNamespace(
            synchronize=lambda: SYNCED.append("current stream")),
    )
    return types.SimpleNamespace(
        cuda=cuda, float32=np.float32,
        ndarray=lambda shape, dtype, memptr: MEMORY[memptr].reshape(shape),
        empty=np.empty, subtract=np.subtract, multiply=np.multiply, sum=np.sum,
    )  # fmt: skip


class CountingBlob:
    """A GPU build's blob: `.data`/`.diff` count host reads, the pointers count device reads."""

    def __init__(self, *shape: int) -> None:
        self._data, self._diff = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        self.host_reads = self.device_reads = 0

    @property
    def data(self) -> np.ndarray:
        self.host_reads += 1
        return self._data

    @property
    def diff(self) -> np.ndarray:
        self.host_reads += 1
        return self._diff

    def _pointer(self, array: np.ndarray) -> int:
        self.device_reads += 1
        MEMORY[id(array)] = array
        return id(array)

    @property
    def _gpu_data_ptr(self) -> int:
        return self._pointer(self._data)

    @property
    def _gpu_diff_ptr(self) -> int:
        return self._pointer(self._diff)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def count(self) -> int:
        return self._data.size

    def reshape(self, *shape: int) -> None:
        if shape != self._data.shape:
            self._data, self._diff = np.zeros(shape, np.float32), np.zeros(shape, np.float32)


@pytest.fixture
def on_gpu(monkeypatch):
    monkeypatch.setattr(gpu, "cupy", _fake_cupy())
    monkeypatch.setattr(gpu, "caffe_on_gpu", lambda: True)


def _layer(cls, bottom, top, param_str=""):
    layer = cls()
    layer.param_str = param_str
    layer.setup(bottom, top)
    return layer


def test_gpu_steps_touch_no_host_memory(on_gpu):
    rng = np.random.RandomState(3)
    bottom, top = [CountingBlob(8, 5), CountingBlob(8, 5)], [CountingBlob(1)]
    layer = _layer(gpu.EuclideanLossGPU, bottom, top)
    assert layer.on_gpu
    buffers = set()
    for _ in range(3):
        a, b = rng.randn(8, 5).astype(np.float32), rng.randn(8, 5).astype(np.float32)
        bottom[0]._data[...], bottom[1]._data[...] = a, b
        top[0]._diff[0] = 2.0  # the loss weight
        layer.reshape(bottom, top)
        layer.forward(bottom, top)
        layer.backward(top, [True, True], bottom)
        buffers.add(id(layer.gpu_diff_))
        assert np.isclose(top[0]._data[0], np.sum((a - b) ** 2) / 8 / 2, rtol=1e-5)
        assert np.allclose(bottom[0]._diff, 2.0 * (a - b) / 8, rtol=1e-5)
        assert np.allclose(bottom[1]._diff, -2.0 * (a - b) / 8, rtol=1e-5)
    assert sum(blob.host_reads for blob in [*bottom, *top]) == 0
    assert len(buffers) == 1  # allocated once for the shape, not per step


def test_cpu_mode_on_a_gpu_build_never_evaluates_a_pointer(on_gpu, monkeypatch):
    monkeypatch.setattr(gpu, "caffe_on_gpu", lambda: False)
    bottom, top = [CountingBlob(2, 3), CountingBlob(2, 3)], [CountingBlob(1)]
    layer = _layer(gpu.EuclideanLossGPU, bottom, top)
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    assert not layer.on_gpu and sum(b.device_reads for b in [*bottom, *top]) == 0


def test_numpy_loss_reshape_reads_no_data_and_keeps_its_buffer():
    """EuclideanLoss.reshape read bottom[0].data.shape: a device-to-host copy per step."""
    bottom, top = [CountingBlob(4, 2), CountingBlob(4, 2)], [CountingBlob(1)]
    layer = _layer(EuclideanLoss, bottom, top)
    layer.reshape(bottom, top)
    first = layer.diff
    layer.reshape(bottom, top)
    assert bottom[0].host_reads == 0 and layer.diff is first
    bottom[0].reshape(5, 2)
    bottom[1].reshape(5, 2)
    layer.reshape(bottom, top)
    assert layer.diff.shape == (5, 2)


def test_sync_waits_for_the_current_stream(on_gpu):
    """A layer that made its own CuPy stream current calls gpu.sync() before returning, so
    Caffe's next kernel (on the default stream) sees its results."""
    SYNCED.clear()
    gpu.sync()
    assert SYNCED == ["current stream"]
