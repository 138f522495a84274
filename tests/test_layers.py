"""Library layers and the gradient checker on the numpy stand-in (no Caffe needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from caffebox_layers.testing import standin

if standin.real_caffe_available():  # pragma: no cover - the host suite never has pycaffe
    pytest.skip(
        "a real caffe is importable; these tests target the stand-in", allow_module_level=True
    )
standin.install()
sys.path.insert(0, str(Path(__file__).parent.parent / "examples" / "layer_tests"))
sys.path.insert(0, str(Path(__file__).parent.parent / "layers" / "compat"))

from caffebox_layers import ParamError, check_gradient, parse_param_str  # noqa: E402
from caffebox_layers.testing.harness import make_harness  # noqa: E402

RNG = np.random.RandomState(7)
LIBRARY_CASES = {
    "caffebox_layers.losses.EuclideanLoss": ({"a": RNG.randn(4, 3), "b": RNG.randn(4, 3)}, ""),
    "caffebox_layers.affine.ChannelAffine": (
        {"x": RNG.randn(2, 3, 2, 2)},
        "'gamma': 1.5, 'beta': -0.2",
    ),
    "caffebox_layers.gpu.EuclideanLossGPU": ({"a": RNG.randn(4, 3), "b": RNG.randn(4, 3)}, ""),
}
BROKEN_CASES = {
    "broken_layers.HalfGradientEuclidean": ({"a": RNG.randn(4, 3), "b": RNG.randn(4, 3)}, ""),
    "broken_layers.WrongSignAffine": ({"x": RNG.randn(2, 3, 2, 2)}, "'beta': 0.5"),
}


@pytest.mark.parametrize("layer", sorted(LIBRARY_CASES))
def test_library_layer_gradients(layer):
    inputs, param_str = LIBRARY_CASES[layer]
    report = check_gradient(layer, inputs, param_str=param_str, backend="standin")
    assert report.passed, str(report)
    assert report.checked > 0


@pytest.mark.parametrize("layer", sorted(BROKEN_CASES))
def test_broken_layers_fail_with_a_report(layer):
    inputs, param_str = BROKEN_CASES[layer]
    report = check_gradient(layer, inputs, param_str=param_str, backend="standin")
    assert not report.passed
    text = str(report)
    assert "FAILED" in text and "analytic" in text and "numeric" in text


def test_euclidean_matches_caffe_formula_and_loss_weight():
    a, b = RNG.randn(5, 2), RNG.randn(5, 2)
    net = make_harness("caffebox_layers.losses.EuclideanLoss", {"a": a, "b": b}, backend="standin")
    net.forward()
    assert net.tops[0].data[0] == pytest.approx(np.sum((a - b) ** 2) / 5 / 2, rel=1e-5)
    net.tops[0].diff[0] = 3.0  # loss_weight 3
    net.backward()
    np.testing.assert_allclose(net.bottoms[0].diff, 3.0 * (a - b) / 5, rtol=1e-5)
    np.testing.assert_allclose(net.bottoms[1].diff, -3.0 * (a - b) / 5, rtol=1e-5)


def test_affine_parameter_diffs_accumulate():
    x = RNG.randn(2, 3, 2, 2)
    net = make_harness("caffebox_layers.affine.ChannelAffine", {"x": x}, backend="standin")
    net.forward()
    net.tops[0].diff[...] = 1.0
    net.backward()
    once = net.params[1].diff.copy()
    net.backward()
    np.testing.assert_allclose(net.params[1].diff, 2 * once)  # += keeps iter_size correct


def test_moving_average_tracks_and_has_no_gradient():
    net = make_harness(
        "caffebox_layers.stats.MovingAverage", {"x": np.array([2.0])}, param_str="'decay': 0.5",
        backend="standin",
    )  # fmt: skip
    net.forward()
    assert net.tops[0].data[0] == pytest.approx(2.0)
    net.bottoms[0].data[...] = 4.0
    net.forward()
    assert net.tops[0].data[0] == pytest.approx(3.0)
    net.bottoms[0].diff[...] = 9.0  # e.g. a loss blob's diff holds its loss weight
    net.backward()
    assert net.bottoms[0].diff[0] == 9.0


def test_array_data_batches_and_shuffles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.savez("d.npz", data=np.arange(10).reshape(10, 1), label=np.arange(10))
    params = "{'source': 'd.npz', 'keys': ['data', 'label'], 'batch_size': 4, 'seed': 3}"
    net = make_harness(
        "caffebox_layers.data.ArrayData", [], outputs=2, param_str=params, backend="standin"
    )
    seen = []
    for _ in range(5):  # two epochs of 10 in batches of 4
        net.forward()
        np.testing.assert_array_equal(net.tops[0].data[:, 0], net.tops[1].data)
        seen += list(net.tops[1].data.astype(int))
    assert sorted(seen[:10]) == list(range(10))
    assert seen[:10] != list(range(10))  # shuffled in TRAIN


def test_array_data_missing_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamError, match="ArrayData: source 'gone.npz' not found"):
        make_harness(
            "caffebox_layers.data.ArrayData", [], 2, "'source': 'gone.npz'", backend="standin"
        )


@pytest.mark.parametrize(
    "text",
    ["'gamma': 2.0, 'beta': 1", '{"gamma": 2.0, "beta": 1}', "gamma: 2.0\nbeta: 1", "{'gamma': 2}"],
)
def test_param_str_formats(text):
    p = parse_param_str(text, "ChannelAffine", {"gamma": 1.0, "beta": 0.0})
    assert p["gamma"] == 2.0 and isinstance(p["beta"], float)


def test_param_str_bad_key_names_layer_and_key():
    with pytest.raises(
        ParamError, match=r"ChannelAffine: unknown key 'gama'.*allowed keys: beta, gamma"
    ):
        make_harness(
            "caffebox_layers.affine.ChannelAffine",
            {"x": RNG.randn(1, 2)},
            1,
            "'gama': 2",
            backend="standin",
        )


def test_param_str_required_and_unreadable():
    with pytest.raises(ParamError, match="must set 'source'"):
        parse_param_str("'batch_size': 3", "ArrayData", {"batch_size": 1}, required=["source"])
    with pytest.raises(ParamError, match="cannot read param_str"):
        parse_param_str("{{not: [valid", "L")


def test_fork_attribute_param_str_underscore():
    from caffebox_layers.params import layer_params

    class Fork:
        param_str_ = "'k': 5"

    assert layer_params(Fork(), {"k": 1}) == {"k": 5}


def test_tutorial_interface():
    from test_gradient_for_python_layer import test_gradient_for_python_layer

    a, b = RNG.randn(3, 2), RNG.randn(3, 2)
    report = test_gradient_for_python_layer(
        [("a", a), ("b", b)], ["loss"], "caffebox_layers.losses", "EuclideanLoss", "", [True, True]
    )
    assert report.passed
    with pytest.raises(AssertionError, match="worst elements"):
        test_gradient_for_python_layer(
            [("a", a), ("b", b)], ["loss"], "broken_layers", "HalfGradientEuclidean"
        )


def test_gpu_loss_falls_back_to_numpy_without_gpu_blobs():
    net = make_harness(
        "caffebox_layers.gpu.EuclideanLossGPU", {"a": RNG.randn(2, 2), "b": RNG.randn(2, 2)},
        backend="standin",
    )  # fmt: skip
    assert net.layer.on_gpu is False
    with pytest.raises(ParamError, match="backend 'gpu' asked for"):
        make_harness(
            "caffebox_layers.gpu.EuclideanLossGPU", {"a": RNG.randn(2, 2), "b": RNG.randn(2, 2)},
            param_str="'backend': 'gpu'", backend="standin",
        )  # fmt: skip


def test_parallel_runner_needs_visible_gpus(capsys):
    from caffebox_layers import parallel

    assert parallel.main(["--solver", "s.prototxt", "--gpus", "all"]) == 2
    assert "no GPU is visible" in capsys.readouterr().err


def test_standin_never_shadows_real_caffe(monkeypatch):
    import types

    real = types.ModuleType("caffe")
    monkeypatch.setitem(sys.modules, "caffe", real)
    with pytest.raises(RuntimeError, match="never shadows"):
        standin.install()


def test_a_blob_of_a_4d_only_caffe_gets_the_shape_padded():
    """BVLC rc2's Blob.reshape takes exactly four ints (Boost raises a TypeError subclass);
    ArrayData's label (N,) becomes (N, 1, 1, 1) there, and stays (N,) elsewhere."""
    from caffebox_layers import blobs

    class FourD:
        def reshape(self, num, channels, height, width):
            self.shape = (num, channels, height, width)

    class ND:
        def reshape(self, *shape):
            self.shape = shape

    old, new = FourD(), ND()
    blobs.reshape(old, 64)
    blobs.reshape(new, 64)
    assert old.shape == (64, 1, 1, 1) and new.shape == (64,)
    blobs.reshape(old, 2, 3, 4, 5)
    assert old.shape == (2, 3, 4, 5)
