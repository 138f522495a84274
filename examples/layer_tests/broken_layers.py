"""Deliberately wrong layers: a gradient check must fail on each (standin and pycaffe)."""

import caffe  # noqa: F401  (the real one in the image, the stand-in on a laptop)

from caffebox_layers.affine import ChannelAffine
from caffebox_layers.losses import EuclideanLoss


class HalfGradientEuclidean(EuclideanLoss):
    """Backward off by a factor of two."""

    def backward(self, top, propagate_down, bottom):
        super().backward(top, propagate_down, bottom)
        for i in range(2):
            if propagate_down[i]:
                bottom[i].diff[...] *= 0.5


class WrongSignAffine(ChannelAffine):
    """The beta gradient has the wrong sign."""

    def backward(self, top, propagate_down, bottom):
        before = self.blobs[1].diff.copy()
        super().backward(top, propagate_down, bottom)
        self.blobs[1].diff[...] = before - (self.blobs[1].diff - before)
