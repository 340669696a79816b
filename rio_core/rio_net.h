/* rio_net.h: recv/send for the stream hot path, the same on every platform.
 *
 * rio_recv/rio_send (and their Winsock error mapping) live in rio_sock.h,
 * which has no Python in it; this file adds what needs the C API. */
#ifndef RIO_NET_H
#define RIO_NET_H
#include <Python.h>
#include <errno.h>
#include "rio_sock.h"   /* rio_recv, rio_send: Python-free, errors in errno */

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
