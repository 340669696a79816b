/* rio_net.h: recv/send for the stream hot path, the same on every platform. */
#ifndef RIO_NET_H
#define RIO_NET_H
#include <Python.h>
#include <stddef.h>
#include <errno.h>
#if defined(_WIN32)
#include <winsock2.h>
static inline long rio_recv(int fd, void *buf, size_t n) {
    long r = recv((SOCKET)fd, (char *)buf, (int)n, 0);
    if (r < 0) errno = (WSAGetLastError() == WSAEWOULDBLOCK) ? EAGAIN : EIO;
    return r;
}
static inline long rio_send(int fd, const void *buf, size_t n) {
    long r = send((SOCKET)fd, (const char *)buf, (int)n, 0);
    if (r < 0) errno = (WSAGetLastError() == WSAEWOULDBLOCK) ? EAGAIN : EIO;
    return r;
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

/* recv straight into a new bytes object of `size` bytes, shrunk to what
 * arrived: one copy (the kernel's). Returns the bytes, or None when recv
 * failed (*err = errno), or NULL with an exception set (out of memory). */
static inline PyObject *rio_recv_bytes(int fd, Py_ssize_t size, int *err) {
    PyObject *data = PyBytes_FromStringAndSize(NULL, size);
    long got;
    if (data == NULL) return NULL;
    got = rio_recv(fd, PyBytes_AS_STRING(data), (size_t)size);
    if (got < 0) {
        *err = errno;
        Py_DECREF(data);
        Py_RETURN_NONE;
    }
    if (got < size && _PyBytes_Resize(&data, (Py_ssize_t)got) < 0) return NULL;
    return data;
}
#endif
