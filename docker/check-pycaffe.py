"""The runtime stage's check: pycaffe does what users call, not only `import caffe`.

Loads a PNG in colour and grey (caffe.io.load_image), resizes it, preprocesses it with a
Transformer, solves with scipy.linalg (the OpenBLAS shim), classifies it with
caffe.Classifier and draws the net to a PNG (caffe.draw, as draw_net.py does). The first
step that fails ends the build with its reason.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback

import numpy as np

STEPS: list[str] = []
# The net's input as the deprecated top-level fields every Caffe parses (2015's trees
# predate the Input layer; newer ones upgrade these to one).
DEPLOY = """name: "check"
input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""
# A gpu build is checked where there is no GPU: its Softmax must be Caffe's own, not
# cuDNN's, whose setup needs a device (cudnnCreate fails: CUDNN_STATUS_NOT_INITIALIZED).
if os.environ.get("CAFFEBOX_CUDA"):
    DEPLOY = DEPLOY.replace('bottom: "ip" top: "prob" }',
                            'bottom: "ip" top: "prob" softmax_param { engine: CAFFE } }')
# A net whose one layer is a Python layer (for trees without caffe.layer_type_list); the
# layer, a pass-through, is also the user layer of the export tests.
PYTHON_NET = """name: "check_python"
input: "data" input_dim: 1 input_dim: 2 input_dim: 1 input_dim: 1
layer { name: "pass" type: "Python" bottom: "data" top: "out"
        python_param { module: "check_layer" layer: "Pass" } }
"""
PASS_LAYER = """import caffe


class Pass(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = top[0].diff
"""


def main(folder: str) -> None:
    import caffe
    import caffe.draw
    import caffe.io
    import skimage.io
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    def step(what: str) -> None:
        STEPS.append(what)

    step("register the Python layer (WITH_PYTHON_LAYER := 1)")
    if hasattr(caffe, "layer_type_list"):
        assert "Python" in caffe.layer_type_list(), "no 'Python' in caffe.layer_type_list()"
    else:  # a tree before 2015's rc3 lists no layer types: a net with a Python layer
        with open(os.path.join(folder, "check_layer.py"), "w") as f:
            f.write(PASS_LAYER)
        with open(os.path.join(folder, "python.prototxt"), "w") as f:
            f.write(PYTHON_NET)
        sys.path.insert(0, folder)
        net = caffe.Net(os.path.join(folder, "python.prototxt"), caffe.TEST)
        assert "out" in net.blobs, list(net.blobs)
    png = os.path.join(folder, "check.png")
    pixels = (np.arange(8 * 8 * 3).reshape(8, 8, 3) * 2).astype(np.uint8)
    skimage.io.imsave(png, pixels, check_contrast=False)
    step("caffe.io.load_image of a colour PNG")
    colour = caffe.io.load_image(png)
    assert colour.shape == (8, 8, 3) and colour.dtype == np.float32, colour.shape
    # A grey PNG: color=False gives one channel in every pycaffe (2015's io.py converts
    # only images that are grey already), color=True three.
    grey_png = os.path.join(folder, "grey.png")
    skimage.io.imsave(grey_png, pixels[:, :, 0], check_contrast=False)
    step("caffe.io.load_image(color=False) of a grey PNG")
    grey = caffe.io.load_image(grey_png, color=False)
    assert grey.shape == (8, 8, 1), grey.shape
    assert caffe.io.load_image(grey_png).shape == (8, 8, 3)
    step("caffe.io.resize_image")
    assert caffe.io.resize_image(colour, (5, 7)).shape == (5, 7, 3)
    step("scipy.linalg on the image's one OpenBLAS (scipy's own copy is a shim to it)")
    import scipy.linalg

    a = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])
    b = np.array([1.0, 2.0, 3.0])
    assert np.allclose(a @ scipy.linalg.solve(a, b), b)
    assert np.allclose(scipy.linalg.eigvalsh(a), np.linalg.eigvalsh(a))
    u, sv, vt = scipy.linalg.svd(a)
    assert np.allclose((u * sv) @ vt, a)
    step("caffe.io.Transformer.preprocess")
    transformer = caffe.io.Transformer({"data": (1, 3, 8, 8)})
    transformer.set_transpose("data", (2, 0, 1))
    assert transformer.preprocess("data", colour).shape == (3, 8, 8)
    step("caffe.io.array_to_datum / datum_to_array")
    datum = caffe.io.array_to_datum(pixels.transpose(2, 0, 1), 3)
    assert (caffe.io.datum_to_array(datum) == pixels.transpose(2, 0, 1)).all()
    step("caffe.Classifier(...).predict")
    deploy = os.path.join(folder, "deploy.prototxt")
    with open(deploy, "w") as f:
        f.write(DEPLOY)
    weights = os.path.join(folder, "check.caffemodel")
    caffe.Net(deploy, caffe.TEST).save(weights)
    classifier = caffe.Classifier(deploy, weights, image_dims=(8, 8))
    scores = classifier.predict([colour], oversample=False)
    assert scores.shape == (1, 4) and abs(float(scores.sum()) - 1) < 1e-4, scores
    step("caffe.draw.draw_net_to_file to a PNG")
    net = caffe_pb2.NetParameter()
    text_format.Merge(DEPLOY, net)
    drawn = os.path.join(folder, "net.png")
    caffe.draw.draw_net_to_file(net, drawn, "LR")
    with open(drawn, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", "not a PNG"
    print(f"caffebox: pycaffe checked: {'; '.join(STEPS)}")


if __name__ == "__main__":
    os.environ.setdefault("GLOG_minloglevel", "2")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            main(tmp)
        except Exception as exc:  # the build's one line of why
            traceback.print_exc()
            sys.exit(f"caffebox: this tree's pycaffe cannot {STEPS[-1] if STEPS else 'import'}: "
                     f"{exc!r} (traceback above)")
