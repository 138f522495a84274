#!/usr/bin/env bash
# Fix a Caffe source tree for today's toolchain, by pattern, so the fixes hold on forks.
#
#   fix-caffe-source TREE [CUDA_DIR]
#
# Each fix looks for the old call in src/, include/, tools/ and python/ and rewrites only
# what it finds, printing one line per file. Run by prepare-caffe before make.
set -euo pipefail

tree=${1:?usage: fix-caffe-source TREE [CUDA_DIR]}
cuda_dir=${2:-}
here=$(dirname "$(readlink -f "$0")")
cd "$tree"

files_matching() {
    grep -rlE "$1" src include tools python 2>/dev/null || true
}

# protobuf >= 3.6: CodedInputStream::SetTotalBytesLimit takes one argument.
files_matching 'SetTotalBytesLimit\([^,()]+,[^()]+\)' | while read -r f; do
    echo "caffebox fix (protobuf): one-argument SetTotalBytesLimit in $f"
    sed -i -E 's/SetTotalBytesLimit\(([^,()]+),[^()]+\)/SetTotalBytesLimit(\1)/g' "$f"
done

# TSN's Caffe (yjxiong/caffe, 2017) keeps the Python thread state in a member its CPU_ONLY
# constructor never sets: GetPythonLayer reads garbage, skips Py_Initialize and dies in
# PyGILState_Ensure (SIGSEGV, seen on Debian 13). A default member initializer sets it in
# every constructor.
files_matching 'PyThreadState\* *py_tstate_;' | while read -r f; do
    echo "caffebox fix (Python layer): py_tstate_ starts as NULL in every constructor in $f"
    sed -i -E 's/(PyThreadState\* *py_tstate_);/\1 = NULL;/' "$f"
done

# Python 3: BVLC's NCCL.new_uid() returns PyBytes_FromString(uid.c_str()), which stops at
# the uid's first zero byte (its socket address has several): every rank then got a uid
# naming 0.0.0.0:0 and NCCL's init failed after 60 s, "remote process exited" (an H100).
files_matching 'PyBytes_FromString\(uid\.c_str\(\)\)' | while read -r f; do
    echo "caffebox fix (NCCL): NCCL.new_uid returns the whole uid in $f"
    sed -i -E 's/PyBytes_FromString\(uid\.c_str\(\)\)/PyBytes_FromStringAndSize(uid.data(), uid.size())/g' "$f"
done

# (OpenCV 4's removed C constants are handled in Makefile.config by force-including its
#  legacy headers, and cuDNN 8/9's removed algorithm queries by caffebox/cudnn_compat.h.)

# CUDA 13 removed cudaDeviceProp fields that Caffe's device_query prints. Where this CUDA's
# struct lacks them, read each through cudaDeviceGetAttribute for the current device (the
# one device_query has just selected) instead.
# (Debian's and Ubuntu's CUDA packages keep the headers in /usr/include.)
types_h=""
if [ -n "$cuda_dir" ]; then
    for cand in "$cuda_dir/include/driver_types.h" /usr/include/driver_types.h; do
        if [ -f "$cand" ]; then types_h=$cand; break; fi
    done
fi
if [ -n "$types_h" ]; then
    for pair in clockRate:cudaDevAttrClockRate deviceOverlap:cudaDevAttrGpuOverlap \
            kernelExecTimeoutEnabled:cudaDevAttrKernelExecTimeout \
            memoryClockRate:cudaDevAttrMemoryClockRate computeMode:cudaDevAttrComputeMode; do
        field=${pair%%:*} attr=${pair#*:}
        grep -qE "^\s*int\s+$field;" "$types_h" && continue
        files_matching "[A-Za-z_][A-Za-z0-9_]*\.$field\b" | while read -r f; do
            echo "caffebox fix (CUDA 13): cudaDeviceProp.$field read by cudaDeviceGetAttribute in $f"
            sed -i -E "s/\b[A-Za-z_][A-Za-z0-9_]*\.$field\b/({ int caffebox_d = 0, caffebox_v = 0; cudaGetDevice(\&caffebox_d); cudaDeviceGetAttribute(\&caffebox_v, $attr, caffebox_d); caffebox_v; })/g" "$f"
        done
    done
fi

# What needs a call's arguments or a module's names (mixed float/double std::max, pycaffe
# on today's numpy and scikit-image, Python 2 scripts): the Python half, beside this file.
python3 "$here/fix-caffe-source.py" .
