# cython: language_level=3
from rio_core._sockio cimport RecvBuffer


cdef class SocketResource:
    cdef object sock
    cdef int fd
    cdef bint closed
    cdef str noun                  # "stream", "listener", "UDP socket": for error messages

    cdef int attach_socket(self, object sock, str noun) except -1
    cdef int check_open(self, str what) except -1


cdef class Stream(SocketResource):
    cdef object peer
    cdef RecvBuffer recv_buffer    # scratch buffer and bulk flag: see _sockio
    # Set when the last recv returned less than asked (the socket was drained),
    # or by a write (unless reads are bulk): the next read parks first instead
    # of making a recv that would fail EAGAIN.
    cdef bint drained

    cdef int attach(self, object sock, object peer) except -1


cdef class TcpStream(Stream):
    pass


cdef class UnixStream(Stream):
    pass


cdef class Listener(SocketResource):
    cdef readonly Py_ssize_t exhausted_count

    cdef int attach(self, object sock) except -1
    cdef object wrap(self, object conn, object address)


cdef class TcpListener(Listener):
    pass


cdef class UnixListener(Listener):
    pass


cdef class UdpSocket(SocketResource):
    cdef object peer
