# cython: language_level=3
from rio_core._loop cimport LoopCore
from rio_core._sockio cimport RecvBuffer


cdef class SocketTransport:
    cdef LoopCore loop
    cdef object sock
    cdef int fd
    cdef object protocol
    cdef bint buffered            # the protocol is a BufferedProtocol
    cdef bint protocol_connected
    cdef dict extra
    cdef object server
    # Invariant: wbuf is non-empty exactly while a writer handle is registered.
    cdef bytearray wbuf
    cdef int conn_lost            # >0 once connection_lost is scheduled
    cdef bint closing
    cdef bint paused              # reading paused
    cdef bint eof                 # write_eof() called
    cdef bint protocol_paused     # pause_writing() called on the protocol
    cdef Py_ssize_t high_water
    cdef Py_ssize_t low_water
    cdef RecvBuffer recv_buffer   # scratch buffer and bulk flag: see _sockio
    cdef object empty_waiter
    cdef object __weakref__
