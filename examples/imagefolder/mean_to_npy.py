"""compute_image_mean's .binaryproto as the .npy (C x H x W) that classify.py takes.

    caffebox python "examples/imagefolder/mean_to_npy.py MEAN.binaryproto MEAN.npy"
"""

import sys

import numpy as np
from caffe.io import blobproto_to_array
from caffe.proto import caffe_pb2

blob = caffe_pb2.BlobProto()
with open(sys.argv[1], "rb") as f:
    blob.ParseFromString(f.read())
mean = blobproto_to_array(blob)[0]
np.save(sys.argv[2], mean)
print(f"caffebox example: mean of shape {mean.shape} in {sys.argv[2]}")
