#!/usr/bin/env bash
# Compile the engine's Windows OS boundary without Windows: the wsapoll
# reactor backend (rio_core/rio_poll.h) and the Winsock recv/send with their
# error mapping (rio_core/rio_sock.h, the Python-free part of rio_net.h),
# with mingw-w64, warnings as errors.
#
# A small C program calls every function of those headers' Windows branches
# and is linked against ws2_32, so a missing declaration, a wrong type or an
# unresolved Winsock import fails here. It is compiled twice: with the
# headers first, and after <windows.h> as rio.h includes it, with
# WIN32_LEAN_AND_MEAN as setup.py defines it on Windows.
#
# This proves that the code compiles and links, not that it works: nothing
# runs Windows here. If wine is found (on PATH, or $WINE) the program is also
# run under it, which exercises the calls against wine's Winsock, not
# Microsoft's: a smoke test of the logic, not of WSAPoll's real semantics.
#
# Usage: ci/check-windows-build.sh   (needs x86_64-w64-mingw32-gcc, e.g. the
# Debian/Ubuntu package gcc-mingw-w64-x86-64; prints "skipped" and exits 0
# without it)
set -euo pipefail
cd "$(dirname "$0")/.."
CC=${MINGW_CC:-x86_64-w64-mingw32-gcc}

if ! command -v "$CC" >/dev/null 2>&1; then
  echo "check-windows-build: skipped ($CC not found; install gcc-mingw-w64-x86-64)"
  exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rio-windows-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

cat > "$WORK/check.c" <<'C'
#if defined(RIO_WINDOWS_H_FIRST)
#include <windows.h>
#endif
#include "rio_poll.h"
#include "rio_sock.h"
#include <stdio.h>

#if !defined(_WIN32)
#error "not a Windows compiler"
#endif

static int failures = 0;
#define CHECK(cond) \
    do { if (!(cond)) { printf("FAIL line %d: %s (errno %d)\n", __LINE__, #cond, errno); failures++; } } while (0)

int main(void) {
    static const char backend[] = RIO_BACKEND;
    rio_poller *p;
    rio_event events[8];
    int fds[2] = {-1, -1}, n, i, found = 0, marker = 0;
    char buf[16];

    CHECK(strcmp(backend, "wsapoll") == 0);
    CHECK(rio_sock_errno(WSAEWOULDBLOCK) == EAGAIN);
    CHECK(rio_sock_errno(WSAEINPROGRESS) == EAGAIN);
    CHECK(rio_sock_errno(WSAEINTR) == EINTR);
    CHECK(rio_sock_errno(WSAECONNRESET) == WSAECONNRESET);
    CHECK(rio_sock_len((size_t)INT_MAX + 1) == INT_MAX);

    p = rio_poller_new();
    CHECK(p != NULL);
    CHECK(rio_make_pipe(fds) == 0);
    if (p == NULL || fds[0] < 0) return 1;
    CHECK(rio_poller_ctl(p, fds[0], RIO_IN, NULL, 0) == 0);
    CHECK(rio_poller_ctl(p, fds[1], RIO_OUT, &marker, 0) == 0);

    /* nothing to read yet: EAGAIN, as POSIX callers expect */
    CHECK(rio_read(fds[0], buf, sizeof(buf)) == -1 && errno == EAGAIN);
    CHECK(rio_write(fds[1], "x", 1) == 1);
    CHECK(rio_send(fds[1], "y", 1) == 1);

    n = rio_poller_wait(p, events, 8, 1000);
    CHECK(n >= 1);
    for (i = 0; i < n; i++)
        if (events[i].ptr == NULL && (events[i].events & RIO_IN)) found = 1;
    CHECK(found);
    CHECK(rio_recv(fds[0], buf, sizeof(buf)) >= 1);

    /* interest changes and removal; a non-socket is refused */
    CHECK(rio_poller_ctl(p, fds[1], RIO_IN | RIO_OUT, &marker, RIO_OUT) == 0);
    CHECK(rio_poller_ctl(p, fds[1], 0, &marker, RIO_IN | RIO_OUT) == 0);
    CHECK(rio_poller_ctl(p, 12345, RIO_IN, &marker, 0) == -1);
    CHECK(rio_poller_wait(p, events, 8, 0) >= 0);

    /* a socket closed while in the set is reported (RIO_ERR), not a failed wait */
    {
        int spare[2], closed_fd;
        CHECK(rio_make_pipe(spare) == 0);
        CHECK(rio_poller_ctl(p, spare[0], RIO_IN, &marker, 0) == 0);
        closed_fd = spare[0];
        CHECK(rio_close(spare[0]) == 0);
        CHECK(rio_close(spare[1]) == 0);
        n = rio_poller_wait(p, events, 8, 1000);
        CHECK(n >= 1);
        found = 0;
        for (i = 0; i < n; i++)
            if (events[i].ptr == &marker && (events[i].events & (RIO_ERR | RIO_HUP))) found = 1;
        CHECK(found);
        CHECK(rio_poller_ctl(p, closed_fd, 0, &marker, RIO_IN) == 0);
    }
    /* ... also when it is the only one (WSAPoll itself then fails, WSAENOTSOCK) */
    {
        rio_poller *alone = rio_poller_new();
        int spare[2];
        CHECK(alone != NULL && rio_make_pipe(spare) == 0);
        CHECK(rio_poller_ctl(alone, spare[0], RIO_IN, &marker, 0) == 0);
        CHECK(rio_close(spare[0]) == 0);
        CHECK(rio_close(spare[1]) == 0);
        n = rio_poller_wait(alone, events, 8, 1000);
        CHECK(n == 1 && events[0].ptr == &marker && (events[0].events & RIO_ERR));
        rio_poller_free(alone);
    }

    CHECK(rio_close(fds[0]) == 0);
    CHECK(rio_close(fds[1]) == 0);
    rio_poller_free(p);
    printf("%s: %d failure(s)\n", backend, failures);
    return failures != 0;
}
C

FLAGS=(-std=gnu11 -O2 -Wall -Wextra -Werror -Irio_core)
for variant in headers-first windows-h-first; do
  extra=()
  [ "$variant" = windows-h-first ] && extra=(-DWIN32_LEAN_AND_MEAN -DRIO_WINDOWS_H_FIRST)
  echo "+ $CC ${FLAGS[*]} ${extra[*]} check.c -lws2_32 -o check-$variant.exe"
  "$CC" "${FLAGS[@]}" "${extra[@]}" "$WORK/check.c" -lws2_32 -o "$WORK/check-$variant.exe"
done
echo "check-windows-build: rio_poll.h (wsapoll) and rio_sock.h compile and link for Windows"

# WINE=/usr/lib/wine/wine64 if the wine binary is not on PATH (Debian's wine64 package)
WINE=${WINE:-$(command -v wine || command -v wine64 || true)}
if [ -n "$WINE" ]; then
  echo "+ $WINE check-headers-first.exe"
  WINEDEBUG=-all "$WINE" "$WORK/check-headers-first.exe"
fi
