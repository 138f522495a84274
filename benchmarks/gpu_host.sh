#!/usr/bin/env bash
# The gpu image on a real NVIDIA GPU, without Docker: run on a GPU host with an export of
# the gpu image (caffebox export caffebox:gpu caffebox-gpu.tar.zst --without-cuda-libs).
#
#   benchmarks/gpu_host.sh caffebox-gpu.tar.zst [WORKDIR]      # from a checkout of caffebox
#   CAFFEBOX_CPU_ONLY=1 benchmarks/gpu_host.sh caffebox-cpu.tar.zst   # the same steps, no GPU
#   CAFFEBOX_RUNNER=unshare ...                                 # unshare even where ch-run is
#
# Needs the NVIDIA driver, CUDA 13 libraries (NVIDIA's pip wheels: nvidia-cublas,
# nvidia-cudnn-cu13, ...; or /usr/local/cuda; or LD_LIBRARY_PATH), and a way to enter the
# unpacked image as yourself: Charliecloud's ch-run, or unshare (user namespaces).
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

if [ ! -x "$rootfs/usr/bin/caffebox-run" ]; then
    step "unpacking $export_file into $rootfs"
    mkdir -p "$rootfs"
    tar --zstd -xf "$export_file" -C "$rootfs"
fi
rm -rf "$project" && mkdir -p "$project/snapshots"
cp -r "$here/examples" "$here/benchmarks" "$project/"
mkdir -p "$rootfs/workspace" "$rootfs/opt/nvidia" "$rootfs/opt/host-driver"

# The host's driver (libcuda, libnvidia-ml) and CUDA libraries, bound into the image.
driver_dir=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 /{print $NF; exit}' | xargs -r dirname)
nvidia_dir=$(python3 -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2>/dev/null || true)
binds=("$project:/workspace")
[ -n "$driver_dir" ] && binds+=("$driver_dir:/opt/host-driver")
[ -n "$nvidia_dir" ] && binds+=("$nvidia_dir:/opt/nvidia")
[ -d /usr/local/cuda ] && mkdir -p "$rootfs/usr/local/cuda" && binds+=("/usr/local/cuda:/usr/local/cuda")
echo "driver: ${driver_dir:-none}; CUDA wheels: ${nvidia_dir:-none}"

inside() {  # run a command in the image, in /workspace, with caffebox-run's environment
    local ld="/opt/host-driver"
    if [ "${CAFFEBOX_RUNNER:-}" != unshare ] && command -v ch-run >/dev/null; then
        local args=()
        for b in "${binds[@]}"; do args+=(-b "$b"); done
        USER=${USER:-caffebox} ch-run "${args[@]}" -c /workspace "$rootfs" -- \
            env LD_LIBRARY_PATH="$ld" caffebox-run "$@"
    else
        local mounts="mount --rbind /dev $rootfs/dev && mount --rbind /sys $rootfs/sys"
        mounts+=" && mount -t proc proc $rootfs/proc"
        for b in "${binds[@]}"; do mounts+=" && mount --bind ${b%%:*} $rootfs${b#*:}"; done
        unshare --user --map-root-user --mount --pid --fork sh -c \
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

if [ -z "$cpu_only" ]; then
    step "caffe device_query -gpu 0"
    inside caffe device_query -gpu 0 2>&1 | sed 's/^I[0-9]* [0-9:.]* *[0-9]* [a-z_.]*:[0-9]*\] //'
    step "digits, solver_mode: GPU"
    inside caffe train -solver digits_gpu.prototxt -gpu 0 > "$work/digits_gpu.log" 2>&1 || true
    echo "accuracy $(accuracy "$work/digits_gpu.log"), $(rate "$work/digits_gpu.log") iter/s"
fi
step "digits, solver_mode: CPU (same net, this host's CPU)"
inside caffe train -solver digits_cpu.prototxt > "$work/digits_cpu.log" 2>&1 || true
echo "accuracy $(accuracy "$work/digits_cpu.log"), $(rate "$work/digits_cpu.log") iter/s"

if [ -z "$cpu_only" ]; then
    step "cuDNN against CAFFE convolution"
    inside python3 benchmarks/gpu_conv_check.py --out /workspace || true
    for engine in cudnn caffe; do
        echo "caffe time, engine ${engine^^}:"
        inside caffe time -model "conv_$engine.prototxt" -gpu 0 -iterations 50 2>&1 \
            | grep -E "Average (Forward|Backward|Forward-Backward)" | sed 's/.*\] //' || true
    done
    gpu=(--gpu 0)
else
    inside python3 benchmarks/gpu_conv_check.py --cpu --out /workspace || true
    gpu=()
fi

step "gradient checks of our Python layers (Caffe's ${gpu:+GPU }mode)"
for case in "caffebox_layers.gpu.EuclideanLossGPU --input a=8x16 --input b=8x16" \
            "caffebox_layers.losses.EuclideanLoss --input a=8x16 --input b=8x16" \
            "caffebox_layers.affine.ChannelAffine --input x=2x3x4x4"; do
    # shellcheck disable=SC2086
    inside python3 -m caffebox_layers.testing $case --backend caffe "${gpu[@]}" 2>&1 | tail -1 || true
done
inside python3 -c "import caffebox_layers.gpu as g; print('CuPy in the image:', g.cupy is not None)" \
    2>/dev/null || true

step "Python loss layers against C++ EuclideanLoss"
inside python3 benchmarks/loss_layers.py ${gpu:+--gpu} || true

if [ -z "$cpu_only" ]; then
    step "caffebox_layers.parallel with one GPU"
    inside python3 -m caffebox_layers.parallel --solver digits_gpu.prototxt --gpus 0 \
        > "$work/parallel.log" 2>&1 || true
    tail -3 "$work/parallel.log"
    echo "accuracy $(accuracy "$work/parallel.log")"
fi
