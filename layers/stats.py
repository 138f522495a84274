"""MovingAverage: an output layer that tracks an exponential moving average.

    # On the loss layer itself, write loss_weight: 1 explicitly: Caffe splits a loss
    # blob that another layer consumes only then; otherwise backward stops at the loss.
    layer {
      name: "loss_ema" type: "Python" bottom: "loss" top: "loss_ema"
      python_param { module: "caffebox_layers.stats" layer: "MovingAverage"
                     param_str: "'decay': 0.9" }
    }

The tutorial's example of a layer that only reports: ``top = decay * top + (1 -
decay) * bottom`` on every forward (the first forward starts from the bottom), so
the log shows a smoothed value. It has no gradient and leaves the bottom's diff
untouched, so the loss it watches still trains the net.
"""

from __future__ import annotations

import caffe
import numpy as np

from caffebox_layers.params import ParamError, layer_params


class MovingAverage(caffe.Layer):
    """Exponential moving average of its bottom; no backward."""

    defaults = {"decay": 0.9}

    def setup(self, bottom, top):
        p = layer_params(self, self.defaults)
        if len(bottom) != 1 or len(top) != 1:
            raise ParamError("MovingAverage takes one bottom and one top.")
        self.decay = float(p["decay"])
        if not 0.0 <= self.decay < 1.0:
            raise ParamError(f"MovingAverage: 'decay' must be in [0, 1), got {self.decay}.")
        self.average = None

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        value = np.array(bottom[0].data, dtype=np.float64)
        if self.average is None or self.average.shape != value.shape:
            self.average = value
        else:
            self.average = self.decay * self.average + (1.0 - self.decay) * value
        top[0].data[...] = self.average

    def backward(self, top, propagate_down, bottom):
        """No gradient, and the bottom's diff is left alone: when the bottom is a loss,
        Caffe keeps its loss weight in that diff, and zeroing it would stop training."""
