"""EuclideanLoss: Caffe's C++ EuclideanLoss, as a Python layer that honours loss_weight.

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
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.diff[...] = bottom[0].data - bottom[1].data.reshape(self.diff.shape)
        top[0].data[0] = np.sum(self.diff**2) / bottom[0].shape[0] / 2.0

    def backward(self, top, propagate_down, bottom):
        scale = top[0].diff[0] / bottom[0].shape[0]
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                bottom[i].diff[...] = (sign * scale * self.diff).reshape(bottom[i].diff.shape)
