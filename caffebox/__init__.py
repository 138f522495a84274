"""caffebox: Caffe with Python layers, built and run in Docker.

The host-side package: rendering Makefile.config, building images, checking
solvers and running `caffe train` in a container. `tasks.py` and the `caffebox`
command are thin wrappers over these modules.
"""

__version__ = "0.1.0"
