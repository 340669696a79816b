#!/usr/bin/env bash
# The poll(2)/WSAPoll body's poll set under a model-based check
# (ci/poll_set_check.c): random interest changes, holds, expiries and waits,
# built with the poll(2) primitives and run with ASan and UBSan. The hold path
# is what WSAPoll's repeated POLLHUP triggers on Windows; Linux never produces
# it, so without this check only two tests under wine would reach it.
#
# Usage: ci/check-poll-set.sh   (needs a C compiler: $CC, default cc)
set -euo pipefail
cd "$(dirname "$0")/.."
CC=${CC:-cc}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rio-poll-set.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
"$CC" -std=gnu11 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined \
  -fno-sanitize-recover=all -DRIO_FORCE_POLL -Irio_core ci/poll_set_check.c -o "$WORK/check"
"$WORK/check"
