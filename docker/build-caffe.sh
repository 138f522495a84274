#!/usr/bin/env bash
# Build Caffe inside the image's build stage and install a runtime tree at $PREFIX.
#
# Inputs (from the Dockerfile):
#   /tmp/caffebox/caffe-src/   a caffe.tar.gz (or an unpacked tree) sent by the host,
#                              or empty: then git clone $CAFFE_REPO at $CAFFE_REF
#   /tmp/caffebox/Makefile.config   our rendered config
# Output: $PREFIX/{bin,lib,python}, $PREFIX/Makefile.config, $PREFIX/build-info.env,
#         $PREFIX/runtime-packages.txt (distribution packages the binaries link against)
set -euo pipefail

PREFIX=${PREFIX:-/opt/caffe}
SRC=/usr/src/caffe
IN=/tmp/caffebox
JOBS=${JOBS:-$(nproc)}

log() { printf '\n==> caffebox: %s\n' "$*"; }

# ---- 1. the source --------------------------------------------------------------
rm -rf "$SRC" && mkdir -p "$SRC"
if [ -f "$IN/caffe-src/caffe.tar.gz" ]; then
    log "unpacking the Caffe source sent by the host"
    tar -xzf "$IN/caffe-src/caffe.tar.gz" -C "$SRC"
    # A release tarball wraps everything in one top-level folder: step into it.
    while [ ! -f "$SRC/Makefile" ] && [ "$(find "$SRC" -mindepth 1 -maxdepth 1 | wc -l)" = 1 ]; do
        inner=$(find "$SRC" -mindepth 1 -maxdepth 1)
        mv "$inner" "$SRC.inner" && rmdir "$SRC" && mv "$SRC.inner" "$SRC"
    done
else
    if [ -s "$IN/ca-certificates.crt" ]; then export GIT_SSL_CAINFO="$IN/ca-certificates.crt"; fi
    log "cloning $CAFFE_REPO at $CAFFE_REF"
    git clone --quiet "$CAFFE_REPO" "$SRC"
    git -C "$SRC" checkout --quiet "$CAFFE_REF"
fi
[ -f "$SRC/Makefile" ] && [ -d "$SRC/python/caffe" ] || {
    echo "caffebox: the Caffe source has no Makefile or python/caffe folder: is it a Caffe tree?" >&2
    exit 2
}
cd "$SRC"

# ---- 2. fixes for today's toolchain (pattern-based, so they hold on forks) ----
cp "$IN/Makefile.config" Makefile.config
# The tree's own settings as its Makefile sees them: forks rename the build folder
# (BUILD_DIR = temp, .build_release, ...), and the fixes need CUDA_DIR.
printf 'caffebox-print-%%:\n\t@echo $($*)\n' > /tmp/print.mk
make_var() { make -s --no-print-directory -f Makefile -f /tmp/print.mk "caffebox-print-$1"; }
BUILD=$(make_var BUILD_DIR)
CUDA_DIR=$(make_var CUDA_DIR)
fix-caffe-source "$SRC" "$CUDA_DIR"

# ---- 3. build ---------------------------------------------------------------------
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

# ---- 4. install the runtime tree --------------------------------------------------
rm -rf "$PREFIX" && mkdir -p "$PREFIX/bin" "$PREFIX/lib" "$PREFIX/python"
for bin in "$BUILD"/tools/*.bin; do
    install -m 755 "$bin" "$PREFIX/bin/$(basename "$bin" .bin)"
done
cp -a "$BUILD"/lib/libcaffe*.so* "$PREFIX/lib/"
cp -rL python/caffe "$PREFIX/python/caffe"
find "$PREFIX/python" -name '__pycache__' -prune -exec rm -rf {} +
cp Makefile.config "$PREFIX/Makefile.config"
echo "$PREFIX/lib" > /etc/ld.so.conf.d/caffe.conf && ldconfig

# ---- 5. what the runtime stage must install ---------------------------------------
# Map every shared library the binaries load to the package that ships it, so the
# runtime stage installs exactly those: no hard-coded names of one distribution.
to_pkgs() {
    local lib real
    while read -r lib; do
        real=$(readlink -f "$lib")
        for cand in "$lib" "$real" "/usr$lib" "/usr$real" "${lib#/usr}" "${real#/usr}"; do
            if out=$(dpkg -S "$cand" 2>/dev/null); then echo "${out%%: *}"; break; fi
        done
    done
}
{ ldd "$PREFIX"/bin/* "$PREFIX"/lib/libcaffe*.so "$PREFIX"/python/caffe/_caffe*.so 2>/dev/null \
    | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | grep -v "^$PREFIX/" | sort -u | to_pkgs; } \
    | tr ',' '\n' | sed 's/^ *//' | grep -v -- '-dev\(:\|$\)' | sort -u > "$PREFIX/runtime-packages.txt"
log "runtime packages: $(tr '\n' ' ' < "$PREFIX/runtime-packages.txt")"

# ---- 6. provenance ---------------------------------------------------------------------
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
