# cython: language_level=3
"""Socket I/O shared by the native streams (``_net``) and the asyncio door's
transport (``_transport``): declarations and inline helpers only, no module.

What it owns:

- the C calls of the data path, from ``rio_net.h``/``rio_sock.h``: ``rio_recv``
  and ``rio_send`` (one call on a non-blocking socket: the byte count, or -1
  with ``errno`` set) and ``rio_recv_bytes`` (recv straight into a new bytes
  object);
- the errno tests: ``would_block`` (EAGAIN/EWOULDBLOCK: wait until the socket
  is ready, then retry) and ``retryable`` (those, or EINTR: nothing failed);
- ``RecvBuffer``, how a read becomes ``bytes``: a scratch buffer, malloc'd on
  first use, from which just what arrived is copied (a 100-byte read allocates
  100 bytes); once a recv brings ``BULK_READ`` bytes or more (the peer is
  streaming), reads of that size receive straight into their result instead
  (the kernel's copy only), until a smaller recv switches back.

What both users rely on:

- errors are in ``errno`` on every platform (``rio_sock.h`` maps Winsock's), so
  these tests hold on Windows too;
- ``recv_buffer_read`` makes exactly one recv and never waits: a would-block
  comes back through ``*err`` and the caller decides (the stream parks on
  ``wait_fd``, the transport waits for its next ``read_ready``);
- the caller passes the same ``scratch_size`` on every call (a stream 64 KiB, the
  transport 256 KiB) and never asks for more than that;
- the struct starts zeroed (a cdef class's fields are) and its owner calls
  ``recv_buffer_release`` in ``__dealloc__``.
"""

from libc.errno cimport errno, EAGAIN, EINTR
from libc.stdlib cimport malloc, free
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_GET_SIZE

cdef extern from "errno.h":
    int EWOULDBLOCK                 # EAGAIN on Linux; a separate value on some systems

cdef extern from "rio.h":
    bint RIO_DEBUG_ENABLED

cdef extern from "rio_net.h" nogil:
    long rio_recv(int fd, void *buf, size_t n)
    long rio_send(int fd, const void *buf, size_t n)

cdef extern from "rio_net.h":
    # a bytes object (b"" at EOF), or None with *err set when recv failed
    object rio_recv_bytes(int fd, Py_ssize_t size, int *err)


cdef enum:
    BULK_READ = 16 * 1024           # a recv this large switches to recv-into-result


cdef inline bint would_block(int err) noexcept nogil:
    """The call would block: wait until the socket is ready, then retry."""
    return err == EAGAIN or err == EWOULDBLOCK


cdef inline bint retryable(int err) noexcept nogil:
    """Nothing failed: the call would block, or a signal interrupted it."""
    return err == EAGAIN or err == EWOULDBLOCK or err == EINTR


cdef struct RecvBuffer:
    char *scratch                   # scratch_size bytes, malloc'd on first use; NULL before
    bint bulk                       # the last recv was large: receive into the result


cdef inline object recv_buffer_read(RecvBuffer *buffer, int fd, Py_ssize_t size,
                                    Py_ssize_t scratch_size, int *err):
    """One recv of up to ``size`` bytes (0 < size <= scratch_size): a new bytes
    object (b"" at EOF), or None with ``*err`` set when recv failed."""
    cdef long got
    if RIO_DEBUG_ENABLED:
        assert 0 < size <= scratch_size, "recv_buffer_read: size out of range"
    if buffer.bulk and size >= BULK_READ:
        data = rio_recv_bytes(fd, size, err)
        if data is None:
            return None
        got = PyBytes_GET_SIZE(data)
    else:
        if buffer.scratch == NULL:
            buffer.scratch = <char *>malloc(scratch_size)
            if buffer.scratch == NULL:
                raise MemoryError()
        got = rio_recv(fd, buffer.scratch, size)
        if got < 0:
            err[0] = errno
            return None
        data = PyBytes_FromStringAndSize(buffer.scratch, got)
    buffer.bulk = got >= BULK_READ
    return data


cdef inline void recv_buffer_release(RecvBuffer *buffer) noexcept nogil:
    """Free the scratch buffer (idempotent)."""
    free(buffer.scratch)
    buffer.scratch = NULL
