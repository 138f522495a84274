"""Blob calls that differ across the Caffe trees caffebox builds.

Caffe before N-D blobs (BVLC rc2 and forks of early 2015) has only
`Blob.reshape(num, channels, height, width)`: a layer that asks for fewer axes gets the
shape padded with trailing 1s there (what Caffe's own 4-D layers did), and exactly the
shape asked for everywhere else.
"""

from __future__ import annotations


def reshape(blob, *shape: int) -> None:
    """`blob.reshape(*shape)`, on a 4-D-only Caffe as (*shape, 1, ...)."""
    try:
        blob.reshape(*shape)
    except TypeError:  # Boost.Python.ArgumentError: this tree's reshape takes four ints
        if len(shape) >= 4:
            raise
        blob.reshape(*shape, *[1] * (4 - len(shape)))
