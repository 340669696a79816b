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
- ``BULK_READ``: a recv this large means the peer is streaming, and the next
  reads receive straight into their result.

What both users rely on: errors are in ``errno`` on every platform
(``rio_sock.h`` maps Winsock's), so these tests hold on Windows too.
"""

from libc.errno cimport EAGAIN, EINTR

cdef extern from "errno.h":
    int EWOULDBLOCK                 # EAGAIN on Linux; a separate value on some systems

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
