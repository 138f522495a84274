"""MovingAverage: an output layer that tracks an exponential moving average.

    layer {
      name: "loss_ema" type: "Python" bottom: "loss" top: "loss_ema"
      python_param { module: "layers.stats" layer: "MovingAverage" param_str: "'decay': 0.9" }
    }

The tutorial's example of a layer that only reports: ``top = decay * top + (1 -
decay) * bottom`` on every forward (the first forward starts from the bottom), so
the log shows a smoothed value. It has no gradient: nothing flows back through it.
"""

from __future__ import annotations

import caffe
import numpy as np

from layers.params import ParamError, layer_params


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
        """No gradient: a reporting layer."""
        if propagate_down[0]:
            bottom[0].diff[...] = 0
