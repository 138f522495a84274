# caffebox's runtime base: what the runtime takes from the distribution as packages,
# Python and what pycaffe imports, OpenBLAS, fontconfig (the fonts caffe.draw's PNGs are
# written with) and tini, the image's own init (its entrypoint: no engine's init binary
# needed). Debian's own python3-numpy: pycaffe is compiled against it (numpy 1.x on
# Debian 12) and does not import under another major version, so build and runtime numpy
# are the same package.
#
# OpenBLAS as the package (libopenblas0-pthread): numpy's BLAS and LAPACK are then the
# OpenBLAS Caffe links (one 40 MB library, not it bundled beside the reference libblas3
# and liblapack3 numpy would pull in), and scipy's own copy becomes a shim to it
# (docker/bundle-libs.sh). No graphviz package: Debian's drags in libgd's AV1 and HEIF
# codecs (about 20 MB) for the PNGs of caffe.draw, which cairo writes; bundle-libs brings
# `dot` with the three plugins it uses, and pydot comes as a wheel (Debian's python3-pydot
# depends on graphviz).
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
        python3 python3-numpy libopenblas0-pthread python3-protobuf python3-pyparsing \
        python3-pytest python3-six python3-yaml libfontconfig1 tini \
    && find /usr/lib/python3/dist-packages -depth -type d -name tests \
         ! -path '*/numpy/_core/tests' -exec rm -rf {} + \
    && tests=/usr/lib/python3/dist-packages/numpy/_core/tests \
    && if [ -d $tests ]; then find $tests -mindepth 1 ! -name _natype.py -exec rm -rf {} +; fi \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /etc/dpkg/dpkg.cfg.d/caffebox-unsafe-io
