# cython: language_level=3
cimport cython
from libc.stdint cimport uint32_t

from rio_core._queue cimport Ring
from rio_core._handle cimport Handle, WakeFn


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


cdef enum WaitOutcome:
    WAIT_PARKED     # the task holds its slot; the poller watches the fd
    WAIT_FIRED      # readiness arrived for the task; the slot is free again
    WAIT_CLOSED     # the fd was closed (notify_closing, or found stale) while waited on


cdef class Registration:
    """Interest in one fd: per direction, at most one waiter, either a parked
    task (one-shot) or a persistent asyncio handle. Only the Reactor touches it.

    One object per fd number for the reactor's whole life: the poller holds
    a pointer to it, and a kernel entry can outlive our knowledge of it (a
    closed fd whose file another descriptor keeps open), so it is never freed
    while the reactor lives. Forgetting an fd bumps ``generation`` instead.
    Invariant: per direction at most one of ``*_task`` and ``*_handle`` is set.
    Invariant: ``kernel_events`` is what the OS poller holds for ``fd``; it
    covers the waiters' directions and may hold more until an event finds no
    waiter (interest is dropped lazily).
    """
    cdef readonly int fd
    cdef object fileobj            # what waiters registered with (found by identity after close)
    cdef uint32_t kernel_events
    cdef uint32_t fired            # directions that fired for a task not yet re-polled
    cdef unsigned int generation   # bumped when the fd is forgotten (closed): older waits fail
    cdef object reader_task         # a parked Task (one-shot), or None
    cdef object writer_task
    cdef Handle reader_handle
    cdef Handle writer_handle

    cdef uint32_t wanted(self) noexcept
    cdef bint occupied(self, uint32_t direction) noexcept


cdef class Reactor:
    cdef rio_poller *poller
    cdef int wake_read_fd
    cdef int wake_write_fd
    # Invariant: wake_pending is 1 from the write of a wake byte until the
    # runtime thread drains the pipe; other threads write only on 0 -> 1.
    cdef bint wake_pending
    cdef rio_event *events
    cdef int max_events
    cdef dict registrations            # fd -> Registration, kept (see Registration)
    # Invariant: watched == number of registrations with kernel_events != 0.
    cdef Py_ssize_t watched
    cdef readonly Py_ssize_t waits     # polls made (blocking or not)
    cdef WakeFn wake                   # the scheduler's wake transition, set when it makes us

    # the driver: wait and turn events into wakes and queued handles

    @cython.final
    cdef int turn(self, int timeout_ms, Ring *ready) except -1
    cdef int notify(self) except -1
    # parked tasks (rio_core._io)
    cdef Registration park(self, int fd, uint32_t direction, object task, bint revalidate,
                           object fileobj)
    cdef WaitOutcome repoll(self, Registration reg, unsigned int generation, uint32_t direction,
                            object task) except *
    cdef int unpark(self, Registration reg, unsigned int generation, uint32_t direction,
                    object task) except -1
    cdef int close_fd(self, int fd) except -1
    cdef int adopt(self, int fd) except -1
    # persistent handles (the asyncio door)
    cdef Handle set_handle(self, object fileobj, uint32_t direction, Handle handle)
    cdef Handle clear_handle(self, object fileobj, uint32_t direction)
    cdef tuple interest(self, int fd)
    cdef list watched_fds(self)
    # interest policy (internal)
    cdef Registration registration_for(self, int fd, object fileobj)
    cdef Registration find(self, object fileobj)
    cdef int watch(self, Registration reg, bint revalidate) except -1
    cdef int set_interest(self, Registration reg, uint32_t want) except -1
    cdef int set_kernel_events(self, Registration reg, uint32_t events) noexcept
    cdef int discard(self, Registration reg) except -1
    cdef int close(self) except -1


cdef int fileobj_fd(object fileobj) except -1


cdef inline bint fds_watched(Reactor reactor) noexcept:
    """Whether the poller watches any fd (inline: the tick asks every time)."""
    return reactor.watched != 0
