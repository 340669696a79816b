# cython: language_level=3
from libc.stdint cimport uint64_t

from rio_core._queue cimport Ring
from rio_core._sync cimport Primitive, WaitQueue, Waiter


cdef class Channel(Primitive):
    # The buffer holds items sent and not yet received. Invariant: while
    # receivers wait, the buffer is empty.
    cdef Ring buffer
    cdef Py_ssize_t capacity        # -1: unbounded; 0: rendezvous
    # Slots promised to granted senders that have not run yet: each will put
    # its item in when it runs, or give the slot back if it was cancelled.
    cdef Py_ssize_t reserved
    cdef Py_ssize_t senders         # open Sender handles
    cdef Py_ssize_t receivers       # open Receiver handles
    cdef WaitQueue send_waiters
    cdef WaitQueue recv_waiters

    cdef bint has_room(self) noexcept
    cdef int deliver(self, object item, bint front) except -1
    cdef int pump(self) except -1
    cdef object take(self)
    cdef bint ended(self) noexcept
    cdef int end_if_drained(self) except -1
    cdef int close_sender(self) except -1
    cdef int close_receiver(self) except -1


cdef class Sender:
    cdef Channel channel
    cdef bint closed
    cdef Waiter spare               # the last send's waiter, reused (rio_core._sync.reuse_waiter)
    cdef int check_open(self) except -1


cdef class Receiver:
    cdef Channel channel
    cdef bint closed
    cdef Waiter spare               # the last recv's waiter, reused
    cdef int check_open(self) except -1


cdef class BroadcastReceiver


cdef class Broadcast(Primitive):
    cdef list values                # the last `capacity` values, oldest first
    cdef Py_ssize_t capacity
    cdef uint64_t first_seq         # sequence number of values[0]
    cdef uint64_t next_seq          # sequence number of the next value sent
    cdef Py_ssize_t senders
    cdef WaitQueue waiters
    cdef object resolve(self, BroadcastReceiver receiver)
    cdef int send_value(self, object value) except -1


cdef class BroadcastSender:
    cdef Broadcast channel
    cdef bint closed


cdef class BroadcastReceiver:
    cdef Broadcast channel
    cdef uint64_t next_seq          # the next value this receiver reads
    cdef bint closed


cdef class Watch(Primitive):
    cdef object value
    cdef uint64_t version
    cdef bint sender_closed
    cdef WaitQueue waiters


cdef class WatchSender:
    cdef Watch channel
    cdef bint closed


cdef class WatchReceiver:
    cdef Watch channel
    cdef uint64_t seen
    cdef bint closed
