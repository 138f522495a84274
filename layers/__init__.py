"""caffebox's Python layers package, importable as `caffebox_layers` on the host and in
every image (the checkout keeps it in layers/; your own package may be called `layers`).

Layer modules (``caffebox_layers.data`` ...) import caffe; this package itself does not,
so its helpers work on any machine:

- ``caffebox_layers.params``: one parser for ``param_str`` (dict literal, JSON or YAML).
- ``caffebox_layers.check_gradient``: the numerical gradient check (``.testing``).

Library layers: ``caffebox_layers.data.ArrayData``, ``caffebox_layers.losses.EuclideanLoss``
and ``.SmoothL1Loss``, ``caffebox_layers.roi.ROIPooling`` (Fast R-CNN's, on the CPU),
``caffebox_layers.affine.ChannelAffine``, ``caffebox_layers.stats.MovingAverage``.

Use a layer from a prototxt as
``python_param { module: "caffebox_layers.data" layer: "ArrayData" }``.
"""

from caffebox_layers.params import ParamError, layer_params, parse_param_str
from caffebox_layers.testing.gradcheck import assert_gradient, check_gradient

__all__ = ["ParamError", "assert_gradient", "check_gradient", "layer_params", "parse_param_str"]
