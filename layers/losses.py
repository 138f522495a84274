"""Loss layers: Caffe's EuclideanLoss, and the Fast/Faster R-CNN SmoothL1Loss for the CPU.

EuclideanLoss is Caffe's C++ EuclideanLoss, as a Python layer that honours loss_weight:

    layer {
      name: "loss" type: "Python" bottom: "pred" bottom: "target" top: "loss"
      python_param { module: "caffebox_layers.losses" layer: "EuclideanLoss" }
      loss_weight: 1  # Python layers have no default loss weight: set it
    }

loss = sum((pred - target)^2) / (2 N), N = pred.shape[0], as in Caffe.
Backward scales by ``top[0].diff`` (the loss weight), which Caffe's own pyloss
example forgets, so the layer is correct with any loss_weight.
"""

from __future__ import annotations

import caffe
import numpy as np

from caffebox_layers import blobs
from caffebox_layers.params import ParamError, layer_params


class EuclideanLoss(caffe.Layer):
    """Half the mean squared distance between two bottoms, per sample."""

    defaults: dict = {}  # no param_str keys; subclasses may add theirs

    def setup(self, bottom, top):
        self.params = layer_params(self, self.defaults)
        if len(bottom) != 2 or len(top) != 1:
            raise ParamError(
                f"EuclideanLoss needs two bottoms and one top, got {len(bottom)} and {len(top)}."
            )

    def reshape(self, bottom, top):
        if bottom[0].count != bottom[1].count:
            raise ParamError(
                f"EuclideanLoss: bottoms differ in size ({bottom[0].count} vs {bottom[1].count})."
            )
        # bottom[0].shape, not .data.shape: reading .data copies a GPU blob to the host.
        shape = tuple(bottom[0].shape)
        if getattr(self, "diff", None) is None or self.diff.shape != shape:
            self.diff = np.zeros(shape, dtype=np.float32)  # once per shape, not per step
        blobs.reshape(top[0], 1)

    def forward(self, bottom, top):
        self.diff[...] = bottom[0].data - bottom[1].data.reshape(self.diff.shape)
        top[0].data[0] = np.sum(self.diff**2) / bottom[0].shape[0] / 2.0

    def backward(self, top, propagate_down, bottom):
        scale = top[0].diff[0] / bottom[0].shape[0]
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                bottom[i].diff[...] = (sign * scale * self.diff).reshape(bottom[i].diff.shape)


class SmoothL1Loss(caffe.Layer):
    """Fast/Faster R-CNN's smooth L1 loss (caffe-fast-rcnn's `SmoothL1Loss`, whose CPU
    forward is not implemented: abort at the first step), as a CPU Python layer:

        layer {
          name: "rpn_loss_bbox" type: "Python"
          bottom: "pred" bottom: "targets" bottom: "inside_w" bottom: "outside_w"
          top: "loss" loss_weight: 1
          python_param { module: "caffebox_layers.losses" layer: "SmoothL1Loss"
                         param_str: "'sigma': 3.0" }
        }

    With d = inside * (b0 - b1) (inside = 1 with two bottoms),
    f(d) = 0.5 (sigma d)^2 if |d| < 1/sigma^2, else |d| - 0.5/sigma^2;
    loss = sum(outside * f(d)) / N, N = b0.shape[0]: the fork's formulas. The weights get no
    gradient; the first two bottoms get +/- f'(d) * inside * outside * top_diff / N.
    """

    defaults: dict = {"sigma": 1.0}

    def setup(self, bottom, top):
        self.params = layer_params(self, self.defaults)
        if len(bottom) not in (2, 4) or len(top) != 1:
            raise ParamError(
                "SmoothL1Loss needs 2 bottoms (prediction, target) or 4 (plus inside and "
                f"outside weights) and one top, got {len(bottom)} and {len(top)}."
            )
        self.sigma2 = float(self.params["sigma"]) ** 2

    def reshape(self, bottom, top):
        for i in range(1, len(bottom)):
            if bottom[i].count != bottom[0].count:
                raise ParamError(
                    f"SmoothL1Loss: bottom {i} has {bottom[i].count} values, bottom 0 has "
                    f"{bottom[0].count}: all bottoms must be the same size."
                )
        blobs.reshape(top[0], 1)

    def forward(self, bottom, top):
        shape = bottom[0].data.shape
        diff = bottom[0].data - bottom[1].data.reshape(shape)
        if len(bottom) == 4:
            diff = diff * bottom[2].data.reshape(shape)
        self.diff = diff
        small = np.abs(diff) < 1.0 / self.sigma2
        errors = np.where(small, 0.5 * diff * diff * self.sigma2, np.abs(diff) - 0.5 / self.sigma2)
        if len(bottom) == 4:
            errors = errors * bottom[3].data.reshape(shape)
        top[0].data[0] = np.sum(errors, dtype=np.float64) / shape[0]

    def backward(self, top, propagate_down, bottom):
        d = self.diff
        grad = np.where(np.abs(d) < 1.0 / self.sigma2, self.sigma2 * d, np.sign(d))
        if len(bottom) == 4:
            grad = grad * bottom[2].data.reshape(d.shape) * bottom[3].data.reshape(d.shape)
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                alpha = sign * top[0].diff[0] / bottom[i].shape[0]
                bottom[i].diff[...] = (alpha * grad).reshape(bottom[i].diff.shape)
