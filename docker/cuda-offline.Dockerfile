# A CUDA build base made without a registry from Debian's own CUDA toolkit (non-free):
# CUDA 12.4 on Debian 13, CUDA 11.8 on Debian 12; cuDNN 9 and NCCL from NVIDIA's PyPI
# wheels for that CUDA. (NVIDIA's CUDA 12 wheels carry no compiler, only ptxas and
# libnvvm, so unlike CUDA 13's no CUDA 12 base can be made from wheels alone.) Laid out as
# NVIDIA's images are: CUDA_DIR=/usr/local/cuda with bin/nvcc, include/ (cudnn*.h, nccl.h)
# and lib64/; Debian's nvcc picks a host compiler it supports by itself. Two targets, as
# NVIDIA's images: devel (compiles and links everything; runs nothing without a driver)
# and runtime (the shared libraries a build links: Debian's packages of them, cuDNN's and
# NCCL's files; no compiler, headers or static libraries).
ARG BASE_IMAGE=debian:trixie-slim
FROM ${BASE_IMAGE} AS devel
# First step unlike any in docker/Dockerfile: the classic builder reuses the newest cached
# sibling of a step, and a shared first step would send later cache lookups astray.
LABEL io.caffebox.image="cuda-offline-base"
ARG DEBIAN_FRONTEND=noninteractive
COPY docker/debian-non-free.sh /usr/local/bin/debian-non-free
# dpkg skips its fsyncs while it unpacks the toolkit's 5 GB (the layer is written once the
# step ends anyway); the setting does not stay in the image.
RUN debian-non-free \
    && apt-get update && apt-get install -y --no-install-recommends \
        -o Dpkg::Options::=--force-unsafe-io nvidia-cuda-toolkit python3-pip ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY build/ca-certificates.crt /tmp/caffebox/ca-certificates.crt
ARG CUDNN_WHEEL=nvidia-cudnn-cu12==9.13.0.50
ARG NCCL_WHEEL=nvidia-nccl-cu12==2.28.3
RUN if [ -s /tmp/caffebox/ca-certificates.crt ]; then \
         export PIP_CERT=/tmp/caffebox/ca-certificates.crt; fi \
    && python3 -m pip install --break-system-packages --no-deps --only-binary :all: \
        --no-cache-dir --target /tmp/wheels "$CUDNN_WHEEL" "$NCCL_WHEEL" \
    && mkdir -p /usr/local/cuda/bin /usr/local/cuda/include /usr/local/cuda/lib64 \
    && ln -s /usr/bin/nvcc /usr/local/cuda/bin/nvcc \
    && cp -a /tmp/wheels/nvidia/cudnn/include/. /tmp/wheels/nvidia/nccl/include/. \
        /usr/local/cuda/include/ \
    && cp -a /tmp/wheels/nvidia/cudnn/lib/. /tmp/wheels/nvidia/nccl/lib/. /usr/local/cuda/lib64/ \
    && cd /usr/local/cuda/lib64 \
    && for lib in lib*.so.[0-9]*; do ln -sf "$lib" "${lib%%.so.*}.so"; done \
    && echo /usr/local/cuda/lib64 > /etc/ld.so.conf.d/cuda.conf && ldconfig \
    && rm -rf /tmp/wheels \
    && nvcc --version | tail -2
# What the runtime installs: the Debian packages of the CUDA libraries a gpu build loads
# (the runtime, cuBLAS, cuRAND, NVRTC for CuPy), named from the files themselves, so each
# release's package names (libcudart12, libcudart11.0, ...) need no list here.
RUN for lib in libcudart.so libcublas.so libcublasLt.so libcurand.so libnvrtc.so \
            libnvrtc-builtins.so; do \
        path=$(ldconfig -p | awk -v n="$lib." 'index($1, n) == 1 {print $NF; exit}'); \
        [ -n "$path" ] || { echo "caffebox: no $lib in Debian's CUDA" >&2; exit 1; }; \
        dpkg -S "$(readlink -f "$path")" | cut -d: -f1; \
    done | sort -u > /usr/local/cuda/runtime-packages \
    && echo "caffebox: the runtime's CUDA packages: $(tr '\n' ' ' < /usr/local/cuda/runtime-packages)"
# Debian's toolkit brings its NVIDIA driver packages (libcuda1, for the profiler) and with
# them points the glx alternative at that driver, so libGL.so.1 resolves to nothing here;
# Qt, which OpenCV's highgui links, needs it. Mesa's (glvnd), as on any machine without the
# driver: a tool linking highgui then links and loads as on the cpu image.
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 \
    && rm -rf /var/lib/apt/lists/* \
    && update-alternatives --set glx /usr/lib/mesa-diverted && ldconfig

FROM ${BASE_IMAGE} AS runtime
LABEL io.caffebox.image="cuda-offline-runtime"
ARG DEBIAN_FRONTEND=noninteractive
COPY docker/debian-non-free.sh /usr/local/bin/debian-non-free
COPY --from=devel /usr/local/cuda/runtime-packages /tmp/caffebox/cuda-runtime-packages
RUN debian-non-free \
    && apt-get update \
    && xargs apt-get install -y --no-install-recommends < /tmp/caffebox/cuda-runtime-packages \
    && rm -rf /var/lib/apt/lists/* /tmp/caffebox
COPY --from=devel /usr/local/cuda/lib64/ /usr/local/cuda/lib64/
RUN ln -s lib64 /usr/local/cuda/lib \
    && echo /usr/local/cuda/lib64 > /etc/ld.so.conf.d/cuda.conf && ldconfig
