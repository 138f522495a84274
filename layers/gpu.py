"""Python layers on GPU memory, without host round trips: CuPy views of pycaffe blobs.

Since BVLC PR #5904 a GPU build of pycaffe exposes ``blob._gpu_data_ptr`` and
``blob._gpu_diff_ptr``. ``gpu_data(blob)`` / ``gpu_diff(blob)`` wrap them as CuPy float32
arrays of the blob's shape, sharing its memory (zero copy):

- Fetch them again in every call: reading the pointer is what tells Caffe the GPU copy
  is current (``mutable_gpu_data``), and a reshape that grows the blob reallocates it,
  so a cached array would point at freed memory.
- Streams: Caffe runs its kernels on the legacy default stream, and so does CuPy unless
  told otherwise, so work is ordered without any synchronisation. If a layer makes its own
  CuPy stream current, call ``sync()`` before returning, so Caffe's next kernel sees the
  results.

``EuclideanLossGPU`` is ``caffebox_layers.losses.EuclideanLoss`` computed this way on the GPU
(forward and backward never leave the device), falling back to numpy where there is no
GPU blob (CPU builds, the numpy stand-in), Caffe runs in CPU mode, or there is no CuPy:

    layer {
      name: "loss" type: "Python" bottom: "pred" bottom: "target" top: "loss"
      python_param { module: "caffebox_layers.gpu" layer: "EuclideanLossGPU" }
      loss_weight: 1
    }
"""

from __future__ import annotations

from caffebox_layers.losses import EuclideanLoss
from caffebox_layers.params import ParamError

try:  # CuPy is optional: without it every layer here runs on numpy
    import cupy
except ImportError:  # pragma: no cover - depends on the image
    cupy = None


def _view(blob, pointer: int):
    memory = cupy.cuda.UnownedMemory(pointer, blob.count * 4, owner=blob)
    return cupy.ndarray(
        tuple(blob.shape), dtype=cupy.float32, memptr=cupy.cuda.MemoryPointer(memory, 0)
    )


def gpu_data(blob):
    """The blob's data on the GPU as a CuPy array (zero copy; fetch again after reshape)."""
    return _view(blob, blob._gpu_data_ptr)


def gpu_diff(blob):
    """The blob's diff on the GPU as a CuPy array (zero copy; fetch again after reshape)."""
    return _view(blob, blob._gpu_diff_ptr)


def sync() -> None:
    """Wait for CuPy's current stream: needed only when a layer used a stream of its own."""
    cupy.cuda.get_current_stream().synchronize()


def caffe_on_gpu() -> bool | None:
    """Caffe's mode in this thread: True for GPU, False for CPU, None where this pycaffe
    cannot say (caffebox images add _caffe.caffebox_mode(); pycaffe has setters only)."""
    try:
        from caffe import _caffe
    except ImportError:
        return None
    mode = getattr(_caffe, "caffebox_mode", None)
    return None if mode is None else mode() == 1


def gpu_available(blob) -> bool:
    """True when `blob` is of a GPU build, Caffe runs on the GPU, and CuPy sees a device.

    Nothing here evaluates a blob's pointer property (that calls mutable_gpu_data(): an
    allocation and a copy, and a CHECK abort on a GPU build without a usable GPU): the
    build is read from the class, the mode from Caffe, the device from CuPy.
    """
    if cupy is None or not hasattr(type(blob), "_gpu_data_ptr"):
        return False
    if caffe_on_gpu() is False:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except cupy.cuda.runtime.CUDARuntimeError:
        return False


class EuclideanLossGPU(EuclideanLoss):
    """EuclideanLoss on the GPU through CuPy; numpy where no GPU blob exists.

    On the GPU path no step touches `.data` or `.diff` (each would copy the blob to the
    host): shapes come from `blob.shape`, the work buffer is allocated once per shape.
    """

    defaults = {"backend": "auto"}

    def setup(self, bottom, top):
        super().setup(bottom, top)
        backend = self.params["backend"]
        if backend not in ("auto", "gpu", "cpu"):
            raise ParamError(
                f"EuclideanLossGPU: 'backend' must be auto, gpu or cpu, not {backend!r}."
            )
        self.on_gpu = backend != "cpu" and gpu_available(bottom[0])
        if backend == "gpu" and not self.on_gpu:
            raise ParamError(
                "EuclideanLossGPU: backend 'gpu' asked for, but there is no GPU blob, GPU mode "
                "or CuPy here."
            )
        self.gpu_diff_ = None

    def reshape(self, bottom, top):
        if not self.on_gpu:
            return super().reshape(bottom, top)
        if bottom[0].count != bottom[1].count:
            raise ParamError(
                f"EuclideanLoss: bottoms differ in size ({bottom[0].count} vs {bottom[1].count})."
            )
        shape = tuple(bottom[0].shape)
        if self.gpu_diff_ is None or self.gpu_diff_.shape != shape:
            self.gpu_diff_ = cupy.empty(shape, dtype=cupy.float32)
        top[0].reshape(1)

    def forward(self, bottom, top):
        if not self.on_gpu:
            return super().forward(bottom, top)
        a, b = gpu_data(bottom[0]), gpu_data(bottom[1])
        cupy.subtract(a, b.reshape(a.shape), out=self.gpu_diff_)
        gpu_data(top[0])[0] = cupy.sum(self.gpu_diff_ * self.gpu_diff_) / (a.shape[0] * 2.0)

    def backward(self, top, propagate_down, bottom):
        if not self.on_gpu:
            return super().backward(top, propagate_down, bottom)
        scale = gpu_diff(top[0])[0] / bottom[0].shape[0]  # stays on the device
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                out = gpu_diff(bottom[i])
                cupy.multiply(self.gpu_diff_.reshape(out.shape), sign * scale, out=out)
