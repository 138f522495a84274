# A CUDA 13 build base made without a registry, entirely from NVIDIA's PyPI wheels: nvcc,
# the runtime, CCCL, cuBLAS, cuRAND, cuDNN 9 and NCCL. CUDA 13 wheels install into one tree
# (nvidia/cu13/{bin,include,lib,nvvm}); with cuDNN's and NCCL's include/ and lib/ merged in,
# it is laid out as NVIDIA's images are (CUDA_DIR=/usr/local/cuda, lib64/). It compiles
# and links everything; it runs nothing (no driver here). Two targets, as NVIDIA's images:
# devel (the build stage's base) and runtime (the shared libraries only: no nvcc, NVVM,
# headers, static libraries or pip; the runtime stage's base).
ARG BASE_IMAGE=debian:trixie-slim
FROM ${BASE_IMAGE} AS devel
# First step unlike any in the other Dockerfiles (the classic builder's cache, see
# cuda-offline.Dockerfile).
LABEL io.caffebox.image="cuda13-offline-base"
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY build/ca-certificates.crt /tmp/caffebox/ca-certificates.crt
COPY docker/cuda13-wheels.txt /tmp/caffebox/cuda13-wheels.txt
RUN if [ -s /tmp/caffebox/ca-certificates.crt ]; then \
         export PIP_CERT=/tmp/caffebox/ca-certificates.crt; fi \
    && python3 -m pip install --break-system-packages --no-deps --only-binary :all: \
        --no-cache-dir --no-compile --target /tmp/wheels -r /tmp/caffebox/cuda13-wheels.txt \
    && mkdir -p /usr/local/cuda \
    && for tree in /tmp/wheels/nvidia/*/; do cp -a "$tree". /usr/local/cuda/; done \
    && cd /usr/local/cuda && rm -f __init__.py && mv lib lib64 && ln -s lib64 lib \
    && cd lib64 && for lib in lib*.so.[0-9]*; do ln -sf "$lib" "${lib%%.so.*}.so"; done \
    && echo /usr/local/cuda/lib64 > /etc/ld.so.conf.d/cuda.conf && ldconfig \
    && /usr/local/cuda/bin/nvcc --version | tail -2 \
    && rm -rf /tmp/wheels
ENV PATH=/usr/local/cuda/bin:$PATH

# Only what a program built on devel loads: the shared libraries of cuda13-wheels.txt's
# runtime wheels (not NVVM, which is nvcc's), NVRTC included (CuPy compiles with it).
FROM ${BASE_IMAGE} AS runtime
LABEL io.caffebox.image="cuda13-offline-runtime"
COPY --from=devel /usr/local/cuda/lib64/libcudart.so.* /usr/local/cuda/lib64/libcublas*.so.* \
     /usr/local/cuda/lib64/libcurand.so.* /usr/local/cuda/lib64/libcudnn*.so.* \
     /usr/local/cuda/lib64/libnccl.so.* /usr/local/cuda/lib64/libnvrtc.so.* \
     /usr/local/cuda/lib64/libnvrtc-builtins.so.* /usr/local/cuda/lib64/
RUN ln -s lib64 /usr/local/cuda/lib \
    && echo /usr/local/cuda/lib64 > /etc/ld.so.conf.d/cuda.conf && ldconfig
