#!/usr/bin/env bash
# Build Caffe inside the image's build stage and install a runtime tree at $PREFIX.
#
# Input: /usr/src/caffe as prepare-caffe left it (source, Makefile.config, fixes).
# Output: $PREFIX/{bin,lib,python}, $PREFIX/Makefile.config, $PREFIX/build-info.env.
set -euo pipefail

PREFIX=${PREFIX:-/opt/caffe}
SRC=/usr/src/caffe
JOBS=${JOBS:-$(nproc)}

log() { printf '\n==> caffebox: %s\n' "$*"; }

cd "$SRC"
BUILD=$(make-var BUILD_DIR)
CUDA_DIR=$(make-var CUDA_DIR)

# ---- 1. build ---------------------------------------------------------------------
# The tree's Makefile, not BVLC master's: a target it lacks is said and worked around.
has_target() { make -n "$1" >/dev/null 2>&1; }

# A layer whose header declares Forward_gpu/Backward_gpu that no file of the tree defines
# (forks add CPU-only layers and copy a header that declares both: the PyPI tree's ReLU6,
# Upsample, PixelShuffle...) leaves libcaffe with undefined symbols, and every tool fails
# to link in a GPU build. Caffe's own Layer runs the CPU pass when a layer has no GPU one;
# this writes those definitions for exactly the symbols libcaffe lacks (read from the
# linked library, not guessed from headers), then links again.
CPU_FALLBACKS=src/caffe/layers/caffebox_cpu_fallbacks.cpp
write_cpu_fallbacks() {
    local lib missing cls header
    lib=$(find "$BUILD/lib" -name 'libcaffe*.so*' -type f 2>/dev/null | head -1)
    [ -n "$lib" ] || return 0
    missing=$(nm -DC --undefined-only "$lib" | sed -n \
        's/.* caffe::\([A-Za-z0-9_]*\)<\(float\|double\)>::\(Forward_gpu\|Backward_gpu\)(.*/\1 \2 \3/p' \
        | sort -u)
    [ -n "$missing" ] || return 0
    {
        echo "// Written by caffebox's build (docker/build-caffe.sh): GPU passes these layers"
        echo "// declare and the tree never defines run the layer's CPU pass, as Caffe's Layer does."
        for cls in $(cut -d' ' -f1 <<<"$missing" | sort -u); do
            header=$(grep -rlE "class +$cls\b" include/ | head -1)
            [ -n "$header" ] && echo "#include \"${header#include/}\""
        done
        echo "namespace caffe {"
        while read -r cls method; do
            if [ "$method" = Forward_gpu ]; then
                echo "template <typename Dtype> void $cls<Dtype>::Forward_gpu("
                echo "    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {"
                echo "  this->Forward_cpu(bottom, top);"
            else
                echo "template <typename Dtype> void $cls<Dtype>::Backward_gpu("
                echo "    const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,"
                echo "    const vector<Blob<Dtype>*>& bottom) {"
                echo "  this->Backward_cpu(top, propagate_down, bottom);"
            fi
            echo "}"
        done < <(awk '{print $1, $3}' <<<"$missing" | sort -u)
        while read -r cls dtype method; do
            if [ "$method" = Forward_gpu ]; then
                echo "template void $cls<$dtype>::Forward_gpu(const vector<Blob<$dtype>*>&, const vector<Blob<$dtype>*>&);"
            else
                echo "template void $cls<$dtype>::Backward_gpu(const vector<Blob<$dtype>*>&, const vector<bool>&, const vector<Blob<$dtype>*>&);"
            fi
        done <<<"$missing"
        echo "}  // namespace caffe"
    } > "$CPU_FALLBACKS"
    log "caffebox adapts: $(cut -d' ' -f1 <<<"$missing" | sort -u | tr '\n' ' ')declare GPU passes this tree never defines: they run their CPU pass in the GPU build, as Caffe's Layer does ($CPU_FALLBACKS)"
}
gpu_build() { [ -n "$CUDA_DIR" ] && [ "$(make-var CPU_ONLY)" != 1 ]; }
if [ "${COMPILE_ONLY:-}" = 1 ]; then
    # Every object, libcaffe and pycaffe, but no tools: for trees whose tools cannot link
    # in this variant (a fork missing GPU code for some layers) yet whose code must compile.
    targets="lib pycaffe"
    if ! has_target lib; then
        log "caffebox adapts: this Makefile has no 'lib' target: 'pycaffe' (it links libcaffe)"
        targets=pycaffe
    fi
    log "compiling only ($targets) with $JOBS jobs"
    # shellcheck disable=SC2086  # two targets, split on purpose
    make -j"$JOBS" $targets
    if gpu_build && [ "$targets" != pycaffe ]; then
        write_cpu_fallbacks
        # shellcheck disable=SC2086
        if [ -f "$CPU_FALLBACKS" ]; then make -j"$JOBS" $targets; fi
    fi
    mkdir -p "$PREFIX" && cp Makefile.config "$PREFIX/Makefile.config"
    cuda_version=""
    if [ -n "$CUDA_DIR" ] && [ -x "$CUDA_DIR/bin/nvcc" ]; then  # CuPy for it, as a full build
        cuda_version=$("$CUDA_DIR/bin/nvcc" --version | sed -n 's/.*release \([0-9][0-9.]*\),.*/\1/p')
    fi
    printf 'CAFFE_BUILD_DIR=%s\nCUDA_VERSION=%s\n' "$SRC/$BUILD" "$cuda_version" \
        > "$PREFIX/build-info.env"
    log "compiled: $(find "$BUILD" -name '*.o' | wc -l) objects in $SRC/$BUILD"
    exit 0
fi
log "building with $JOBS jobs"
# prepare-caffe unpacked the OpenCV modules' files, not their packages (their list here).
opencv=$(cat /tmp/caffebox/opencv-packages 2>/dev/null || true)
install_opencv() {
    log "installing the OpenCV packages $*"
    apt-fresh install -y -qq --no-install-recommends "$@" >/dev/null
}
if [ -n "$opencv" ] && ! has_target lib; then
    log "caffebox adapts: this Makefile has no 'lib' target (a tree older than BVLC's of 2015): all of OpenCV's packages before the one 'make all'"
    install_opencv $opencv && opencv=""
fi
if [ -n "$opencv" ]; then
    # libcaffe first: the modules it calls get their packages before anything links
    # against it (an executable's link needs every library its libraries load).
    make -j"$JOBS" lib || true
    called=$(readelf -d "$BUILD"/lib/libcaffe*.so 2>/dev/null \
        | sed -n 's/.*\[libopencv_\([a-z0-9_]*\)\.so.*/libopencv-\1-dev/p' | tr _ - | sort -u)
    if [ -n "$called" ]; then install_opencv $called; fi
    log "building the rest with $JOBS jobs"
fi
if gpu_build && has_target lib; then
    if [ -z "$opencv" ] || [ ! -d "$BUILD/lib" ]; then make -j"$JOBS" lib; fi
    write_cpu_fallbacks
fi
if ! make -j"$JOBS" all pycaffe; then
    [ -n "$opencv" ] || exit 1
    log "a link needs more of OpenCV than libcaffe calls"
    install_opencv $opencv && opencv=""
    log "linking again"
    make -j"$JOBS" all pycaffe
fi
# A shared object links even where its libraries' own libraries are missing: then all.
if [ -n "$opencv" ] && ldd "$BUILD"/tools/*.bin "$BUILD"/lib/libcaffe*.so \
        python/caffe/_caffe*.so 2>/dev/null | grep 'not found' | grep -qv libcaffe; then
    install_opencv $opencv
fi
log "build folder: $BUILD"

# ---- 2. install the runtime tree --------------------------------------------------
rm -rf "$PREFIX" && mkdir -p "$PREFIX/bin" "$PREFIX/lib" "$PREFIX/python"
for bin in "$BUILD"/tools/*.bin; do
    install -m 755 "$bin" "$PREFIX/bin/$(basename "$bin" .bin)"
done
cp -a "$BUILD"/lib/libcaffe*.so* "$PREFIX/lib/"
cp -rL python/caffe "$PREFIX/python/caffe"
find "$PREFIX/python" -name '__pycache__' -prune -exec rm -rf {} +
cp Makefile.config "$PREFIX/Makefile.config"
echo "$PREFIX/lib" > /etc/ld.so.conf.d/caffe.conf && ldconfig
# The tree's own Python scripts (python/classify.py, draw_net.py, train.py, tools/extra's
# parse_log.py, ...) on PATH as Caffe's docs call them, run by python3 whatever their #!
# line says (Debian has no 'python').
mkdir -p "$PREFIX/scripts"
for script in python/*.py tools/extra/*.py tools/extra/*.py.example; do
    [ -f "$script" ] || continue
    name=$(basename "$script" .example)
    { echo '#!/usr/bin/env python3'; sed '1{/^#!/d}' "$script"; } > "$PREFIX/scripts/$name"
    chmod 755 "$PREFIX/scripts/$name"
done
log "scripts on PATH: $(ls "$PREFIX/scripts" | tr '\n' ' ')"

# ---- 3. provenance ---------------------------------------------------------------------
commit=${CAFFE_COMMIT:-$(git -c safe.directory="*" -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown)}
numpy_version=$(python3 -c 'import numpy; print(numpy.__version__)')
python_version=$(python3 -c 'import platform; print(platform.python_version())')
cuda_version=""
if [ -n "$CUDA_DIR" ] && [ -x "$CUDA_DIR/bin/nvcc" ]; then
    cuda_version=$("$CUDA_DIR/bin/nvcc" --version | sed -n 's/.*release \([0-9][0-9.]*\),.*/\1/p')
fi
cat > "$PREFIX/build-info.env" <<INFO
CAFFE_COMMIT=$commit
BUILD_NUMPY_VERSION=$numpy_version
BUILD_PYTHON_VERSION=$python_version
CUDA_VERSION=$cuda_version
INFO
log "done: $(cat "$PREFIX/build-info.env" | tr '\n' ' ')"
