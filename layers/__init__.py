"""caffebox's Python layers package, importable as `layers` inside every image.

Layer modules (``layers.data`` ...) import caffe; this package itself does not,
so its helpers work on any machine:

- ``layers.params``: one parser for ``param_str`` (dict literal, JSON or YAML).
- ``layers.check_gradient``: the numerical gradient check (``layers.testing``).

Library layers: ``layers.data.ArrayData``, ``layers.losses.EuclideanLoss``,
``layers.affine.ChannelAffine``, ``layers.stats.MovingAverage``.

Use a layer from a prototxt as ``python_param { module: "layers.data" layer: "ArrayData" }``.
"""

from layers.params import ParamError, layer_params, parse_param_str
from layers.testing.gradcheck import assert_gradient, check_gradient

__all__ = ["ParamError", "assert_gradient", "check_gradient", "layer_params", "parse_param_str"]
