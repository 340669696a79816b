# cython: language_level=3
from libc.stdint cimport uint32_t


cdef extern from "rio_poll.h" nogil:
    const char *RIO_BACKEND
    enum:
        RIO_IN
        RIO_OUT
        RIO_ERR
        RIO_HUP
    ctypedef struct rio_event:
        uint32_t events
        void *ptr
    ctypedef struct rio_poller:
        pass
    rio_poller *rio_poller_new()
    void rio_poller_free(rio_poller *p)
    int rio_poller_ctl(rio_poller *p, int fd, uint32_t events, void *ptr, uint32_t old_events)
    int rio_poller_wait(rio_poller *p, rio_event *out, int max, int timeout_ms)
    int rio_make_pipe(int fds[2])
    long rio_read(int fd, void *buf, size_t n)
    long rio_write(int fd, const void *buf, size_t n)
    int rio_close(int fd)


cdef class Registration:
    """Interest in one fd: at most one reader and one writer.

    A reader/writer that is a Task is one-shot: the reactor clears it, sets
    the matching bit in ``fired`` and wakes the task. Any other object (an
    asyncio Handle) stays until removed and is queued on every event.
    Invariant: ``kernel_events`` is what the OS poller holds for ``fd``; it
    covers the waiters' bits and may hold more until an event finds no waiter.
    """
    cdef readonly int fd
    cdef uint32_t kernel_events
    cdef public uint32_t fired
    cdef public bint closed
    cdef public object reader
    cdef public object writer
    cdef uint32_t wanted(self) noexcept


cdef class Reactor:
    cdef rio_poller *poller
    cdef int wake_read_fd
    cdef int wake_write_fd
    # Invariant: wake_pending is 1 from the write of a wake byte until the
    # runtime thread drains the pipe; other threads write only on 0 -> 1.
    cdef bint wake_pending
    cdef rio_event *events
    cdef int max_events
    cdef readonly int nready           # events filled by the last poll()
    cdef dict registrations            # fd -> Registration
    cdef readonly Py_ssize_t waits     # polls made (blocking or not)

    cdef int poll(self, int timeout_ms) except -1
    cdef Registration ready_registration(self, int i)
    cdef uint32_t ready_events(self, int i) noexcept
    cdef int notify(self) except -1
    cdef Registration registration(self, int fd)
    cdef int add_interest(self, Registration reg, bint revalidate=*) except -1
    cdef int sync_interest(self, Registration reg) except -1
    cdef int drop_interest(self, Registration reg, uint32_t directions) except -1
    cdef int set_interest(self, Registration reg, uint32_t want) except -1
    cdef int forget(self, int fd) except -1
    cdef int close(self) except -1
