#!/bin/sh
# Add Debian's contrib and non-free components (where CUDA's packages are) for this
# image's release, from the mirror its own apt sources name (deb.debian.org if none).
#
#   debian-non-free
set -eu
. /etc/os-release
mirror=$(grep -rhoE 'https?://[^ ]+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d \
    2>/dev/null | grep -v security | head -1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
printf 'deb %s %s contrib non-free non-free-firmware\n' "${mirror%/}" "$VERSION_CODENAME" \
    > /etc/apt/sources.list.d/caffebox-non-free.list
