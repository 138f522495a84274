"""ROIPooling: Fast R-CNN's region-of-interest max pooling, as a CPU Python layer.

caffe-fast-rcnn's `ROIPooling` has no CPU backward; this layer is the same operation with
the fork's arithmetic, forward and backward, on the CPU:

    layer {
      name: "roi_pool5" type: "Python" bottom: "conv5" bottom: "rois" top: "pool5"
      python_param { module: "caffebox_layers.roi" layer: "ROIPooling"
                     param_str: "'pooled_w': 7, 'pooled_h': 7, 'spatial_scale': 0.0625" }
    }

rois is (R, 5): batch index, x1, y1, x2, y2 in image pixels. Each ROI is scaled and
rounded (half away from zero) onto the feature map, split into pooled_h x pooled_w bins
(floor/ceil edges), and each bin's maximum kept; an empty bin is 0. Backward adds each
output's gradient to the element that was its maximum (the fork's argmax); rois get none.
"""

from __future__ import annotations

import math

import caffe
import numpy as np

from caffebox_layers.params import ParamError, layer_params


def _round(value: float) -> int:
    """C's round(): half away from zero (numpy's rounds half to even)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def bins(roi: np.ndarray, scale: float, pooled_h: int, pooled_w: int, height: int,
         width: int) -> list[tuple[int, int, int, int, int, int]]:  # fmt: skip
    """(ph, pw, hstart, hend, wstart, wend) of each bin of one ROI, as the fork computes."""
    x1, y1, x2, y2 = (_round(float(np.float32(v) * np.float32(scale))) for v in roi[1:5])
    roi_w, roi_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
    bin_h, bin_w = np.float32(roi_h) / np.float32(pooled_h), np.float32(roi_w) / np.float32(
        pooled_w
    )
    found = []
    for ph in range(pooled_h):
        hs = min(max(int(math.floor(ph * bin_h)) + y1, 0), height)
        he = min(max(int(math.ceil((ph + 1) * bin_h)) + y1, 0), height)
        for pw in range(pooled_w):
            ws = min(max(int(math.floor(pw * bin_w)) + x1, 0), width)
            we = min(max(int(math.ceil((pw + 1) * bin_w)) + x1, 0), width)
            found.append((ph, pw, hs, he, ws, we))
    return found


class ROIPooling(caffe.Layer):
    """Max pooling of each ROI into a fixed pooled_h x pooled_w grid, per channel."""

    defaults: dict = {"pooled_w": 7, "pooled_h": 7, "spatial_scale": 1.0}

    def setup(self, bottom, top):
        self.params = layer_params(self, self.defaults)
        if len(bottom) != 2 or len(top) != 1:
            raise ParamError(
                "ROIPooling needs two bottoms (features, rois) and one top, got "
                f"{len(bottom)} and {len(top)}."
            )
        self.pooled_h, self.pooled_w = int(self.params["pooled_h"]), int(self.params["pooled_w"])
        if self.pooled_h <= 0 or self.pooled_w <= 0:
            raise ParamError("ROIPooling: pooled_h and pooled_w must be > 0.")
        self.scale = float(self.params["spatial_scale"])

    def reshape(self, bottom, top):
        if len(bottom[1].shape) < 2 or bottom[1].count != bottom[1].shape[0] * 5:
            raise ParamError(
                f"ROIPooling: rois must be (R, 5) (batch index, x1, y1, x2, y2), got shape "
                f"{tuple(bottom[1].shape)}."
            )
        top[0].reshape(bottom[1].shape[0], bottom[0].shape[1], self.pooled_h, self.pooled_w)

    def forward(self, bottom, top):
        data = bottom[0].data
        _, channels, height, width = data.shape
        rois = bottom[1].data.reshape(-1, 5)
        out = np.zeros((len(rois), channels, self.pooled_h, self.pooled_w), dtype=np.float32)
        # Flat index (h * width + w) of each output's maximum; -1: an empty bin.
        self.argmax = np.full(out.shape, -1, dtype=np.int64)
        self.batch = rois[:, 0].astype(np.int64)
        for n, roi in enumerate(rois):
            plane = data[self.batch[n]]
            for ph, pw, hs, he, ws, we in bins(roi, self.scale, self.pooled_h, self.pooled_w,
                                               height, width):  # fmt: skip
                if he <= hs or we <= ws:
                    continue
                region = plane[:, hs:he, ws:we].reshape(channels, -1)
                best = np.argmax(region, axis=1)  # the first maximum, as the fork's '>'
                out[n, :, ph, pw] = region[np.arange(channels), best]
                self.argmax[n, :, ph, pw] = (hs + best // (we - ws)) * width + ws + best % (we - ws)
        top[0].data[...] = out

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        diff = np.zeros(bottom[0].data.shape, dtype=np.float32)
        channels, plane = diff.shape[1], diff.shape[2] * diff.shape[3]
        flat = diff.reshape(-1)
        n, c = np.indices(self.argmax.shape)[:2]
        batch = self.batch[n]
        keep = self.argmax >= 0
        where = (batch * channels + c) * plane + self.argmax
        np.add.at(flat, where[keep], top[0].diff[keep])
        bottom[0].diff[...] = diff
