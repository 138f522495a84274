"""caffebox time: `caffe time`'s log read back as a table (a log written in its format)."""

from __future__ import annotations

from caffebox import prototxt, timing

LOG = """I1202 18:00:00.1 caffe.cpp:404] Average time per layer:
I1202 18:00:00.1 caffe.cpp:407]     digits\tforward: 0.3 ms.
I1202 18:00:00.1 caffe.cpp:410]     digits\tbackward: 0.001 ms.
I1202 18:00:00.1 caffe.cpp:407]      conv1\tforward: 0.5 ms.
I1202 18:00:00.1 caffe.cpp:410]      conv1\tbackward: 0.7 ms.
I1202 18:00:00.1 caffe.cpp:407]       loss\tforward: 0.049 ms.
I1202 18:00:00.1 caffe.cpp:410]       loss\tbackward: 0.45 ms.
I1202 18:00:00.1 caffe.cpp:415] Average Forward pass: 0.85 ms.
I1202 18:00:00.1 caffe.cpp:417] Average Backward pass: 1.15 ms.
I1202 18:00:00.1 caffe.cpp:419] Average Forward-Backward: 2 ms.
""".splitlines()
NET = """
layer { name: "digits" type: "Python" include { phase: TRAIN } }
layer { name: "digits" type: "Data" include { phase: TEST } }
layer { name: "conv1" type: "Convolution" }
layer { name: "loss" type: "Python" }
"""


def test_train_phase_layers_and_their_types():
    kinds = timing.train_layers(prototxt.parse(NET))
    assert kinds == {"digits": "Python", "conv1": "Convolution", "loss": "Python"}


def test_table_sorted_with_python_share():
    rows, total = timing.parse(LOG, timing.train_layers(prototxt.parse(NET)))
    assert [r.name for r in rows] == ["conv1", "loss", "digits"] and total == 2
    text = timing.table(rows, total, on_gpu=False)
    assert "conv1" in text.splitlines()[1] and "60.0%" in text.splitlines()[1]
    # (0.301 + 0.499) / 2 = 40%
    assert "Python layers: 40% of the step (* above: loss, digits)" in text
    assert "copied to the host" not in text
    assert "copied to the host" in timing.table(rows, total, on_gpu=True)


def test_csv(tmp_path):
    rows, total = timing.parse(LOG, {"conv1": "Convolution"})
    timing.write_csv(rows, total, tmp_path / "t.csv")
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0] == "layer,type,forward_ms,backward_ms,share"
    assert lines[1].startswith("conv1,Convolution,0.5,0.7,0.6")
    assert "digits,?" in lines[3]
