/* rio_sock.h: non-blocking socket calls and their errors, the same on every platform.
 *
 *   rio_recv(fd, buf, n) / rio_send(fd, buf, n)
 *                        one recv/send on a non-blocking socket: the byte count,
 *                        or -1 with errno set
 *   rio_sock_fail()      (Windows) errno from WSAGetLastError(); returns -1
 *
 * No Python here: rio_net.h adds the Python part, and rio_poll.h uses the
 * Windows helpers for its wake-up socket pair, so ci/check-windows-build.sh
 * can compile this file with mingw-w64 without Windows Python headers.
 *
 * Errors are in errno on every platform, so callers test EAGAIN/EINTR and
 * raise OSError(errno) the same way everywhere. Winsock reports through
 * WSAGetLastError() instead, translated here:
 *   - WSAEWOULDBLOCK (and WSAEINPROGRESS, a Winsock 1.1 "blocking call in
 *     progress": retry later) -> EAGAIN, so callers park on the reactor;
 *   - WSAEINTR -> EINTR, so callers retry;
 *   - any other WSA code -> the code itself. Python on Windows uses the WSA
 *     codes as errno values for sockets (errno.ECONNRESET == 10054), so
 *     OSError(err, ...) is the right subclass (ConnectionResetError), and
 *     PyErr_SetFromErrno words it with FormatMessage. The C library's own
 *     errno values (EAGAIN 11, EINTR 4, ...) are all below 10000: no clash.
 * Socket handles travel as int, as CPython's fileno() hands them out; they
 * are cast to SOCKET at each call.
 */
#ifndef RIO_SOCK_H
#define RIO_SOCK_H

#include <errno.h>
#include <limits.h>
#include <stddef.h>

#if defined(_WIN32)
/* setup.py defines this too: <windows.h> must never pull in winsock v1. */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>

static inline int rio_sock_errno(int wsa_error) {
    switch (wsa_error) {
    case WSAEWOULDBLOCK:
    case WSAEINPROGRESS:
        return EAGAIN;
    case WSAEINTR:
        return EINTR;
    default:
        return wsa_error;
    }
}

/* The last Winsock error, in errno; returns -1 for `return rio_sock_fail();`. */
static inline int rio_sock_fail(void) {
    errno = rio_sock_errno(WSAGetLastError());
    return -1;
}

/* recv/send take an int length: a larger request is a short read or write. */
static inline int rio_sock_len(size_t n) { return n > (size_t)INT_MAX ? INT_MAX : (int)n; }

static inline long rio_recv(int fd, void *buf, size_t n) {
    int r = recv((SOCKET)fd, (char *)buf, rio_sock_len(n), 0);
    return r == SOCKET_ERROR ? (long)rio_sock_fail() : (long)r;
}

static inline long rio_send(int fd, const void *buf, size_t n) {
    int r = send((SOCKET)fd, (const char *)buf, rio_sock_len(n), 0);
    return r == SOCKET_ERROR ? (long)rio_sock_fail() : (long)r;
}

#else
#include <sys/types.h>
#include <sys/socket.h>
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0   /* macOS: CPython ignores SIGPIPE, so EPIPE is returned */
#endif

static inline long rio_recv(int fd, void *buf, size_t n) { return (long)recv(fd, buf, n, 0); }
static inline long rio_send(int fd, const void *buf, size_t n) {
    return (long)send(fd, buf, n, MSG_NOSIGNAL);
}
#endif

#endif
