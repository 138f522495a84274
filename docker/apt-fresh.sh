#!/usr/bin/env bash
# apt-get with the package lists the build stage's toolchain step left; where that fails
# (the archive moved on since), fresh lists and once more, its errors shown then.
#
#   apt-fresh install -y -qq --no-install-recommends PKG...
#   apt-fresh download -qq PKG...
set -euo pipefail
apt-get "$@" 2>/dev/null || { apt-get update -qq && apt-get "$@"; }
