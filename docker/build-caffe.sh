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
if [ "${COMPILE_ONLY:-}" = 1 ]; then
    # Every object, libcaffe and pycaffe, but no tools: for trees whose tools cannot link
    # in this variant (a fork missing GPU code for some layers) yet whose code must compile.
    log "compiling only (lib pycaffe) with $JOBS jobs"
    make -j"$JOBS" lib pycaffe
    mkdir -p "$PREFIX" && cp Makefile.config "$PREFIX/Makefile.config"
    echo "CAFFE_BUILD_DIR=$SRC/$BUILD" > "$PREFIX/build-info.env"
    log "compiled: $(find "$BUILD" -name '*.o' | wc -l) objects in $SRC/$BUILD"
    exit 0
fi
log "building with $JOBS jobs"
make -j"$JOBS" all pycaffe
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
