# cython: language_level=3
"""Readiness waits: the one way an I/O operation parks its task.

Every blocking read, write, accept and connect in rio tries the non-blocking
system call first and, only when it would block, awaits ``IoWait``: a leaf
future that puts the task in its fd's ``Registration`` as reader or writer.
The reactor clears that slot, sets the ``fired`` bit and wakes the task.

Interest for fds rio does not own is re-sent on every wait (one epoll_ctl):
such an fd may have been closed without notify_closing and its number reused,
and the kernel forgets closed fds. rio's own streams skip that.

Cancellation-safe: when the waiting task is cancelled (``throw``) or the
await is abandoned (``close``), the waiter leaves its slot and the poller's
interest is brought back to exactly the remaining waiters, so nothing is
left behind. ``notify_closing(fd)`` wakes the waiters of an fd that is being
closed; they get ``ClosedResourceError`` at once.
"""

from libc.errno cimport EBADF

from rio_core._runtime cimport (
    Future, Task, Runtime, READY_NONE, PENDING_, wake_task, current_runtime_or_none,
)
from rio_core._reactor cimport Reactor, Registration, RIO_IN, RIO_OUT


class ClosedResourceError(OSError):
    """The fd or stream was closed (by this program) while in use."""

    def __init__(self, msg="the resource was closed while in use"):
        super().__init__(EBADF, msg)


class BusyResourceError(RuntimeError):
    """Another task is already waiting for the same fd in the same direction."""


cdef int fileno_of(object fd_or_socket) except -1:
    cdef int fd
    if isinstance(fd_or_socket, int):
        fd = fd_or_socket
    elif hasattr(fd_or_socket, "fileno"):
        fd = fd_or_socket.fileno()
    else:
        raise TypeError(
            f"expected an fd (int) or an object with fileno(), got {type(fd_or_socket).__name__}")
    if fd < 0:
        raise ValueError(f"invalid file descriptor {fd}")
    return fd


cdef class IoWait(Future):
    """Ready when ``fd`` is readable (or writable)."""

    cdef object _poll(self, Task task):
        cdef Registration reg = self.reg
        cdef Reactor reactor
        cdef object slot
        if reg is not None:
            if reg.closed:
                self.reg = None
                raise ClosedResourceError(f"fd {self.fd} was closed while a task waited on it")
            if reg.fired & self.direction:
                reg.fired &= ~self.direction
                self.reg = None
                self.task = None
                return READY_NONE
            # a spurious wake: still parked (maybe polled by another task now)
            self.task = task
            if self.direction == RIO_IN:
                reg.reader = task
            else:
                reg.writer = task
            return PENDING_
        reactor = task.rt.reactor
        reg = reactor.registration(self.fd)
        slot = reg.reader if self.direction == RIO_IN else reg.writer
        if slot is not None and slot is not task:
            what = "readable" if self.direction == RIO_IN else "writable"
            raise BusyResourceError(
                f"another task is already waiting for fd {self.fd} to become {what}")
        reg.fired &= ~self.direction
        if self.direction == RIO_IN:
            reg.reader = task
        else:
            reg.writer = task
        reactor.add_interest(reg, not self.owned)
        self.reg = reg
        self.task = task
        return PENDING_

    cdef int leave(self) except -1:
        """Stop waiting: free the slot and drop interest nobody needs."""
        cdef Registration reg = self.reg
        cdef Runtime rt
        if reg is None:
            return 0
        self.reg = None
        if self.direction == RIO_IN:
            if reg.reader is self.task:
                reg.reader = None
        elif reg.writer is self.task:
            reg.writer = None
        reg.fired &= ~self.direction
        self.task = None
        rt = current_runtime_or_none()
        if rt is not None and not reg.closed:
            rt.reactor.sync_interest(reg)
        return 0

    def throw(self, typ, val=None, tb=None):
        self.leave()
        self.drop_bridge()
        if val is None:
            if isinstance(typ, BaseException):
                raise typ
            raise typ()
        raise val

    def close(self):
        self.leave()
        self.drop_bridge()

    def __repr__(self):
        what = "readable" if self.direction == RIO_IN else "writable"
        return f"<rio IoWait fd={self.fd} {what}>"


cdef IoWait wait_fd(int fd, uint32_t direction, FdOwnership ownership):
    """A wait for ``fd`` to be ready in ``direction`` (RIO_IN or RIO_OUT).
    FD_OWNED: rio owns the fd and calls notify_closing before closing it, so
    interest the kernel already holds is trusted and a parked read costs no
    system call; FD_FOREIGN: the interest is re-sent on each wait."""
    cdef IoWait w = IoWait.__new__(IoWait)
    w.fd = fd
    w.owned = ownership == FD_OWNED
    w.direction = direction
    return w


cdef int adopt_fd(int fd) except -1:
    """rio takes ownership of ``fd`` (a new stream, listener or UDP socket):
    forget whatever a previous, plainly closed fd with this number left in the
    reactor, so the owned fast path never trusts stale kernel interest."""
    cdef Runtime rt = current_runtime_or_none()
    if rt is not None and fd in rt.reactor.registrations:
        rt.reactor.forget(fd)
    return 0


def wait_readable(fd_or_socket):
    """Wait until the fd (or socket) is readable. Awaitable."""
    return wait_fd(fileno_of(fd_or_socket), RIO_IN, FD_FOREIGN)


def wait_writable(fd_or_socket):
    """Wait until the fd (or socket) is writable. Awaitable."""
    return wait_fd(fileno_of(fd_or_socket), RIO_OUT, FD_FOREIGN)


def notify_closing(fd_or_socket):
    """Call before closing an fd that tasks may wait on: their waits raise
    ClosedResourceError at once and the reactor forgets the fd."""
    cdef int fd = fileno_of(fd_or_socket)
    cdef Runtime rt = current_runtime_or_none()
    cdef Registration reg
    if rt is None:
        return
    reg = rt.reactor.registrations.get(fd)
    if reg is None:
        return
    reader, writer = reg.reader, reg.writer
    reg.reader = None
    reg.writer = None
    rt.reactor.forget(fd)
    for waiter in (reader, writer):
        if type(waiter) is Task:
            wake_task(<Task>waiter)
