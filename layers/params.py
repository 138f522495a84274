"""Reading a Python layer's ``param_str``, the free-text field of ``python_param``.

People write it three ways, so all three are accepted:

- a Python dict literal, with or without braces (the tutorial's ``"'feat_stride': 16"``),
- JSON (``'{"feat_stride": 16}'``),
- YAML (``"feat_stride: 16"``).

Keys are checked against the layer's defaults, so a typo is an error naming the
layer and the key instead of a silently ignored setting.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping
from typing import Any


class ParamError(ValueError):
    """A bad param_str: the message names the layer, the key and what is allowed."""


def _as_dict(text: str) -> dict[str, Any] | None:
    stripped = text.strip()
    if not stripped:
        return {}
    for candidate in (stripped, "{" + stripped + "}"):
        try:
            value = ast.literal_eval(candidate)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    try:
        value = json.loads(stripped)
        if isinstance(value, dict):
            return value
    except ValueError:
        pass
    try:
        import yaml
    except ImportError:  # pragma: no cover - yaml ships in every caffebox image
        return None
    try:
        value = yaml.safe_load(stripped)
    except yaml.YAMLError:
        return None
    return value if isinstance(value, dict) else None


def parse_param_str(
    text: str | None,
    layer: str = "Python layer",
    defaults: Mapping[str, Any] | None = None,
    required: Iterable[str] = (),
) -> dict[str, Any]:
    """Parse `text` into a dict with `defaults` filled in.

    With `defaults` or `required` given, any other key is an error; a key listed in
    `required` must be present. Numbers given for a float default become floats.
    """
    parsed = _as_dict(text or "")
    if parsed is None:
        raise ParamError(
            f"{layer}: cannot read param_str {text!r}. Write a dict such as "
            "\"'batch_size': 64\" (Python), '{\"batch_size\": 64}' (JSON) or "
            "'batch_size: 64' (YAML)."
        )
    required = list(required)
    if defaults is None and not required:
        return parsed
    defaults = dict(defaults or {})
    allowed = set(defaults) | set(required)
    for key in parsed:
        if not isinstance(key, str) or key not in allowed:
            raise ParamError(
                f"{layer}: unknown key {key!r} in param_str; allowed keys: "
                f"{', '.join(sorted(allowed))}."
            )
    missing = [key for key in required if key not in parsed]
    if missing:
        raise ParamError(
            f"{layer}: param_str must set {', '.join(repr(k) for k in missing)} (got {text!r})."
        )
    result = dict(defaults)
    for key, value in parsed.items():
        default = defaults.get(key)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        result[key] = value
    return result


def layer_params(
    layer: Any,
    defaults: Mapping[str, Any] | None = None,
    required: Iterable[str] = (),
) -> dict[str, Any]:
    """`parse_param_str` on a layer object's own param_str.

    pycaffe sets ``param_str``; some forks (py-faster-rcnn's) call it ``param_str_``.
    """
    text = getattr(layer, "param_str", None)
    if text is None:
        text = getattr(layer, "param_str_", "")
    return parse_param_str(text, type(layer).__name__, defaults, required)
