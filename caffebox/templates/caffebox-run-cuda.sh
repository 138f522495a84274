# shellcheck shell=sh
# This export has no CUDA libraries: take the host's (bind them in).
if [ -z "${CAFFEBOX_QUIET:-}" ]; then say() { echo "caffebox-run: $*" >&2; }; else say() { :; }; fi
has_cuda() { for f in @LIBS@; do [ -e "$f" ] && return 0; done; return 1; }
taken=; given=
IFS_SAVED=$IFS; IFS=:; for d in ${LD_LIBRARY_PATH:-}; do
    if has_cuda "$d"; then taken="$taken:$d:"; given="$given${given:+:}$d"; fi
done; IFS=$IFS_SAVED
if [ -n "$given" ]; then say "CUDA libraries from LD_LIBRARY_PATH: $given"; fi
take() {  # $1: what to call them; the rest: folders
    what=$1; shift; new=
    for d in "$@"; do
        case "$taken" in *":$d:"*) continue ;; esac
        if [ -d "$d" ] && has_cuda "$d"; then
            taken="$taken:$d:"; new="$new${new:+:}$d"
        fi
    done
    if [ -n "$new" ]; then
        export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$new"
        say "CUDA libraries from $what$new"
    fi
}
take '' @SEARCH@
take "NVIDIA's pip wheels: " @WHEEL_GLOBS@
cudart=; IFS=:; for d in $LD_LIBRARY_PATH; do
    if ls "$d"/libcudart.so* >/dev/null 2>&1; then cudart=$d; fi
done; IFS=$IFS_SAVED
if [ -z "$cudart" ]; then
    echo "caffebox-run: this export has no CUDA libraries (--without-cuda-libs) and none were found: not in LD_LIBRARY_PATH, /usr/local/cuda, or NVIDIA's pip wheels (bind e.g. site-packages/nvidia at /opt/nvidia). Bind the host's CUDA 'lib' folder into the container and set LD_LIBRARY_PATH to it." >&2
    exit 127
fi
