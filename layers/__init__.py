"""caffebox's Python layers package, importable as `layers` inside every image.

Layer modules (``layers.data`` ...) import caffe; this package itself does not,
so its helpers work on any machine:

- ``layers.params``: one parser for ``param_str`` (dict literal, JSON or YAML).

Use a layer from a prototxt as ``python_param { module: "layers.data" layer: "ArrayData" }``.
"""

from layers.params import ParamError, layer_params, parse_param_str

__all__ = ["ParamError", "layer_params", "parse_param_str"]
