"""Tools for testing Python layers: gradient checks, a one-layer harness, a numpy stand-in.

from caffebox_layers.testing import check_gradient
report = check_gradient("caffebox_layers.losses.EuclideanLoss",
                        {"pred": np.random.randn(4, 3), "target": np.random.randn(4, 3)})
assert report.passed, report
"""

from caffebox_layers.testing.gradcheck import (
    GradientReport,
    Mismatch,
    assert_gradient,
    check_gradient,
)
from caffebox_layers.testing.harness import make_harness

__all__ = ["GradientReport", "Mismatch", "assert_gradient", "check_gradient", "make_harness"]
