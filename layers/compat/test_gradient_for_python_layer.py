"""The tutorial's gradient checker, under the tutorial's own name and signature.

    from test_gradient_for_python_layer import test_gradient_for_python_layer
    test_gradient_for_python_layer(
        [("data", np.random.randn(2, 3, 4, 4)), ("label", np.random.randn(2, 1))],
        ["loss"], "my_module", "MyLossLayer", "'feat_stride': 16", [True, False])

caffebox images put this folder on PYTHONPATH. It builds the tutorial's net
(DummyData inputs, the Python layer, force_backward) and runs caffebox's
checker (layers.check_gradient); a failure raises AssertionError with the report.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from caffebox_layers.testing.gradcheck import (
    DEFAULT_STEP,
    DEFAULT_THRESHOLD,
    GradientReport,
    assert_gradient,
)


def test_gradient_for_python_layer(
    input_names_and_values: Sequence[tuple[str, np.ndarray]],
    output_names: Sequence[str],
    py_module: str,
    py_layer: str,
    param_str: str | None = None,
    propagate_down: Sequence[bool] | None = None,
    step: float = DEFAULT_STEP,
    threshold: float = DEFAULT_THRESHOLD,
) -> GradientReport:
    """Check `py_module.py_layer`'s backward numerically; raise AssertionError if wrong."""
    return assert_gradient(
        f"{py_module}.{py_layer}",
        list(input_names_and_values),
        list(output_names),
        param_str or "",
        propagate_down,
        step=step,
        threshold=threshold,
    )


# Not a pytest test itself, though its (the tutorial's) name starts with test_.
test_gradient_for_python_layer.__test__ = False
