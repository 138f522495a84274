"""pytest fixtures for testing Python layers (``pytest -p caffebox_layers.testing.plugin``).

``caffebox test-layers DIR`` loads this plugin inside the image, so a user's tests
can ask for:

- ``layer_net``: build one layer wired to input arrays, on real pycaffe where it
  exists (else the numpy stand-in): ``net = layer_net("my_mod.MyLayer", {"x": x})``,
  then ``net.forward()``, ``net.tops[0].data``, ``net.backward()``.
- ``gradient_check``: ``gradient_check("my_mod.MyLayer", {"x": x})`` raises
  AssertionError with the worst elements when backward disagrees with forward.
"""

from __future__ import annotations

import pytest

from caffebox_layers.testing.gradcheck import assert_gradient
from caffebox_layers.testing.harness import make_harness


@pytest.fixture
def layer_net():
    return make_harness


@pytest.fixture
def gradient_check():
    return assert_gradient
