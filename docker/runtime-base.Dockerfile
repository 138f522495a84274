# caffebox's runtime base: what the runtime takes from the distribution as packages,
# Python and what pycaffe imports (graphviz's dot: caffe.draw and draw_net.py write PNGs),
# and tini, the image's own init (its entrypoint: no engine's init binary needed).
# Debian's own python3-numpy: pycaffe is compiled against
# it (numpy 1.x) and does not import under numpy 2, so build and runtime numpy are the same
# package.
#
# A Dockerfile of its own so the host builds it at the same time as docker/Dockerfile's
# build stage (the classic builder runs one stage after another, and both steps are mostly
# dpkg unpacking on one core); docker/Dockerfile takes it as RUNTIME_BASE.
ARG RUNTIME_IMAGE=debian:trixie-slim

FROM ${RUNTIME_IMAGE}
ARG CAFFEBOX_STAGE=runtime-base
ARG DEBIAN_FRONTEND=noninteractive
# dpkg skips fsyncs during this step only. The packages' own test suites go (numpy's:
# 15 MB; a dpkg path-exclude cannot do it: py3compile then fails on the missing files),
# but for numpy 2's _core/tests/_natype.py, which numpy.testing imports.
RUN echo force-unsafe-io > /etc/dpkg/dpkg.cfg.d/caffebox-unsafe-io \
    && apt-get update && apt-get install -y --no-install-recommends \
        python3 python3-numpy python3-protobuf python3-pydot python3-pytest python3-six \
        python3-yaml graphviz tini \
    && find /usr/lib/python3/dist-packages -depth -type d -name tests \
         ! -path '*/numpy/_core/tests' -exec rm -rf {} + \
    && tests=/usr/lib/python3/dist-packages/numpy/_core/tests \
    && if [ -d $tests ]; then find $tests -mindepth 1 ! -name _natype.py -exec rm -rf {} +; fi \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /etc/dpkg/dpkg.cfg.d/caffebox-unsafe-io
