# A CUDA build base made without a registry, for compiling the gpu variant offline.
# NVIDIA's images cannot be pulled here; Debian's non-free nvidia-cuda-toolkit (CUDA 11.8)
# and cuDNN/NCCL from their PyPI wheels give the same layout those images have:
# CUDA_DIR=/usr/local/cuda with bin/nvcc, include/ (cudnn*.h, nccl.h) and lib64/.
# It compiles and links everything; it runs nothing (no driver here).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
# First step unlike any in docker/Dockerfile: the classic builder reuses the newest cached
# sibling of a step, and a shared first step would send later cache lookups astray.
LABEL io.caffebox.image="cuda-offline-base"
ARG DEBIAN_FRONTEND=noninteractive
RUN printf 'deb http://deb.debian.org/debian bookworm main contrib non-free non-free-firmware\n' \
        > /etc/apt/sources.list \
    && apt-get update && apt-get install -y --no-install-recommends \
        nvidia-cuda-toolkit python3-pip ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY build/ca-certificates.crt /tmp/caffebox/ca-certificates.crt
ARG CUDNN_WHEEL=nvidia-cudnn-cu11==9.10.2.21
ARG NCCL_WHEEL=nvidia-nccl-cu11==2.21.5
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
    && rm -rf /tmp/wheels
