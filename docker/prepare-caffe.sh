#!/usr/bin/env bash
# Unpack (or clone) the Caffe source, fix it for today's toolchain, and unpack the files of
# the OpenCV -dev modules its Makefile links and its code includes (build-caffe installs
# the packages the link needs): the build stage's toolchain step has no OpenCV, since all
# of libopencv-dev (VTK, Qt, GDAL -dev trees, 60 MB more to fetch) is more than BVLC needs
# (core, imgproc, imgcodecs, highgui). A tree that includes opencv2/opencv.hpp, which
# includes every module, gets all of libopencv-dev.
#
# Inputs: /tmp/caffebox/caffe-src/ (a caffe.tar.gz or an unpacked tree sent by the host, or
# empty: then git clone $CAFFE_REPO at $CAFFE_REF), /tmp/caffebox/Makefile.config.
# Output: /usr/src/caffe, ready for build-caffe.
set -euo pipefail

SRC=/usr/src/caffe
IN=/tmp/caffebox

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
    # git only for a clone: a tree or tarball from the host needs none (9 MB less to fetch).
    command -v git >/dev/null || {
        apt-fresh install -y -qq --no-install-recommends git >/dev/null
    }
    log "cloning $CAFFE_REPO at $CAFFE_REF"
    git clone --quiet "$CAFFE_REPO" "$SRC"
    git -C "$SRC" checkout --quiet "$CAFFE_REF"
fi
[ -f "$SRC/Makefile" ] && [ -d "$SRC/python/caffe" ] || {
    echo "caffebox: the Caffe source has no Makefile or python/caffe folder: is it a Caffe tree?" >&2
    exit 2
}
cd "$SRC"
cp "$IN/Makefile.config" Makefile.config

# ---- 2. the OpenCV modules this tree links and includes ------------------------------
linked=$(make-var LIBRARIES | tr ' ' '\n' | sed -n 's/^opencv_//p')
included=$(grep -rhoE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]opencv2/[a-z0-9_]+' \
        src include tools examples python 2>/dev/null | sed 's|.*opencv2/||' || true)
modules=$(printf '%s\n' $linked $included | sort -u)
if printf '%s\n' $modules | grep -qx opencv; then
    # opencv2/opencv.hpp includes every module's header: all of them, as libopencv-dev.
    pkgs=libopencv-dev
else
    pkgs=$(for m in $modules; do
        p="libopencv-${m//_/-}-dev"
        apt-cache show "$p" >/dev/null 2>&1 && printf '%s ' "$p"
    done)
fi
if [ -n "$modules" ]; then
    # Their headers and libraries, unpacked without what the packages depend on: enough to
    # compile, and to link, since the link drops a library the code never calls
    # (-Wl,--as-needed). build-caffe installs the packages of the modules libcaffe calls
    # before anything links against it, and all of them if anything is left unresolved.
    # BVLC links highgui and never calls it, and its package brings Qt, Mesa and LLVM, and
    # videoio's ffmpeg and GStreamer: 152 packages that take 12 s to unpack on 2 cores.
    own=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
            --no-breaks --no-replaces --no-enhances $pkgs 2>/dev/null \
        | grep -E '^libopencv' | sort -u)
    log "the tree links or includes OpenCV's $(echo $modules): unpacking $(echo $own)"
    mkdir -p "$IN/opencv-debs" && cd "$IN/opencv-debs"
    apt-fresh download -qq $own
    for deb in *.deb; do dpkg-deb -x "$deb" /; done
    cd "$SRC" && rm -rf "$IN/opencv-debs" && ldconfig
    echo $pkgs > "$IN/opencv-packages"
fi

# ---- 3. fixes for today's toolchain (pattern-based, so they hold on forks) ----
fix-caffe-source "$SRC" "$(make-var CUDA_DIR)"
