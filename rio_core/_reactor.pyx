# cython: language_level=3
"""The reactor driver: owns the OS poller and reports readiness to the tick.

Some facts this module relies on
--------------------------------
- Interest is per fd, not per (fd, direction): one poller entry holds both
  directions, so a ``Registration`` keeps an fd's reader and writer together.
- Backends (rio_poll.h): epoll on Linux, kqueue on macOS and the BSDs,
  WSAPoll on Windows, poll(2) elsewhere; ``RIO_REACTOR=poll`` at build time
  selects the fallback on POSIX, so it is tested on Linux too, and with it
  the body the Windows backend shares. ``BACKEND`` names the one built.
- Level-triggered mode (epoll without EPOLLET, kqueue without EV_CLEAR,
  poll(2) and WSAPoll): readiness that
  nobody consumed is reported again, so no readiness is lost when a task is
  cancelled between the event and its step. Edge-triggered mode was rejected
  because ``wait_readable`` must be able to return for data that arrived
  before the wait began.
- Interest is added when a waiter parks and dropped lazily: when an event
  finds no waiter for its direction, that direction is removed. A stream that
  reads, parks, reads again keeps its entry and costs no ``epoll_ctl`` per
  read; a socket nobody reads cannot make the poller spin (one wasted event).
- Closing an fd drops it from epoll only when the last descriptor of the
  open file goes away, and a new fd may reuse the number. So owners call
  ``notify_closing`` before closing; MOD falling back to ADD on ENOENT (in
  rio_poll.h) covers an fd reopened behind our back.
- The runtime's wake-up fd is the read end of a non-blocking self-pipe, not
  an eventfd: CPython's ``signal.set_wakeup_fd`` writes single bytes, and one
  pipe serves both cross-thread wakes and signals. On Windows the "pipe" is a
  connected loopback TCP socket pair: WSAPoll watches only sockets, and
  ``set_wakeup_fd`` accepts only a socket there. Errors are in errno on
  every platform (rio_sock.h maps Winsock's codes).
- The wait releases the GIL. EINTR returns no events and runs
  ``PyErr_CheckSignals`` so Python signal handlers run promptly.
"""

from libc.errno cimport errno, EINTR
from libc.stdlib cimport malloc, free
from cpython.exc cimport PyErr_SetFromErrno, PyErr_CheckSignals

BACKEND = RIO_BACKEND.decode()


cdef class Registration:
    def __cinit__(self, int fd):
        self.fd = fd

    cdef uint32_t wanted(self) noexcept:
        cdef uint32_t want = 0
        if self.reader is not None:
            want |= RIO_IN
        if self.writer is not None:
            want |= RIO_OUT
        return want

    def __repr__(self):
        return f"<Registration fd={self.fd} reader={self.reader!r} writer={self.writer!r}>"


cdef class Reactor:
    def __cinit__(self, int max_events=256):
        cdef int fds[2]
        self.poller = NULL
        self.wake_read_fd = -1
        self.wake_write_fd = -1
        self.events = NULL
        self.registrations = {}
        self.poller = rio_poller_new()
        if self.poller == NULL:
            PyErr_SetFromErrno(OSError)
        if rio_make_pipe(fds) < 0:
            PyErr_SetFromErrno(OSError)
        self.wake_read_fd = fds[0]
        self.wake_write_fd = fds[1]
        if rio_poller_ctl(self.poller, self.wake_read_fd, RIO_IN, NULL, 0) < 0:
            PyErr_SetFromErrno(OSError)
        self.max_events = max_events
        self.events = <rio_event *>malloc(max_events * sizeof(rio_event))
        if self.events == NULL:
            raise MemoryError()

    def __dealloc__(self):
        self.close()

    @property
    def wakeup_fd(self):
        """The write end of the self-pipe (for ``signal.set_wakeup_fd``); a
        socket on Windows."""
        return self.wake_write_fd

    @property
    def backend(self):
        return BACKEND

    def __len__(self):
        return len(self.registrations)

    cdef int close(self) except -1:
        if self.poller != NULL:
            rio_poller_free(self.poller)
            self.poller = NULL
        if self.wake_read_fd >= 0:
            rio_close(self.wake_read_fd)
            rio_close(self.wake_write_fd)
            self.wake_read_fd = -1
            self.wake_write_fd = -1
        if self.events != NULL:
            free(self.events)
            self.events = NULL
        self.nready = 0
        self.registrations = {}
        return 0

    cdef int notify(self) except -1:
        """Wake a poll() blocked in another thread. Safe from any thread (GIL held)."""
        cdef char byte = 1
        if self.wake_pending or self.wake_write_fd < 0:
            return 0
        self.wake_pending = True
        # No GIL release: a one-byte write to a non-blocking pipe cannot block,
        # and handing the GIL over here would let the runtime finish while the
        # waking thread still holds references in its frame.
        rio_write(self.wake_write_fd, &byte, 1)   # EAGAIN: full, a wake is pending anyway
        return 0

    cdef int poll(self, int timeout_ms) except -1:
        """Wait for events (timeout_ms: -1 forever, 0 non-blocking).

        Fills the event array; the wake pipe is drained here and not reported.
        """
        cdef int n, i, k = 0
        cdef char buf[256]
        cdef rio_poller *poller = self.poller
        if poller == NULL:
            raise RuntimeError("reactor is closed")
        with nogil:
            n = rio_poller_wait(poller, self.events, self.max_events, timeout_ms)
        self.waits += 1
        if n < 0:
            self.nready = 0
            if errno == EINTR:
                PyErr_CheckSignals()
                return 0
            PyErr_SetFromErrno(OSError)
        for i in range(n):
            if self.events[i].ptr == NULL:
                self.wake_pending = False
                while rio_read(self.wake_read_fd, buf, sizeof(buf)) > 0:
                    pass
            else:
                if k != i:
                    self.events[k] = self.events[i]
                k += 1
        self.nready = k
        return 0

    cdef Registration ready_registration(self, int i):
        return <Registration>self.events[i].ptr

    cdef uint32_t ready_events(self, int i) noexcept:
        return self.events[i].events

    cdef Registration registration(self, int fd):
        cdef Registration reg = self.registrations.get(fd)
        if reg is None:
            reg = Registration(fd)
            self.registrations[fd] = reg
        return reg

    cdef int add_interest(self, Registration reg, bint revalidate=False) except -1:
        """Make the poller watch every direction that has a waiter.

        ``revalidate`` re-sends the interest even when the kernel should hold
        it already: for fds rio does not own, which may have been closed (the
        kernel then forgot them) and reopened under the same number.
        """
        cdef uint32_t want = reg.kernel_events | reg.wanted()
        cdef Registration current
        if reg.closed:
            raise OSError(9, f"fd {reg.fd} was closed (notify_closing) while in use")
        current = self.registrations.get(reg.fd)
        if current is not reg:
            if current is not None:
                raise RuntimeError(f"fd {reg.fd} already has another registration")
            self.registrations[reg.fd] = reg
        if want != reg.kernel_events or revalidate:
            if rio_poller_ctl(self.poller, reg.fd, want, <void *>reg, reg.kernel_events) < 0:
                PyErr_SetFromErrno(OSError)
            reg.kernel_events = want
        return 0

    cdef int sync_interest(self, Registration reg) except -1:
        """Make the poller watch exactly the directions that have a waiter;
        forget the fd when none has."""
        return self.set_interest(reg, reg.wanted())

    cdef int drop_interest(self, Registration reg, uint32_t directions) except -1:
        """Stop watching ``directions`` (an event there found no waiter). The
        other directions keep their interest, lazily held or not."""
        return self.set_interest(reg, (reg.kernel_events & ~directions) | reg.wanted())

    cdef int set_interest(self, Registration reg, uint32_t want) except -1:
        if want != reg.kernel_events:
            if rio_poller_ctl(self.poller, reg.fd, want, <void *>reg, reg.kernel_events) < 0:
                PyErr_SetFromErrno(OSError)
            reg.kernel_events = want
        if want == 0 and self.registrations.get(reg.fd) is reg:
            del self.registrations[reg.fd]
        return 0

    cdef int forget(self, int fd) except -1:
        """Drop fd from the poller (it is being closed)."""
        cdef Registration reg = self.registrations.pop(fd, None)
        if reg is None:
            return 0
        reg.closed = True
        if reg.kernel_events != 0 and self.poller != NULL:
            rio_poller_ctl(self.poller, fd, 0, <void *>reg, reg.kernel_events)
            reg.kernel_events = 0
        return 0
