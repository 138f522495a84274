"""Data layers on the prefetching base (caffebox_layers.prefetch): ArrayData serves
arrays from a .npy or .npz file; ImageListData reads Caffe's ImageData list files.

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
``workers`` (default 0: the arrays are in memory already) loads batches ahead.
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
        scale = p["scale"]
        scales = scale if isinstance(scale, (list, tuple)) else [scale] * len(self.arrays)
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


class ImageListData(PrefetchingData):
    """Caffe's ImageData layer as a prefetching Python layer: images named in a list file
    ("path label" per line, Caffe's format: the label after the last space), decoded with
    Pillow into BGR as OpenCV gives them, with Caffe's transform options.

        layer { name: "data" type: "Python" top: "data" top: "label"
          python_param { module: "caffebox_layers.data" layer: "ImageListData"
            param_str: "{'source': 'train.txt', 'root_folder': 'images/', 'batch_size': 64,
                         'crop_size': 224, 'mirror': True, 'mean_value': [104, 117, 123],
                         'scale': 0.017, 'shuffle': True, 'workers': 2}" } }

    Keys as Caffe's image_data_param and transform_param: `new_height`/`new_width`
    (resize first, bilinear), `is_color`, `crop_size` (random in TRAIN, centred in TEST),
    `mirror` (random flips in TRAIN), `mean_file` (.binaryproto or .npy, C x H x W) or
    `mean_value` (one per channel, or one for all), `scale` (after the mean, as Caffe).
    Shuffled per epoch from `seed` when `shuffle` (Caffe's default: no); the crops and
    flips of batch i come from (seed, i), so any number of workers gives the same batches.
    """

    defaults = {
        "source": "", "root_folder": "", "batch_size": 32, "shuffle": False, "seed": 0,
        "new_height": 0, "new_width": 0, "is_color": True, "crop_size": 0, "mirror": False,
        "mean_file": "", "mean_value": None, "scale": 1.0, "workers": 1,
    }  # fmt: skip
    required = ("source",)

    def setup_data(self, p: dict[str, Any]) -> None:
        name = type(self).__name__
        if self.top_count != 2:
            raise ParamError(f"{name} has two tops (data, label); the net gives it "
                             f"{self.top_count}.")  # fmt: skip
        if not os.path.isfile(p["source"]):
            raise ParamError(f"{name}: source {p['source']!r} not found (relative to "
                             f"{os.getcwd()}). Fix 'source' in param_str.")  # fmt: skip
        self.items = _read_list(p["source"], p["root_folder"], name)
        self.batch_size = int(p["batch_size"])
        if self.batch_size < 1:
            raise ParamError(f"{name}: 'batch_size' must be at least 1.")
        self.size = (int(p["new_width"]), int(p["new_height"]))
        self.color = bool(p["is_color"])
        self.crop = int(p["crop_size"])
        self.train = getattr(self, "phase", TRAIN) == TRAIN
        self.mirror = bool(p["mirror"]) and self.train
        self.scale = float(p["scale"])
        self.seed = int(p["seed"])
        self.epochs = EpochOrders(len(self.items), bool(p["shuffle"]), self.seed)
        self.mean = _mean(p["mean_file"], p["mean_value"], 3 if self.color else 1, name)

    def _image(self, path: str) -> np.ndarray:
        from PIL import Image  # the image's Pillow; only this layer needs it

        with Image.open(path) as opened:
            image = opened.convert("RGB" if self.color else "L")
            if self.size[0] > 0 and self.size[1] > 0:
                image = image.resize(self.size, Image.BILINEAR)
            array = np.asarray(image, dtype=np.float32)
        if self.color:
            return array[:, :, ::-1].transpose(2, 0, 1)  # RGB -> BGR, HWC -> CHW (as Caffe)
        return array[None]

    def load_batch(self, index: int) -> tuple[np.ndarray, ...]:
        rng = np.random.default_rng([self.seed, index])
        picked = self.epochs.samples(index * self.batch_size, self.batch_size)
        images, labels = [], []
        for i in picked:
            path, label = self.items[int(i)]
            image = self._image(path)
            height, width = image.shape[1:]
            top = left = 0
            if self.crop:
                if self.train:
                    top = int(rng.integers(0, height - self.crop + 1))
                    left = int(rng.integers(0, width - self.crop + 1))
                else:
                    top, left = (height - self.crop) // 2, (width - self.crop) // 2
                bottom, right = top + self.crop, left + self.crop
            else:
                bottom, right = height, width
            image = image[:, top:bottom, left:right]
            if self.mean is not None and self.mean.ndim == 1:  # mean_value: per channel
                image = image - self.mean[:, None, None]
            elif self.mean is not None:  # mean_file: the full image's mean, cropped alike
                image = image - self.mean[:, top:bottom, left:right]
            if self.mirror and rng.random() < 0.5:
                image = image[:, :, ::-1]
            images.append(image * self.scale)
            labels.append(label)
        return np.stack(images), np.asarray(labels, dtype=np.float32)


def _read_list(source: str, root: str, name: str) -> list[tuple[str, float]]:
    """Caffe's list format: the label after the last space of each non-empty line."""
    items = []
    with open(source) as lines:
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            path, _, label = line.rpartition(" ")
            try:
                items.append((os.path.join(root, path), float(int(label))))
            except ValueError:
                raise ParamError(f"{name}: {source}:{number} is not 'path label' (Caffe's "
                                 f"ImageData list format): {line!r}.") from None  # fmt: skip
    if not items:
        raise ParamError(f"{name}: {source} lists no image.")
    return items


def _mean(mean_file: str, mean_value: Any, channels: int, name: str) -> np.ndarray | None:
    """A C x H x W mean image (mean_file), a per-channel mean (mean_value), or none."""
    if mean_file and mean_value is not None:
        raise ParamError(f"{name}: give mean_file or mean_value, not both (as Caffe).")
    if mean_file:
        if not os.path.isfile(mean_file):
            raise ParamError(f"{name}: mean_file {mean_file!r} not found (relative to "
                             f"{os.getcwd()}).")  # fmt: skip
        if mean_file.endswith(".npy"):
            mean = np.load(mean_file).astype(np.float32)
        else:  # Caffe's .binaryproto, as compute_image_mean writes it
            import caffe.io
            from caffe.proto import caffe_pb2

            proto = caffe_pb2.BlobProto()
            with open(mean_file, "rb") as f:
                proto.ParseFromString(f.read())
            mean = caffe.io.blobproto_to_array(proto).astype(np.float32)
        return mean.reshape(mean.shape[-3:])
    if mean_value is not None:
        values = mean_value if isinstance(mean_value, (list, tuple)) else [mean_value]
        values = [float(v) for v in values] * (channels if len(values) == 1 else 1)
        if len(values) != channels:
            raise ParamError(f"{name}: mean_value needs 1 or {channels} values.")
        return np.asarray(values, dtype=np.float32)
    return None
