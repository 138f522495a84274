"""PrefetchingData: a base for Python data layers that prepares batches while the net runs.

Caffe's C++ Data layer loads the next batch in a thread while the net computes; a Python
data layer loads it inside ``forward``, so every step waits for decoding and augmentation.
Subclass this instead of ``caffe.Layer`` and implement

    setup_data(self, params)  # optional: read your param_str keys (params: a dict)
    load_batch(self, index)   # the batch numbered `index`: a tuple of arrays, one per top

``load_batch`` must depend on ``index`` alone (and on what ``setup_data`` set): batch 7 is
the same array whichever process loads it, so the net sees the same batches in the same
order for any number of workers. Derive per-batch randomness from the index, e.g.
``np.random.default_rng([seed, index])``. Shapes are fixed by batch 0.

param_str keys of the base (beside the subclass's ``defaults``):

    workers  background processes loading batches (default 1); 0 loads in forward
    queue    batches each worker keeps ready (default 2)
    idle     seconds a worker waits with its batches ready before it ends (default 30);
             the next forward starts it again where it stopped

Workers are forked (a layer is not picklable) after ``setup_data`` and batch 0, ignore
SIGINT (the run decides when to stop), and end with the layer (``close()``, or the layer
collected), with the process (its end, or a Caffe abort: the kernel sends them SIGKILL when
their parent goes), or after ``idle`` seconds unused. The last is how they end with a net:
pycaffe never frees a Python layer (the C++ layer and its Python object refer to each
other), so a deleted net's workers stop within ``idle`` seconds, and a TEST net's between
test passes (started again, from the next batch, when the next pass begins).
Batches travel through one anonymous shared mapping (``mmap``), written by the worker and
copied into the tops by ``forward``: no pickling per batch, nothing under /dev/shm (so
neither Docker's 64 MB limit nor a leftover segment after a crash), and no multiprocessing
resource tracker (which an embedded interpreter would start as the ``caffe`` binary).
An exception in a worker is raised by ``forward`` with the worker's own traceback.
"""

from __future__ import annotations

import ctypes
import mmap
import multiprocessing
import os
import queue as queue_module
import signal
import traceback
import warnings
import weakref
from typing import Any

import caffe
import numpy as np

from caffebox_layers import blobs
from caffebox_layers.params import ParamError, layer_params

PREFETCH_DEFAULTS = {"workers": 1, "queue": 2, "idle": 30.0}
_STARTING: dict[int, PrefetchingData] = {}  # the layer of the pool whose workers start now
_WAIT = 1.0  # seconds between checks that a worker is still alive
_PR_SET_PDEATHSIG = 1


class PrefetchingData(caffe.Layer):
    """Serve batches that `load_batch(index)` makes, `workers` processes ahead."""

    defaults: dict[str, Any] = {}

    # ---- what a subclass implements ------------------------------------------------------

    def setup_data(self, params: dict[str, Any]) -> None:
        """Read the subclass's own param_str keys; called once, before any batch."""

    def load_batch(self, index: int) -> tuple[np.ndarray, ...]:
        raise NotImplementedError(f"{type(self).__name__} must implement load_batch(index)")

    # ---- Caffe's calls ---------------------------------------------------------------------

    def setup(self, bottom, top):
        name = type(self).__name__
        params = layer_params(self, {**PREFETCH_DEFAULTS, **self.defaults},
                              required=getattr(self, "required", ()))  # fmt: skip
        if len(bottom) != 0:
            raise ParamError(f"{name} takes no bottoms, got {len(bottom)}.")
        self.workers, self.depth = int(params["workers"]), int(params["queue"])
        self.top_count = len(top)
        if self.workers < 0 or self.depth < 1:
            raise ParamError(f"{name}: 'workers' must be 0 or more and 'queue' at least 1.")
        self.setup_data(params)
        first = self._checked(self.load_batch(0), None, 0)
        if len(first) != len(top):
            raise ParamError(f"{name}: load_batch gives {len(first)} arrays but the layer has "
                             f"{len(top)} tops.")  # fmt: skip
        self.shapes = [a.shape for a in first]
        self.index = 0  # the next batch forward serves
        self._first: tuple[np.ndarray, ...] | None = None if self.workers else first
        self._pool: _Pool | None = None
        if self.workers:
            self._pool = _Pool(self, self.workers, self.depth, float(params["idle"]))

    def reshape(self, bottom, top):
        for i, shape in enumerate(self.shapes):
            blobs.reshape(top[i], *shape)

    def forward(self, bottom, top):
        if self._pool is not None:
            self._pool.serve(self.index, top)
        else:  # batch 0 was loaded by setup
            batch, self._first = self._first, None
            if batch is None:
                batch = self._checked(self.load_batch(self.index), self.shapes, self.index)
            _fill(top, batch)
        self.index += 1

    def backward(self, top, propagate_down, bottom):
        """Data has no gradient."""

    def close(self) -> None:
        """Stop the workers now (also done when the layer goes or the process ends)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # ---- helpers ---------------------------------------------------------------------------

    def _checked(self, batch: Any, shapes: list[tuple[int, ...]] | None,
                 index: int) -> tuple[np.ndarray, ...]:  # fmt: skip
        name = type(self).__name__
        if not isinstance(batch, (tuple, list)):
            batch = (batch,)
        arrays = tuple(np.asarray(a, dtype=np.float32) for a in batch)
        got = [a.shape for a in arrays]
        if shapes is not None and got != list(shapes):
            raise ParamError(f"{name}: batch {index} has shapes {got}; batch 0 had "
                             f"{list(shapes)} (shapes are fixed by the first).")  # fmt: skip
        return arrays


def _fill(top, arrays) -> None:
    """Copy a batch into the tops (shaped as the tops: 4-D on trees before N-D blobs)."""
    for i, array in enumerate(arrays):
        data = top[i].data
        data[...] = array.reshape(data.shape)


class _Pool:
    """`count` forked workers; worker w loads batches w, w + count, ... into its own
    `depth` slots of one shared mapping; the parent takes batch i from worker i % count."""

    def __init__(self, layer: PrefetchingData, count: int, depth: int, idle: float) -> None:
        self.count, self.depth, self.idle = count, depth, idle
        self.layer = weakref.ref(layer)
        self.shapes = layer.shapes
        self.sizes = [int(np.prod(s)) * 4 for s in self.shapes]
        self.slot_bytes = sum(self.sizes)
        self.memory = mmap.mmap(-1, max(1, self.slot_bytes * count * depth))
        context = multiprocessing.get_context("fork")
        self.free = [context.Queue() for _ in range(count)]
        self.ready = [context.Queue() for _ in range(count)]
        for w in range(count):
            for slot in range(depth):
                self.free[w].put(slot)
        self.parent = os.getpid()
        self.processes = [self._start(layer, w, w) for w in range(count)]
        self.closed = False
        # The layer's end, or the process's (finalize runs at exit too), stops the workers.
        weakref.finalize(layer, _Pool.close, self)

    def _start(self, layer: PrefetchingData, worker: int, index: int) -> Any:
        """Fork worker `worker`, loading batches index, index + count, ..."""
        # The worker finds the layer here (inherited by fork), not in its arguments: a
        # Process object keeps those, and would keep the layer alive for ever.
        _STARTING[id(self)] = layer
        # SIGINT blocked across the fork: a Ctrl-C before the worker ignores it waits in
        # the parent (delivered after) and is dropped by the worker (which ignores it, then
        # unblocks).
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            with warnings.catch_warnings():  # Python 3.12+ warns on fork with threads alive
                warnings.simplefilter("ignore", DeprecationWarning)
                process = multiprocessing.get_context("fork").Process(
                    target=_work, args=(id(self), self, worker, index), daemon=True,
                    name=f"{type(layer).__name__}-{worker}",
                )
                process.start()
        finally:
            del _STARTING[id(self)]
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return process

    def view(self, worker: int, slot: int) -> list[np.ndarray]:
        """Arrays over one slot of the shared mapping."""
        offset = (worker * self.depth + slot) * self.slot_bytes
        arrays = []
        for shape, size in zip(self.shapes, self.sizes):
            arrays.append(np.frombuffer(self.memory, np.float32, size // 4, offset).reshape(shape))
            offset += size
        return arrays

    def serve(self, index: int, top) -> None:
        worker = index % self.count
        while True:
            try:
                kind, at, payload = self.ready[worker].get(timeout=_WAIT)
            except queue_module.Empty:
                process = self.processes[worker]
                if not process.is_alive():
                    raise RuntimeError(
                        f"data worker {worker} ended (exit code {process.exitcode}) before "
                        f"batch {index}; no traceback came back from it."
                    ) from None
                continue
            if kind != "idle":
                break
            self.processes[worker].join()  # it ended, idle: start it again from here
            layer = self.layer()
            assert layer is not None, "a layer's forward runs while the layer exists"
            self.processes[worker] = self._start(layer, worker, at)
        if kind == "error":
            raise RuntimeError(f"data worker {worker} failed loading batch {at}:\n{payload}")
        _fill(top, self.view(worker, payload))
        self.free[worker].put(payload)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for free in self.free:
            try:
                free.put(None)
            except (OSError, ValueError):
                pass
        for process in self.processes:
            process.join(timeout=2)
            if process.is_alive():
                process.kill()
                process.join(timeout=2)
        for q in (*self.free, *self.ready):
            q.close()
            q.join_thread()


def _die_with_parent(parent: int) -> None:
    """SIGKILL from the kernel when the parent goes (a Caffe abort runs no Python)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it went before prctl took effect
        os._exit(0)


def _work(key: int, pool: _Pool, worker: int, index: int) -> None:
    """A worker's loop: take a free slot, load the next batch into it, say so; end when
    told, when the parent goes, or after `pool.idle` seconds with no free slot."""
    layer = _STARTING[key]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _die_with_parent(pool.parent)
    waited = 0.0
    while True:
        try:
            slot = pool.free[worker].get(timeout=min(_WAIT, pool.idle))
        except queue_module.Empty:
            if os.getppid() != pool.parent:
                return
            waited += min(_WAIT, pool.idle)
            if waited >= pool.idle:
                pool.ready[worker].put(("idle", index, None))
                return
            continue
        waited = 0.0
        if slot is None:
            return
        try:
            batch = layer._checked(layer.load_batch(index), pool.shapes, index)
            for target, array in zip(pool.view(worker, slot), batch):
                target[...] = array
        except Exception:  # noqa: BLE001 - any error of the user's code goes to forward
            pool.ready[worker].put(("error", index, traceback.format_exc()))
            return
        pool.ready[worker].put(("batch", index, slot))
        index += pool.count
