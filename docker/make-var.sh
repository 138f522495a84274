#!/usr/bin/env bash
# Print one variable of the Caffe tree's Makefile as the Makefile sees it (after
# Makefile.config): forks rename the build folder (BUILD_DIR = temp, .build_release, ...)
# and link their own libraries.
#
#   make-var NAME   (run in the tree)
set -euo pipefail
printf 'caffebox-print-%%:\n\t@echo $($*)\n' > /tmp/caffebox-print.mk
make -s --no-print-directory -f Makefile -f /tmp/caffebox-print.mk "caffebox-print-${1:?usage: make-var NAME}"
