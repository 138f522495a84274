#!/usr/bin/env bash
# The gpu image on a real NVIDIA GPU, without Docker: run on a GPU host with an export of
# the gpu image (caffebox export caffebox:gpu caffebox-gpu.tar.zst --without-cuda-libs).
#
#   benchmarks/gpu_host.sh caffebox-gpu.tar.zst [WORKDIR]      # from a checkout of caffebox
#   CAFFEBOX_CPU_ONLY=1 benchmarks/gpu_host.sh caffebox-cpu.tar.zst   # the same steps, no GPU
#   CAFFEBOX_RUNNER=unshare ...                                 # unshare even where ch-run is
#
# Needs the NVIDIA driver, the CUDA libraries of the image's CUDA major (build-gpu's
# default, CUDA 12: NVIDIA's nvidia-*-cu12 pip wheels or a CUDA 12 /usr/local/cuda; an image
# built --cuda 13: nvidia-cublas, nvidia-cudnn-cu13, ...; or LD_LIBRARY_PATH), and a way to
# enter the unpacked image as yourself: Charliecloud's ch-run, or unshare (user
# namespaces). An export whose CUDA the host lacks stops before any step, saying which.
# Prints: device_query, digits on GPU (accuracy, iterations/s) against the CPU, cuDNN
# against Caffe's own convolution (max differences, caffe time of both), the gradient
# checker in GPU mode on our Python layers, the loss-layer benchmark, and the multi-GPU
# runner with one rank.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export_file=$(realpath "$1")
work=$(realpath -m "${2:-$PWD/caffebox-gpu-check}")
cpu_only=${CAFFEBOX_CPU_ONLY:-}
rootfs=$work/rootfs
project=$work/project
step() { printf '\n==== %s\n' "$*"; }

# A GPU host may lack the zstd or xz programs: Python's lzma, or zstandard, then.
decompress() {
    case "$1" in
    *.zst) if command -v zstd >/dev/null; then zstd -dc "$1"; else python3 -c \
        'import sys, zstandard; zstandard.ZstdDecompressor().copy_stream(open(sys.argv[1], "rb"), sys.stdout.buffer)' "$1"; fi ;;
    *.xz) if command -v xz >/dev/null; then xz -dc -T0 "$1"; else python3 -c \
        'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi ;;
    *) cat "$1" ;;
    esac
}
if [ ! -x "$rootfs/usr/bin/caffebox-run" ]; then
    step "unpacking $export_file into $rootfs"
    mkdir -p "$rootfs"
    decompress "$export_file" | tar -x -C "$rootfs"
fi
rm -rf "$project" && mkdir -p "$project/snapshots"
cp -r "$here/examples" "$here/benchmarks" "$project/"
mkdir -p "$rootfs/workspace" "$rootfs/opt/nvidia" "$rootfs/opt/host-driver"

# The host's driver: its own files only (libcuda, the PTX JIT, NVML), copied as the NVIDIA
# container toolkit mounts them; binding their folder (often /usr/lib/x86_64-linux-gnu)
# would put the host's libc before the image's.
driver_src=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 /{print $NF; exit}' | xargs -r dirname || true)
for d in /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu /usr/lib64; do
    if [ -z "$driver_src" ] && [ -e "$d/libcuda.so.1" ]; then driver_src=$d; fi
done
driver_dir=
if [ -n "$driver_src" ]; then
    driver_dir=$work/host-driver
    rm -rf "$driver_dir" && mkdir -p "$driver_dir"
    for pattern in libcuda.so libnvidia-ptxjitcompiler.so libnvidia-nvvm.so libnvidia-ml.so \
        libnvidia-gpucomp.so; do
        cp -L "$driver_src/$pattern"* "$driver_dir/" 2>/dev/null || true  # -L: links may be absolute
    done
fi
# The site-packages/nvidia holding the most libraries (the package can span several paths).
nvidia_dir=$(python3 -c '
import glob, nvidia
print(max(nvidia.__path__, key=lambda p: len(glob.glob(p + "/*/lib/lib*.so*"))))' 2>/dev/null || true)
binds=("$project:/workspace")
[ -n "$driver_dir" ] && binds+=("$driver_dir:/opt/host-driver")
[ -n "$nvidia_dir" ] && binds+=("$nvidia_dir:/opt/nvidia")
[ -d /usr/local/cuda ] && mkdir -p "$rootfs/usr/local/cuda" && binds+=("/usr/local/cuda:/usr/local/cuda")
echo "driver: ${driver_src:-none} ($(ls "$driver_dir" 2>/dev/null | tr '\n' ' ')); CUDA wheels: ${nvidia_dir:-none}"
# The image's CUDA major against the host's libraries: an export --without-cuda-libs runs
# only on the same major's cudart (libcudart.so.12 for build-gpu's default).
image_cuda=$(sed -n 's/^CUDA_VERSION=//p' "$rootfs/opt/caffe/build-info.env" 2>/dev/null || true)
if [ -z "$cpu_only" ] && [ -n "$image_cuda" ] \
        && ! ls "$rootfs"/usr/lib/*/libcudart.so.* "$rootfs"/usr/local/cuda/lib64/libcudart.so.* \
            >/dev/null 2>&1; then
    want_so=libcudart.so.${image_cuda%%.*}
    found_so=$(find ${LD_LIBRARY_PATH:+${LD_LIBRARY_PATH//:/ }} /usr/local/cuda/lib64 ${nvidia_dir:+"$nvidia_dir"} \
        -name "$want_so*" 2>/dev/null | head -1 || true)
    if [ -z "$found_so" ]; then
        have=$(find ${LD_LIBRARY_PATH:+${LD_LIBRARY_PATH//:/ }} /usr/local/cuda/lib64 ${nvidia_dir:+"$nvidia_dir"} \
            -name 'libcudart.so.*' 2>/dev/null | sed 's/.*libcudart/libcudart/' | sort -u | tr '\n' ' ')
        echo "gpu_host: this export is CUDA $image_cuda without its CUDA libraries, and this host has no $want_so (it has: ${have:-none}). Export an image built for the host's CUDA (caffebox build-gpu --cuda 13 for CUDA 13 wheels), or install NVIDIA's CUDA ${image_cuda%%.*} wheels." >&2
        exit 2
    fi
fi
{ command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; } || true

# Each step gets at most this long, so that one hang leaves the others their time.
limit=${CAFFEBOX_STEP_TIMEOUT:-300}
userns=(--user --map-root-user)
[ "$(id -u)" = 0 ] && userns=()  # root needs no user namespace to mount and chroot
inside() {  # run a command in the image, in /workspace, with caffebox-run's environment
    local ld="/opt/host-driver"
    if [ "${CAFFEBOX_RUNNER:-}" != unshare ] && command -v ch-run >/dev/null; then
        local args=()
        for b in "${binds[@]}"; do args+=(-b "$b"); done
        USER=${USER:-caffebox} timeout "$limit" ch-run "${args[@]}" -c /workspace "$rootfs" -- \
            env LD_LIBRARY_PATH="$ld" caffebox-run "$@"
    else
        local mounts="mount --rbind /dev $rootfs/dev && mount --rbind /sys $rootfs/sys"
        mounts+=" && mount -t proc proc $rootfs/proc"
        for b in "${binds[@]}"; do mounts+=" && mount --bind ${b%%:*} $rootfs${b#*:}"; done
        timeout "$limit" unshare "${userns[@]}" --mount --pid --fork --kill-child sh -c \
            "$mounts && exec chroot $rootfs /usr/bin/env LD_LIBRARY_PATH=$ld HOME=/tmp \
             /usr/bin/caffebox-run sh -c 'cd /workspace && exec \"\$@\"' sh $(printf '%q ' "$@")"
    fi
}

solver=examples/digits/solver.prototxt
sed -e 's/^solver_mode:.*/solver_mode: GPU/' -e 's/^snapshot:.*/snapshot: 0/' \
    -e 's|snapshots/digits|snapshots/digits_gpu|' "$project/$solver" > "$project/digits_gpu.prototxt"
sed -e 's/^snapshot:.*/snapshot: 0/' -e 's|snapshots/digits|snapshots/digits_cpu|' \
    "$project/$solver" > "$project/digits_cpu.prototxt"
# Iterations per second over the whole run, from glog's timestamps (forks differ in
# whether they print "iter/s"); testing included, as a user waits for it.
rate() {
    awk '/Iteration [0-9]+.*, loss = / {
        match($0, /Iteration [0-9]+/); it = substr($0, RSTART + 10, RLENGTH - 10)
        split($2, t, ":"); s = t[1] * 3600 + t[2] * 60 + t[3]
        if (!n++) { i0 = it; s0 = s }; i1 = it; s1 = s
    } END { if (s1 > s0) printf "%.0f", (i1 - i0) / (s1 - s0) }' "$1"
}
accuracy() { grep 'Test net output #0: accuracy' "$1" | tail -1 | awk '{print $NF}'; }
trained() {  # $1: the log; its accuracy and speed, or how it ended
    local a
    a=$(accuracy "$1" || true)
    if [ -n "$a" ]; then echo "accuracy $a, $(rate "$1") iter/s"; else tail -5 "$1"; fi
}

# CAFFEBOX_STEPS="conv parallel" runs only those of: libs query digits conv grad loss parallel.
want() { [ -z "${CAFFEBOX_STEPS:-}" ] || [[ " $CAFFEBOX_STEPS " == *" $1 "* ]]; }
gpu=()
mode=CPU
[ -z "$cpu_only" ] && gpu=(--gpu 0) && mode=GPU

if [ -z "$cpu_only" ] && want libs; then
    step "the CUDA libraries Caffe loads"
    inside sh -c 'ldd /opt/caffe/lib/libcaffe.so.* | grep -E "lib(cudart|cublas|cublasLt|cudnn|curand|nccl)\.so" | sort -u' || true
fi
if [ -z "$cpu_only" ] && want query; then
    step "caffe device_query -gpu 0"
    inside caffe device_query -gpu 0 2>&1 | sed 's/^I[0-9]* [0-9:.]* *[0-9]* [a-z_.]*:[0-9]*\] //' || true
fi
if want digits; then
    if [ -z "$cpu_only" ]; then
        step "digits, solver_mode: GPU"
        inside caffe train -solver digits_gpu.prototxt -gpu 0 > "$work/digits_gpu.log" 2>&1 || true
        trained "$work/digits_gpu.log"
    fi
    step "digits, solver_mode: CPU (same net, this host's CPU)"
    inside caffe train -solver digits_cpu.prototxt > "$work/digits_cpu.log" 2>&1 || true
    trained "$work/digits_cpu.log"
fi

if want conv && [ -z "$cpu_only" ]; then
    step "cuDNN against CAFFE convolution"
    # FP32 against FP32 first (strict), then cuDNN's default math (TF32 on Ampere and later).
    inside env NVIDIA_TF32_OVERRIDE=0 python3 benchmarks/gpu_conv_check.py --out /workspace \
        --limit 1e-4 || true
    inside python3 benchmarks/gpu_conv_check.py --out /workspace --report || true
    # Twice each, interleaved, so that clocks ramping up favour neither; per-layer lines once.
    show="(conv1|conv2)[[:space:]]+(forward|backward):|Average (Forward|Backward) pass"
    for round in 1 2; do
        for engine in cudnn caffe; do
            echo "caffe time, round $round, engine ${engine^^}:"
            inside caffe time -model "conv_$engine.prototxt" -gpu 0 -iterations 500 2>&1 \
                | grep -E "$show" | sed 's/.*\] *//' || true
        done
        show="Average (Forward|Backward) pass"
    done
elif want conv; then
    step "CAFFE convolution on the CPU"
    inside python3 benchmarks/gpu_conv_check.py --cpu --out /workspace || true
fi

if want grad; then
    step "gradient checks of our Python layers (Caffe's $mode mode)"
    for case in "caffebox_layers.gpu.EuclideanLossGPU --input a=8x16 --input b=8x16" \
                "caffebox_layers.losses.EuclideanLoss --input a=8x16 --input b=8x16" \
                "caffebox_layers.affine.ChannelAffine --input x=2x3x4x4"; do
        # shellcheck disable=SC2086
        inside python3 -m caffebox_layers.testing $case --backend caffe "${gpu[@]}" 2>&1 \
            | tail -1 || true
    done
    inside python3 -c "import caffebox_layers.gpu as g; print('CuPy in the image:', g.cupy is not None)" \
        2>/dev/null || true
fi

if want loss; then
    step "Python loss layers against C++ EuclideanLoss"
    loss_args=()
    [ -z "$cpu_only" ] && loss_args=(--gpu)
    inside python3 benchmarks/loss_layers.py "${loss_args[@]}" || true
fi

if [ -z "$cpu_only" ] && want parallel; then
    step "caffebox_layers.parallel with one GPU"
    inside env NCCL_DEBUG=INFO python3 -m caffebox_layers.parallel \
        --solver digits_gpu.prototxt --gpus 0 > "$work/parallel.log" 2>&1 || true
    grep -E "NCCL INFO (Bootstrap|NCCL version|ncclCommInitRank.*Init COMPLETE)" \
        "$work/parallel.log" | sed 's/^.*NCCL INFO/NCCL/' | sort -u | head -4 || true
    grep -v "NCCL INFO" "$work/parallel.log" | tail -3
    trained "$work/parallel.log"
fi
