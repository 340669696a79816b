# cython: language_level=3
"""The reactor driver: owns the OS poller and turns readiness into wakes.

Some facts about epoll this module relies on
--------------------------------------------
- Interest is per fd, not per (fd, direction): one ``epoll_ctl`` entry holds
  both directions, so a ``Registration`` keeps the reader and the writer of one
  fd together and the mask is recomputed from which of them is present.
- Level-triggered mode is used: a waiter that did not drain the fd is told
  again on the next poll, so no readiness is lost when a task is cancelled
  between the event and its step.
- ``epoll_event.data.ptr`` points at the Registration (a borrowed pointer; the
  ``registrations`` dict owns it), so an event costs no dict lookup.
- The runtime's wake-up fd is the read end of a non-blocking self-pipe, not an
  eventfd: CPython's ``signal.set_wakeup_fd`` writes single bytes, and one pipe
  then serves both cross-thread wakes and signals.
- ``epoll_wait`` releases the GIL. EINTR returns no events; the caller runs
  ``PyErr_CheckSignals`` so Python signal handlers run promptly.
"""

from libc.errno cimport errno, EINTR, EAGAIN, ENOENT
from libc.stdlib cimport malloc, free
from cpython.exc cimport PyErr_SetFromErrno, PyErr_CheckSignals

cdef extern from "rio_poll.h" nogil:
    long read(int fd, void *buf, size_t n)
    long write(int fd, const void *buf, size_t n)
    int close(int fd)

cdef int WAKE_TOKEN = 0     # data.fd marker for the wake pipe (never a real Registration)


cdef class Registration:
    def __cinit__(self, int fd):
        self.fd = fd
        self.events = 0
        self.reader = None
        self.writer = None


cdef class Reactor:
    def __cinit__(self, int max_events=256):
        cdef int fds[2]
        cdef epoll_event ev
        self.epfd = -1
        self.wake_read_fd = -1
        self.wake_write_fd = -1
        self.events = NULL
        self.registrations = {}
        if not RIO_HAVE_EPOLL:
            raise OSError(
                "rio-rt's reactor needs epoll; the kqueue/select backends for this "
                "platform are not built yet")
        self.epfd = epoll_create1(EPOLL_CLOEXEC)
        if self.epfd < 0:
            PyErr_SetFromErrno(OSError)
        if rio_make_pipe(fds) < 0:
            PyErr_SetFromErrno(OSError)
        self.wake_read_fd = fds[0]
        self.wake_write_fd = fds[1]
        ev.events = EPOLLIN
        ev.data.ptr = NULL          # NULL marks the wake pipe
        if epoll_ctl(self.epfd, EPOLL_CTL_ADD, self.wake_read_fd, &ev) < 0:
            PyErr_SetFromErrno(OSError)
        self.max_events = max_events
        self.events = <epoll_event *>malloc(max_events * sizeof(epoll_event))
        if self.events == NULL:
            raise MemoryError()

    def __dealloc__(self):
        self.close()

    @property
    def wakeup_fd(self):
        """The write end of the self-pipe (for ``signal.set_wakeup_fd``)."""
        return self.wake_write_fd

    def fileno(self):
        return self.epfd

    def __len__(self):
        return len(self.registrations)

    cdef int close(self) except -1:
        if self.epfd >= 0:
            close(self.epfd)
            self.epfd = -1
        if self.wake_read_fd >= 0:
            close(self.wake_read_fd)
            close(self.wake_write_fd)
            self.wake_read_fd = -1
            self.wake_write_fd = -1
        if self.events != NULL:
            free(self.events)
            self.events = NULL
        self.nready = 0
        return 0

    cdef int notify(self) except -1:
        """Wake a poll() blocked in another thread. Safe from any thread (GIL held)."""
        cdef char byte = 1
        if self.wake_pending or self.wake_write_fd < 0:
            return 0
        self.wake_pending = True
        with nogil:
            write(self.wake_write_fd, &byte, 1)   # EAGAIN: pipe full, a wake is pending anyway
        return 0

    cdef int poll(self, int timeout_ms) except -1:
        """Wait for events (timeout_ms: -1 forever, 0 non-blocking).

        Fills the event array; the wake pipe is drained here and not reported.
        """
        cdef int n, i, k = 0
        cdef char buf[256]
        cdef int epfd = self.epfd
        if epfd < 0:
            raise RuntimeError("reactor is closed")
        with nogil:
            n = epoll_wait(epfd, self.events, self.max_events, timeout_ms)
        self.waits += 1
        if n < 0:
            self.nready = 0
            if errno == EINTR:
                PyErr_CheckSignals()
                return 0
            PyErr_SetFromErrno(OSError)
        for i in range(n):
            if self.events[i].data.ptr == NULL:
                self.wake_pending = False
                while read(self.wake_read_fd, buf, sizeof(buf)) > 0:
                    pass
            else:
                if k != i:
                    self.events[k] = self.events[i]
                k += 1
        self.nready = k
        return 0

    cdef Registration ready_registration(self, int i):
        return <Registration>self.events[i].data.ptr

    cdef uint32_t ready_events(self, int i) noexcept:
        return self.events[i].events

    cdef Registration registration(self, int fd):
        cdef Registration reg = self.registrations.get(fd)
        if reg is None:
            reg = Registration(fd)
            self.registrations[fd] = reg
        return reg

    cdef int set_interest(self, Registration reg) except -1:
        """Bring the kernel's interest for ``reg.fd`` in line with its waiters."""
        cdef epoll_event ev
        cdef uint32_t want = 0
        cdef int op
        if reg.reader is not None:
            want |= EPOLLIN
        if reg.writer is not None:
            want |= EPOLLOUT
        if want == reg.events:
            return 0
        ev.events = want
        ev.data.ptr = <void *>reg
        if want == 0:
            op = EPOLL_CTL_DEL
        elif reg.events == 0:
            op = EPOLL_CTL_ADD
        else:
            op = EPOLL_CTL_MOD
        if epoll_ctl(self.epfd, op, reg.fd, &ev) < 0:
            if not (op == EPOLL_CTL_DEL and errno == ENOENT):
                PyErr_SetFromErrno(OSError)
        reg.events = want
        if want == 0:
            self.registrations.pop(reg.fd, None)
        return 0
