"""A user's layer tests, as `caffebox test-layers tests/layer_fixtures` runs them in the image."""

import numpy as np
import pytest


def test_euclidean_forward(layer_net):
    a, b = np.ones((2, 3)), np.zeros((2, 3))
    net = layer_net("caffebox_layers.losses.EuclideanLoss", {"a": a, "b": b})
    net.forward()
    assert net.tops[0].data[0] == pytest.approx(1.5)  # 6 / 2 / 2


def test_affine_gradient(gradient_check):
    x = np.random.RandomState(0).randn(2, 3, 2, 2)
    gradient_check("caffebox_layers.affine.ChannelAffine", {"x": x}, param_str="'gamma': 2.0")


def test_broken_layer_is_caught(gradient_check):
    r = np.random.RandomState(1)
    with pytest.raises(AssertionError, match="FAILED"):
        gradient_check(
            "broken_layers.HalfGradientEuclidean", {"a": r.randn(3, 2), "b": r.randn(3, 2)}
        )
