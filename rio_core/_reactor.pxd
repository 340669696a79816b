# cython: language_level=3
from libc.stdint cimport uint32_t


cdef extern from "rio_poll.h" nogil:
    bint RIO_HAVE_EPOLL
    enum:
        EPOLLIN
        EPOLLOUT
        EPOLLERR
        EPOLLHUP
        EPOLLRDHUP
        EPOLL_CTL_ADD
        EPOLL_CTL_DEL
        EPOLL_CTL_MOD
        EPOLL_CLOEXEC
    ctypedef union epoll_data_t:
        void *ptr
        int fd
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)
    int rio_make_pipe(int fds[2])


cdef class Registration:
    """Interest in one fd: at most one reader and one writer.

    Invariant: ``events`` is exactly the epoll mask of the non-None waiters;
    only the Reactor changes it.
    """
    cdef readonly int fd
    cdef uint32_t events
    cdef public object reader     # Task or Handle woken when readable
    cdef public object writer     # Task or Handle woken when writable


cdef class Reactor:
    cdef int epfd
    cdef int wake_read_fd
    cdef int wake_write_fd
    # Invariant: wake_pending is 1 from the write of a wake byte until the
    # runtime thread drains the pipe; other threads write only on 0 -> 1.
    cdef bint wake_pending
    cdef epoll_event *events
    cdef int max_events
    cdef readonly int nready           # events filled by the last poll()
    cdef dict registrations            # fd -> Registration
    cdef readonly Py_ssize_t waits     # blocking or non-blocking polls made

    cdef int poll(self, int timeout_ms) except -1
    cdef Registration ready_registration(self, int i)
    cdef uint32_t ready_events(self, int i) noexcept
    cdef int notify(self) except -1
    cdef int set_interest(self, Registration reg) except -1
    cdef Registration registration(self, int fd)
    cdef int close(self) except -1
