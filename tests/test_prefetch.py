"""caffebox_layers.prefetch on the numpy stand-in: the same batches in the same order for
any number of workers, ArrayData's order exactly as before, a worker's error raised in
forward with its traceback, SIGINT ignored, and no process or shared-memory segment left
after the layer goes, the process ends, or the process dies without running Python."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from caffebox_layers.testing import standin

if standin.real_caffe_available():  # pragma: no cover - the host suite never has pycaffe
    pytest.skip("these tests target the stand-in", allow_module_level=True)
caffe = standin.install()

from caffebox_layers import params as caffe_params  # noqa: E402
from caffebox_layers.data import ArrayData, ImageListData  # noqa: E402
from caffebox_layers.prefetch import PrefetchingData  # noqa: E402


class Noisy(PrefetchingData):
    """Random per batch, but a function of the index: what a data layer with augmentation
    does. Fails on `fail_at` (a user's bug in one batch)."""

    defaults = {"seed": 3, "fail_at": -1}

    def setup_data(self, params):
        self.seed, self.fail_at = params["seed"], params["fail_at"]

    def load_batch(self, index):
        if index == self.fail_at:
            raise ValueError(f"broken sample in batch {index}")
        rng = np.random.default_rng([self.seed, index])
        return rng.normal(size=(4, 3, 5, 5)), np.full(4, index)


def _make(cls, param_str: str, tops: int = 2):
    layer = cls()
    layer.param_str = param_str
    top = standin.RawBlobVec(standin.Blob(1) for _ in range(tops))
    layer.setup([], top)
    layer.reshape([], top)
    return layer, top


def _batches(layer, top, n: int) -> list[list[np.ndarray]]:
    out = []
    for _ in range(n):
        layer.forward([], top)
        out.append([top[i].data.copy() for i in range(len(layer.shapes))])
    return out


def _children() -> set[int]:
    """This process's children that still run (an ended one may wait to be reaped)."""
    here = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    found = {int(p) for p in here.read_text().split()} if here.exists() else set()
    return {pid for pid in found if _alive(pid)}


def _segments() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_same_batches_in_the_same_order_for_any_number_of_workers(workers):
    baseline, top = _make(Noisy, "'workers': 0")
    expected = _batches(baseline, top, 9)
    layer, top = _make(Noisy, f"'workers': {workers}, 'queue': 2")
    got = _batches(layer, top, 9)
    layer.close()
    for want, have in zip(expected, got):
        for a, b in zip(want, have):
            np.testing.assert_array_equal(a, b)
    assert [int(b[1][0]) for b in got] == list(range(9))


def _array_data_then(tmp_path: Path, count: int, batch: int, steps: int, seed: int) -> list:
    """ArrayData's order as it was before the prefetching base: a permutation drawn from
    RandomState(seed) per epoch, a batch running on into the next epoch."""
    rng = np.random.RandomState(seed)
    order, cursor, out = rng.permutation(count), 0, []
    for _ in range(steps):
        picked, need = [], batch
        while need:
            take = min(need, count - cursor)
            picked.append(order[cursor : cursor + take])
            cursor, need = cursor + take, need - take
            if cursor == count:
                order, cursor = rng.permutation(count), 0
        out.append(np.concatenate(picked))
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_array_data_serves_exactly_the_order_it_always_did(tmp_path, workers, monkeypatch):
    monkeypatch.chdir(tmp_path)
    count = 23
    np.savez("xy.npz", x=np.arange(count, dtype=np.float32).reshape(count, 1),
             y=np.arange(count) % 3)  # fmt: skip
    layer, top = _make(ArrayData, "'source': 'xy.npz', 'keys': ['x', 'y'], 'batch_size': 5, "
                                  f"'seed': 4, 'workers': {workers}")  # fmt: skip
    got = _batches(layer, top, 12)  # 60 samples: two epochs and a half, batches across them
    layer.close()
    for want, (x, y) in zip(_array_data_then(tmp_path, count, 5, 12, 4), got):
        np.testing.assert_array_equal(x[:, 0], want)
        np.testing.assert_array_equal(y, want % 3)


def test_a_workers_error_is_raised_in_forward_with_its_traceback():
    layer, top = _make(Noisy, "'workers': 2, 'fail_at': 3")
    _batches(layer, top, 3)
    with pytest.raises(RuntimeError) as caught:
        layer.forward([], top)
    text = str(caught.value)
    assert "data worker 1 failed loading batch 3" in text
    assert "in load_batch" in text and "ValueError: broken sample in batch 3" in text
    layer.close()


def test_workers_ignore_sigint_and_end_with_the_layer():
    before_children, before_segments = _children(), _segments()
    layer, top = _make(Noisy, "'workers': 2")
    pids = {p.pid for p in layer._pool.processes}
    assert pids <= _children()
    for pid in pids:
        os.kill(pid, signal.SIGINT)  # tini -g hands Ctrl-C to the whole group
    time.sleep(0.3)
    assert _batches(layer, top, 4)  # still serving
    assert all(p.is_alive() for p in layer._pool.processes)
    del layer, top
    gc.collect()
    deadline = time.monotonic() + 5
    while _children() - before_children and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _children() == before_children
    assert _segments() == before_segments


SCRIPT = """
import os, sys, time
from caffebox_layers.testing import standin
caffe = standin.install()
sys.path.insert(0, {here!r})
from test_prefetch import Noisy, _make
layer, top = _make(Noisy, "'workers': 2")
layer.forward([], top)
print(" ".join(str(p.pid) for p in layer._pool.processes), flush=True)
{end}
"""


@pytest.mark.parametrize("end", [
    "",                              # a normal end: the interpreter exits
    "os.abort()",                    # Caffe's CHECK failure: no Python runs at all
    "os.kill(os.getpid(), 9)",       # killed (the memory limit, a second Ctrl-C)
    "time.sleep(60)",                # SIGTERM from the test below (docker stop, Slurm)
])  # fmt: skip
def test_no_worker_outlives_its_process(end):
    before = _segments()
    script = SCRIPT.format(here=str(Path(__file__).parent), end=end)
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    pids = [int(p) for p in process.stdout.readline().split()]
    assert len(pids) == 2
    if "sleep" in end:
        process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids), f"workers left after {end or 'a normal end'}"
    assert _segments() == before


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has ended; its new parent reaps it


def _image_list(tmp_path: Path, count: int = 12, size: int = 10) -> Path:
    from PIL import Image

    lines = []
    for i in range(count):
        rgb = np.zeros((size, size, 3), np.uint8)
        rgb[..., 0], rgb[..., 1], rgb[..., 2] = i, 100 + i, 200  # R, G, B
        rgb[0, 0] = (255, 255, 255)  # one corner marks the orientation
        Image.fromarray(rgb).save(tmp_path / f"im {i}.png")  # a space in the name, as Caffe
        lines.append(f"im {i}.png {i % 4}\n")
    (tmp_path / "list.txt").write_text("".join(lines))
    return tmp_path / "list.txt"


def test_image_list_data_decodes_bgr_with_caffes_transform(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _image_list(tmp_path)
    np.save("mean.npy", np.full((3, 10, 10), 10, np.float32))
    layer, top = _make(ImageListData, "'source': 'list.txt', 'batch_size': 4, 'workers': 0, "
                                      "'mean_file': 'mean.npy', 'scale': 0.5")  # fmt: skip
    (data, label), = _batches(layer, top, 1)
    assert data.shape == (4, 3, 10, 10) and list(label) == [0, 1, 2, 3]
    # BGR as OpenCV gives it; (pixel - mean) * scale
    assert data[1, :, 5, 5].tolist() == [(200 - 10) * 0.5, (101 - 10) * 0.5, (1 - 10) * 0.5]
    assert data[1, 0, 0, 0] == (255 - 10) * 0.5


def test_image_list_data_crops_and_mirrors_in_train_centres_in_test(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _image_list(tmp_path)
    params = ("'source': 'list.txt', 'batch_size': 12, 'crop_size': 6, 'mirror': True, "
              "'mean_value': [1, 2, 3], 'workers': 0")  # fmt: skip
    layer, top = _make(ImageListData, params)
    (data, _), = _batches(layer, top, 1)
    assert data.shape == (12, 3, 6, 6)
    layer = ImageListData()
    layer.param_str, layer.phase = params, 1  # TEST: centred, never mirrored
    top = standin.RawBlobVec(standin.Blob(1) for _ in range(2))
    layer.setup([], top)
    layer.reshape([], top)
    layer.forward([], top)
    centre = top[0].data
    assert centre[:, 0, 0, 0].tolist() == [200 - 1] * 12  # blue, mean 1; not the white corner
    corners = (data == 255 - np.array([1, 2, 3], np.float32)[:, None, None]).all(axis=1)
    assert corners.sum() <= 12  # a corner kept by a crop at the top left, flipped or not


def test_image_list_data_is_the_same_with_workers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _image_list(tmp_path)
    params = ("'source': 'list.txt', 'batch_size': 5, 'crop_size': 8, 'mirror': True, "
              "'shuffle': True, 'seed': 9")  # fmt: skip
    alone, top = _make(ImageListData, params + ", 'workers': 0")
    expected = _batches(alone, top, 7)
    layer, top = _make(ImageListData, params + ", 'workers': 2")
    got = _batches(layer, top, 7)
    layer.close()
    for want, have in zip(expected, got):
        for a, b in zip(want, have):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("text,said", [
    ("im 0.png zero\n", "list.txt:1 is not 'path label'"),
    ("\n", "lists no image"),
])  # fmt: skip
def test_a_bad_list_file_is_one_sentence(tmp_path, monkeypatch, text, said):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "list.txt").write_text(text)
    with pytest.raises(caffe_params.ParamError, match=said):
        _make(ImageListData, "'source': 'list.txt', 'workers': 0")


def test_idle_workers_end_and_start_again_where_they_stopped():
    """pycaffe never frees a Python layer, so workers end after `idle` seconds unused (a
    deleted net's, a TEST net's between passes); the next forward starts them again from
    the next batch, the same batches as ever."""
    before = _children()
    baseline, top = _make(Noisy, "'workers': 0")
    expected = _batches(baseline, top, 8)
    layer, top = _make(Noisy, "'workers': 2, 'queue': 1, 'idle': 0.3")
    got = _batches(layer, top, 3)
    deadline = time.monotonic() + 5
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _children() == before  # both ended, idle
    got += _batches(layer, top, 5)
    assert len(_children() - before) == 2  # started again
    layer.close()
    for want, have in zip(expected, got):
        np.testing.assert_array_equal(want[0], have[0])
