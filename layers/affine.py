"""ChannelAffine: y = gamma[c] * x + beta[c], with gamma and beta learned by the solver.

    layer {
      name: "affine" type: "Python" bottom: "conv1" top: "affine1"
      python_param {
        module: "caffebox_layers.affine" layer: "ChannelAffine"
        param_str: "{'gamma': 1.0, 'beta': 0.0}"
      }
      param { lr_mult: 1 } param { lr_mult: 1 }  # gamma, beta
    }

The parameters are the layer's own blobs (``self.blobs.add_blob``), so the solver
updates, snapshots and restores them like a Convolution's weights. Backward *adds*
into their diffs: with ``iter_size > 1`` the solver accumulates diffs over several
passes before clearing them, and assigning would keep only the last pass.
"""

from __future__ import annotations

import caffe
import numpy as np

from caffebox_layers.params import ParamError, layer_params


class ChannelAffine(caffe.Layer):
    """A learnable scale and shift per channel (axis 1)."""

    defaults = {"gamma": 1.0, "beta": 0.0}

    def setup(self, bottom, top):
        p = layer_params(self, self.defaults)
        if len(bottom) != 1 or len(top) != 1:
            raise ParamError("ChannelAffine takes one bottom and one top.")
        if len(bottom[0].shape) < 2:
            raise ParamError("ChannelAffine needs a bottom with a channel axis (N, C, ...).")
        channels = bottom[0].shape[1]
        if len(self.blobs) == 0:  # not yet restored from a snapshot or weights
            self.blobs.add_blob(channels)
            self.blobs.add_blob(channels)
            self.blobs[0].data[...] = float(p["gamma"])
            self.blobs[1].data[...] = float(p["beta"])

    def _per_channel(self, bottom):
        shape = [1] * len(bottom[0].shape)
        shape[1] = -1
        return shape

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        shape = self._per_channel(bottom)
        gamma = self.blobs[0].data.reshape(shape)
        beta = self.blobs[1].data.reshape(shape)
        top[0].data[...] = bottom[0].data * gamma + beta

    def backward(self, top, propagate_down, bottom):
        shape = self._per_channel(bottom)
        axes = tuple(i for i in range(top[0].diff.ndim) if i != 1)
        # += : the solver accumulates parameter diffs over iter_size passes.
        self.blobs[0].diff[...] += np.sum(top[0].diff * bottom[0].data, axis=axes)
        self.blobs[1].diff[...] += np.sum(top[0].diff, axis=axes)
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff * self.blobs[0].data.reshape(shape)
