"""SmoothL1Loss and ROIPooling (caffebox_layers) against the fork's formulas, on the stand-in.

The references below are written from caffe-fast-rcnn's CUDA kernels (smooth_L1_loss_layer.cu,
roi_pooling_layer.cu), element by element as the kernels compute: a gradient check alone
would pass a layer whose forward is wrong.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from caffebox_layers.testing import standin

if standin.real_caffe_available():  # pragma: no cover - the host suite never has pycaffe
    pytest.skip("a real caffe is importable; these tests target the stand-in",
                allow_module_level=True)  # fmt: skip
standin.install()

from caffebox_layers import ParamError, check_gradient  # noqa: E402
from caffebox_layers.testing.harness import make_harness  # noqa: E402

RNG = np.random.RandomState(11)


def smooth_l1_reference(b0, b1, inside=None, outside=None, sigma=1.0):
    """The fork's forward, one element at a time."""
    sigma2, total = sigma * sigma, 0.0
    for i in range(b0.size):
        val = b0.flat[i] - b1.flat[i]
        if inside is not None:
            val *= inside.flat[i]
        err = 0.5 * val * val * sigma2 if abs(val) < 1.0 / sigma2 else abs(val) - 0.5 / sigma2
        if outside is not None:
            err *= outside.flat[i]
        total += err
    return total / b0.shape[0]


def roi_pool_reference(data, rois, pooled_h, pooled_w, scale):
    """The fork's ROIPoolForward kernel as loops: one output element at a time."""
    num, channels, height, width = data.shape
    out = np.zeros((len(rois), channels, pooled_h, pooled_w), dtype=np.float32)
    arg = np.full(out.shape, -1)
    c_round = lambda v: int(math.copysign(math.floor(abs(v) + 0.5), v))  # noqa: E731
    for n, roi in enumerate(rois):
        b = int(roi[0])
        sw, sh, ew, eh = (c_round(float(np.float32(v) * np.float32(scale))) for v in roi[1:])
        rw, rh = max(ew - sw + 1, 1), max(eh - sh + 1, 1)
        bh, bw = np.float32(rh) / np.float32(pooled_h), np.float32(rw) / np.float32(pooled_w)
        for c in range(channels):
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    hs = min(max(int(math.floor(ph * bh)) + sh, 0), height)
                    he = min(max(int(math.ceil((ph + 1) * bh)) + sh, 0), height)
                    ws = min(max(int(math.floor(pw * bw)) + sw, 0), width)
                    we = min(max(int(math.ceil((pw + 1) * bw)) + sw, 0), width)
                    empty = he <= hs or we <= ws
                    best, idx = (0.0 if empty else -np.finfo(np.float32).max), -1
                    for h in range(hs, he):
                        for w in range(ws, we):
                            if data[b, c, h, w] > best:
                                best, idx = data[b, c, h, w], h * width + w
                    out[n, c, ph, pw], arg[n, c, ph, pw] = best, idx
    return out, arg


SMOOTH = "caffebox_layers.losses.SmoothL1Loss"
ROI = "caffebox_layers.roi.ROIPooling"


@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_smooth_l1_forward_matches_the_fork(weights, sigma):
    b0, b1 = RNG.randn(4, 3, 2, 2), RNG.randn(4, 3, 2, 2)
    inputs = {"pred": b0, "target": b1}
    extra = {}
    if weights:
        extra = {"inside": RNG.rand(4, 3, 2, 2), "outside": RNG.rand(4, 3, 2, 2)}
        inputs.update(extra)
    net = make_harness(SMOOTH, inputs, param_str=f"'sigma': {sigma}", backend="standin")
    net.forward()
    expected = smooth_l1_reference(b0.astype(np.float32), b1.astype(np.float32),
                                   *(v.astype(np.float32) for v in extra.values()),
                                   sigma=sigma)  # fmt: skip
    assert net.tops[0].data[0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("weights", [False, True])
def test_smooth_l1_gradient(weights):
    # Away from the kinks at |d| = 1/sigma^2, where the finite difference is not the slope.
    b0 = RNG.uniform(-2, 2, (3, 4))
    inputs = {"pred": b0, "target": b0 + np.sign(RNG.randn(3, 4)) * RNG.uniform(0.2, 0.8, (3, 4))}
    inputs["target"].flat[::3] += 1.5
    down = [True, True]
    if weights:
        inputs.update(inside=RNG.uniform(0.5, 1, (3, 4)), outside=RNG.uniform(0.5, 1, (3, 4)))
        down += [False, False]
    report = check_gradient(SMOOTH, inputs, param_str="'sigma': 1.0", propagate_down=down,
                            backend="standin")  # fmt: skip
    assert report.passed, str(report)


def test_smooth_l1_refuses_three_bottoms():
    with pytest.raises(ParamError, match="2 bottoms .* or 4"):
        make_harness(SMOOTH, {"a": np.zeros(2), "b": np.zeros(2), "c": np.zeros(2)},
                     backend="standin")  # fmt: skip


def _features(shape):
    # Distinct values far apart: the finite difference never crosses an argmax tie.
    return (RNG.permutation(int(np.prod(shape))).reshape(shape) * 0.05).astype(np.float64)


ROIS = np.array([
    [0, 0, 0, 15, 15],      # the whole map at scale 0.5
    [1, 4.2, 2.6, 11.4, 9.5],
    [0, 9, 9, 9, 9],        # a 1x1 ROI: bins repeat the same element
    [1, -6, -6, 3, 40],     # clipped at the edges
    [0, 20, 20, 30, 30],    # outside the map: empty bins are 0
], dtype=np.float64)  # fmt: skip


def test_roi_pooling_forward_and_argmax_match_the_fork():
    data = _features((2, 3, 8, 8))
    params = "'pooled_w': 3, 'pooled_h': 2, 'spatial_scale': 0.5"
    net = make_harness(ROI, {"data": data, "rois": ROIS}, param_str=params, backend="standin")
    net.forward()
    expected, arg = roi_pool_reference(data.astype(np.float32), ROIS, 2, 3, 0.5)
    assert net.tops[0].data.shape == (5, 3, 2, 3)
    np.testing.assert_array_equal(net.tops[0].data, expected)
    np.testing.assert_array_equal(net.layer.argmax, arg)
    assert (arg[4] == -1).all() and (expected[4] == 0).all()


def test_roi_pooling_backward_routes_to_the_argmax():
    data = _features((2, 3, 8, 8))
    inputs = {"data": data, "rois": ROIS[:4]}
    report = check_gradient(ROI, inputs, param_str="'pooled_w': 2, 'pooled_h': 2, "
                            "'spatial_scale': 0.5", propagate_down=[True, False],
                            backend="standin")  # fmt: skip
    assert report.passed, str(report)
    assert report.checked > 0


def test_roi_pooling_refuses_rois_of_the_wrong_shape():
    with pytest.raises(ParamError, match=r"rois must be \(R, 5\)"):
        make_harness(ROI, {"data": np.zeros((1, 1, 4, 4)), "rois": np.zeros((2, 4))},
                     backend="standin")  # fmt: skip
