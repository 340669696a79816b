# cython: language_level=3
"""Readiness waits: the one way an I/O operation parks its task.

Every blocking read, write, accept and connect in rio tries the non-blocking
system call first and, only when it would block, awaits ``IoWait``: a leaf
future that parks the task in the reactor (``Reactor.park``) as the reader
or writer of its fd. The reactor wakes it when the fd is ready, and the next
poll (``Reactor.repoll``) says whether readiness arrived or the fd was closed.

Interest for fds rio does not own is re-sent on every wait (one epoll_ctl):
such an fd may have been closed without notify_closing and its number reused,
and the kernel forgets closed fds. rio's own streams skip that. A wait on a
socket object records the object: if a task is still parked on an fd whose
object was closed under it, the next wait on that fd number wakes the stale
task with ``ClosedResourceError`` and registers the fd afresh; a stale task
woken first (poll(2) and WSAPoll report the new socket's readiness under the
old number) sees its object closed when it is polled and gets the same error.

Cancellation-safe: when the waiting task is cancelled (``throw``) or the
await is abandoned (``close``), the waiter leaves its slot and the poller's
interest is brought back to exactly the remaining waiters, so nothing is
left behind. ``notify_closing(fd)`` wakes the waiters of an fd that is being
closed; they get ``ClosedResourceError`` at once.
"""

from libc.errno cimport EBADF

from rio_core._runtime cimport (
    Task, Runtime, READY_NONE, PENDING_, reraise, current_runtime_or_none,
)
from rio_core._future cimport Future
from rio_core._reactor cimport (
    Reactor, Registration, RIO_IN, RIO_OUT, WaitOutcome, WAIT_FIRED, WAIT_CLOSED,
)


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
        cdef Reactor reactor = task.rt.reactor
        cdef Registration reg = self.reg
        cdef WaitOutcome outcome
        if reg is not None:
            outcome = reactor.repoll(reg, self.generation, self.direction, task)
            if outcome == WAIT_CLOSED:
                self.reg = None
                self.task = None
                raise ClosedResourceError(f"fd {self.fd} was closed while a task waited on it")
            if outcome == WAIT_FIRED:
                self.reg = None
                self.task = None
                return READY_NONE
            self.task = task        # still parked, perhaps polled by another task now
            return PENDING_
        reg = reactor.park(self.fd, self.direction, task, not self.owned, self.fileobj)
        if reg is None:
            what = "readable" if self.direction == RIO_IN else "writable"
            raise BusyResourceError(
                f"another task is already waiting for fd {self.fd} to become {what}")
        self.reg = reg
        self.generation = reg.generation
        self.task = task
        return PENDING_

    cdef int leave(self) except -1:
        """Stop waiting: free the slot and drop interest nobody needs."""
        cdef Registration reg = self.reg
        cdef Runtime rt
        if reg is None:
            return 0
        self.reg = None
        rt = current_runtime_or_none()
        if rt is not None:
            rt.reactor.unpark(reg, self.generation, self.direction, self.task)
        self.task = None
        return 0

    def throw(self, typ, val=None, tb=None):
        self.leave()
        self.drop_bridge()
        reraise(typ, val, tb)

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
    if rt is not None:
        rt.reactor.adopt(fd)
    return 0


def wait_readable(fd_or_socket):
    """Wait until the fd (or socket) is readable. Awaitable."""
    cdef IoWait wait = wait_fd(fileno_of(fd_or_socket), RIO_IN, FD_FOREIGN)
    if not isinstance(fd_or_socket, int):
        wait.fileobj = fd_or_socket
    return wait


def wait_writable(fd_or_socket):
    """Wait until the fd (or socket) is writable. Awaitable."""
    cdef IoWait wait = wait_fd(fileno_of(fd_or_socket), RIO_OUT, FD_FOREIGN)
    if not isinstance(fd_or_socket, int):
        wait.fileobj = fd_or_socket
    return wait


def notify_closing(fd_or_socket):
    """Call before closing an fd that tasks may wait on: their waits raise
    ClosedResourceError at once and the reactor forgets the fd."""
    cdef int fd = fileno_of(fd_or_socket)
    cdef Runtime rt = current_runtime_or_none()
    if rt is not None:
        rt.reactor.close_fd(fd)
