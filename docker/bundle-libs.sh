#!/usr/bin/env bash
# Copy into $PREFIX/lib/deps every shared library the Caffe binaries load that the runtime
# stage's base lacks, and list where each came from in $PREFIX/lib/deps/PACKAGES
# ('file package version' lines).
#
#   bundle-libs RUNTIME_DPKG_STATUS
#
# Why libraries and not packages: a package brings its whole dependency closure, not what
# is loaded. Debian's libopencv_core links libGLX, whose package depends on Mesa's drivers
# and LLVM (170 MB that nothing here ever loads); libgdal32 (through libopencv_imgcodecs)
# depends on gdal-data, proj-data and GDAL's plugins. The set is derived from `ldd` of the
# binaries every build, never a fixed list, so a fork that links more gets more.
# RUNTIME_DPKG_STATUS is /var/lib/dpkg/status of the runtime stage's base: a library
# whose package is installed there is left to it (glibc, libstdc++, numpy's BLAS, CUDA).
set -euo pipefail

PREFIX=${PREFIX:-/opt/caffe}
status=${1:?usage: bundle-libs RUNTIME_DPKG_STATUS}
deps=$PREFIX/lib/deps
if [ ! -d "$PREFIX/bin" ]; then
    echo "caffebox: compiled only (no tools installed): nothing to bundle"
    exit 0
fi
rm -rf "$deps" && mkdir -p "$deps"
installed=$(awk '/^Package:/ {p = $2} /^Status: .* installed$/ {print p}' "$status" | sort -u)

# graphviz's dot for caffe.draw and draw_net.py (pydot runs it), without Debian's package:
# that one's gd plugin pulls in libgd's AV1 and HEIF codecs (libaom, librav1e, SVT-AV1,
# libheif: about 20 MB). The binary and the three plugins a drawing needs (core: the
# formats, dot_layout, pango: cairo's PNG, SVG and PDF) go to $PREFIX/lib/graphviz with
# their config; their libraries are bundled below like Caffe's. $PREFIX/bin/dot is a
# script that says where the plugins are: pydot runs dot with PATH alone in its
# environment, so an image-wide GVBINDIR would not reach it.
bundle_graphviz() {
    local gvc plugins=$PREFIX/lib/graphviz
    gvc=$(readlink -f "$(ldd "$(command -v dot)" | awk '$1 ~ /^libgvc\.so/ {print $3}')")
    rm -rf "$plugins" && mkdir -p "$plugins"
    cp -L "$(command -v dot)" "$plugins/dot"
    for plugin in core dot_layout pango; do
        cp -L "$(dirname "$gvc")/graphviz/libgvplugin_$plugin.so.6" "$plugins/"
    done
    printf '#!/bin/sh\n# graphviz dot with the plugins beside it (docker/bundle-libs.sh)\nGVBINDIR=%s exec %s "$@"\n' \
        "$plugins" "$plugins/dot" > "$PREFIX/bin/dot"
    chmod 755 "$PREFIX/bin/dot"
    "$PREFIX/bin/dot" -c
    echo "digraph { a -> b }" | env -i "$PREFIX/bin/dot" -Tpng > /dev/null
}
bundle_graphviz

binaries=()  # ELF files only: ldd fails on a script (bin/dot), and pipefail with it
for file in "$PREFIX"/bin/* "$PREFIX"/lib/libcaffe*.so "$PREFIX"/python/caffe/_caffe*.so \
        "$PREFIX"/lib/graphviz/dot "$PREFIX"/lib/graphviz/*.so.*; do
    magic=$(head -c 4 "$file" | tr -d '\000')
    if [ "$magic" = $'\177ELF' ]; then binaries+=("$file"); fi
done
loaded() {  # the libraries the binaries load, with $deps searched first (stubs)
    LD_LIBRARY_PATH=$deps ldd "${binaries[@]}" 2>/dev/null \
        | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u
}

# GDAL: Debian's libopencv_imgcodecs links it for decoders Caffe never needs (NITF and DTED
# files, or imread(..., IMREAD_LOAD_GDAL)), and GDAL's closure (libgdal, ICU's data, PROJ,
# GEOS, poppler, spatialite...) is about 120 MB of libraries. Unless the tree's own code
# names GDAL, the image gets a stub libgdal instead, with the functions the loaded libraries
# take from GDAL (derived here every build): GDALAllRegister registers nothing, GDALOpen
# opens nothing (and says why), so OpenCV reads every other format as before; the rest are
# only reached through an opened dataset. A symbol that is no function keeps the real GDAL.
stub_gdal() {
    local gdal soname users defined syms kinds tree=${CAFFE_SOURCE_DIR:-/usr/src/caffe}
    gdal=$(grep -E '/libgdal\.so\.[0-9]+$' <<<"$libs" | head -1 || true)
    [ -n "$gdal" ] || return 0
    soname=$(basename "$gdal")
    if grep -rIqiw gdal --include='*.cpp' --include='*.hpp' --include='*.h' --include='*.cu' \
            --include='*.py' "$tree"/src "$tree"/include "$tree"/tools "$tree"/python 2>/dev/null; then
        echo "caffebox: the tree's code names GDAL: the real $soname stays"
        return 0
    fi
    users=$(while read -r lib; do
        readelf -d "$lib" 2>/dev/null | grep -F "(NEEDED)" | grep -qF "[$soname]" && echo "$lib" || true
    done <<<"$libs")
    [ -n "$users" ] || return 0
    defined=$(nm -D --defined-only "$gdal" | sed 's/@.*//')  # 'address kind name' lines
    # shellcheck disable=SC2086
    syms=$(nm -D --undefined-only $users | awk '{print $NF}' | sed 's/@.*//' | sort -u \
        | comm -12 - <(awk '{print $NF}' <<<"$defined" | sort -u))
    kinds=$(awk 'NR == FNR {want[$1]; next} ($NF in want) {print $(NF - 1)}' \
        <(echo "$syms") - <<<"$defined" | sort -u | tr -d '\n')
    if [ -z "$syms" ] || [ -n "$(tr -d 'TW' <<<"$kinds")" ]; then
        echo "caffebox: $soname gives $(echo "$syms" | wc -w) symbols of kinds '$kinds': the real one stays"
        return 0
    fi
    for sym in $syms; do
        case "$sym" in
        GDALOpen*) echo "OPENS($sym)" ;;
        *) echo "NOTHING($sym)" ;;
        esac
    done > /tmp/caffebox/gdal-stub-symbols.h
    gcc -shared -fPIC -O2 -Wl,-soname,"$soname" -Wl,--no-undefined -DSONAME="\"$soname\"" \
        -I/tmp/caffebox -o "$deps/$soname" "$(dirname "$0")/gdal-stub.c"
    local pkg
    pkg=$(dpkg -S "$(readlink -f "$gdal")" 2>/dev/null | head -1 | cut -d: -f1 || true)
    echo "$soname caffebox-stub-of-${pkg:-libgdal} $(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null || echo unknown)" \
        >> "$deps/PACKAGES.tmp"
    echo "caffebox: $soname is a stub of $(echo "$syms" | wc -w) functions (used by: $(echo $users | xargs -n1 basename | tr '\n' ' '))"
}
libs=$(loaded)
: > "$deps/PACKAGES.tmp"
stub_gdal
if [ -s "$deps/PACKAGES.tmp" ]; then libs=$(loaded); fi  # a stub resolves now
grep -v "^$PREFIX/" <<<"$libs" > /tmp/caffebox-libs

# Each library's owning package, in one pass over dpkg's file lists: every name dpkg may
# know it by (usrmerge: /lib and /usr/lib are one folder, but dpkg lists each file under
# one name only) as 'library name' pairs, joined with the 'package name' lines found.
while read -r lib; do
    real=$(readlink -f "$lib")
    for name in "$lib" "$real" "/usr$lib" "/usr$real" "${lib#/usr}" "${real#/usr}"; do
        echo "$lib $name"
    done
done < /tmp/caffebox-libs > /tmp/caffebox-names
# shellcheck disable=SC2062  # the patterns come from stdin (-f -); the glob names files
cut -d' ' -f2 /tmp/caffebox-names | sort -u | grep -Fx -f - /var/lib/dpkg/info/*.list \
    | awk -F '[.]list:' '{pkg = $1; sub(".*/", "", pkg); sub(":.*", "", pkg); print pkg, $2}' \
    > /tmp/caffebox-owners || true
awk 'NR == FNR {owner[$2] = $1; next} !($1 in found) && ($2 in owner) {found[$1] = owner[$2]}
    END {for (lib in found) print lib, found[lib]}' /tmp/caffebox-owners /tmp/caffebox-names \
    > /tmp/caffebox-lib-owners

while read -r lib; do
    pkg=$(awk -v lib="$lib" '$1 == lib {print $2}' /tmp/caffebox-lib-owners)
    if [ -z "$pkg" ]; then
        echo "caffebox: $lib is from no package: the runtime base must have it"
        continue
    fi
    grep -qxF "$pkg" <<<"$installed" && continue
    # Under the name the binaries ask for (the soname), with the real file's content.
    cp -L "$lib" "$deps/$(basename "$lib")"
    echo "$(basename "$lib") $pkg $(dpkg-query -W -f '${Version}' "$pkg")" >> "$deps/PACKAGES.tmp"
done < /tmp/caffebox-libs
sort -u "$deps/PACKAGES.tmp" > "$deps/PACKAGES" && rm "$deps/PACKAGES.tmp"
printf '\n==> caffebox: bundled %s libraries (%s) from %s packages not in the runtime base\n' \
    "$(wc -l < "$deps/PACKAGES")" "$(du -sh "$deps" | cut -f1)" "$(cut -d' ' -f2 "$deps/PACKAGES" | sort -u | wc -l)"

# One OpenBLAS. scipy's wheel carries its own (older scipy: libopenblas, the same symbols
# as the one Caffe loads: a link to it does). scipy 1.13+ carries libscipy_openblas (21 MB
# and a libgfortran of its own), every symbol prefixed scipy_: it becomes a shim of one jump
# per symbol scipy's modules take to the same name unprefixed in the OpenBLAS Caffe and
# numpy load (the same LP64 interface). Written each build from the symbols used; a symbol
# the system OpenBLAS lacks or that is no function, or an architecture without a jump here,
# keeps scipy's copy.
shim_scipy_openblas() {
    local own=$1 blas=$2 dir used syms jump kinds
    dir=$(dirname "$own")
    case "$(uname -m)" in
    x86_64) jump='jmp %s@PLT' ;;
    aarch64) jump='b %s' ;;
    *) echo "caffebox: no shim written for $(uname -m): $(basename "$own") stays"; return 0 ;;
    esac
    used=$(find "$PREFIX/pydeps" -name '*.so*' -type f ! -path "$own" -exec nm -D --undefined-only {} + 2>/dev/null \
        | awk '{print $NF}' | sed 's/@.*//' | sort -u)
    syms=$(nm -D --defined-only "$own" | awk '{print $NF}' | sort -u | comm -12 - <(echo "$used"))
    kinds=$(nm -D --defined-only "$own" | awk 'NR == FNR {want[$1]; next} ($NF in want) {print $(NF - 1)}' \
        <(echo "$syms") - | sort -u | tr -d '\n')
    if [ -z "$syms" ] || [ -n "$(tr -d 'TW' <<<"$kinds")" ] \
        || grep -qv '^scipy_' <<<"$syms" \
        || [ -n "$(sed 's/^scipy_//' <<<"$syms" | comm -23 - <(nm -D --defined-only "$blas" \
                | awk '$(NF - 1) ~ /[TW]/ {print $NF}' | sort -u))" ]; then
        echo "caffebox: $(basename "$own")'s $(wc -w <<<"$syms") symbols are not all scipy_ functions of $blas: it stays"
        return 0
    fi
    {
        echo '.text'
        for sym in $syms; do
            printf '.globl %s\n.type %s, @function\n%s:\n\t' "$sym" "$sym" "$sym"
            # shellcheck disable=SC2059  # the jump is the format
            printf "$jump\n" "${sym#scipy_}"
        done
        echo '.section .note.GNU-stack,"",@progbits'
    } > /tmp/caffebox/scipy-openblas-shim.S
    gcc -shared -nostdlib -Wl,-soname,"$(basename "$own")" -Wl,--no-undefined \
        -o "$own" /tmp/caffebox/scipy-openblas-shim.S "$blas"
    # What scipy's copy alone needed (its libgfortran and libquadmath) goes with it: a file
    # of the folder no other file names as NEEDED, until none is left (a list, not grep -q
    # in the pipe: with pipefail, its early exit would fail the pipe and remove the file).
    local gone=1 lib needed
    while [ "$gone" = 1 ]; do
        gone=0
        for lib in "$dir"/*.so*; do
            [ -f "$lib" ] || continue
            needed=$(find "$PREFIX/pydeps" -name '*.so*' -type f ! -path "$lib" \
                -exec readelf -d {} + 2>/dev/null | grep -F "(NEEDED)" || true)
            if ! grep -qF "[$(basename "$lib")]" <<<"$needed"; then
                rm "$lib" && gone=1
            fi
        done
    done
    echo "caffebox: $(basename "$own") is a shim of $(wc -w <<<"$syms") functions to $blas"
}
blas=$(grep '/libopenblas\.so\.0$' /tmp/caffebox-libs || true)
if [ -n "$blas" ]; then
    [ -f "$deps/libopenblas.so.0" ] && blas=$deps/libopenblas.so.0
    for own in "$PREFIX"/pydeps/*.libs/libopenblas*.so*; do
        [ -f "$own" ] || continue
        echo "caffebox: $(basename "$own") -> $blas"
        ln -sf "$blas" "$own"
    done
    for own in "$PREFIX"/pydeps/*.libs/libscipy_openblas*.so; do
        if [ -f "$own" ]; then shim_scipy_openblas "$own" "$blas"; fi
    done
fi
