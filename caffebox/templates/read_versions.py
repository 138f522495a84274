"""Run inside a freshly built image (python3 -c): what the labels say about it."""

import glob
import platform
import re

import numpy

print("PYTHON_VERSION=" + platform.python_version())
print("NUMPY_VERSION=" + numpy.__version__)
print(open("/opt/caffe/build-info.env").read())
found = sorted(
    glob.glob("/usr/lib*/**/libcudnn.so.*", recursive=True)
    + glob.glob("/usr/local/cuda*/lib*/libcudnn.so.*")
)
# cuDNN only where Caffe was built with it (an old fork's gpu image is built without).
config = open("/opt/caffe/Makefile.config").read()
uses = re.search(r"^\s*USE_CUDNN\s*:?=\s*1\b", config, flags=re.M)
print("CUDNN_VERSION=" + (found[0].split(".so.")[1].split(".")[0] if found and uses else ""))
