# cython: language_level=3
"""The reactor: the I/O driver. Owns the OS poller, the registrations and the
interest policy, and turns readiness into wakes and queued handles.

The scheduler calls ``turn(timeout_ms, ready)`` (step 4 of the tick); parked
tasks come through ``park``/``repoll``/``unpark``/``close_fd`` (rio_core._io),
the asyncio door's readers and writers through ``set_handle``/``clear_handle``.
Nobody else reads or writes a ``Registration``.

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
  open file goes away, and a new fd may reuse the number: the kernel then
  knows nothing of it while a registration still says it does. So:
  - rio's own sockets call ``notify_closing`` (``close_fd``) before closing,
    and ``adopt`` forgets whatever a plainly closed fd of the same number left;
  - interest for fds rio does not own is re-sent on every wait and on every
    ``set_handle`` (one epoll_ctl; MOD falls back to ADD on ENOENT and ADD to
    MOD on EEXIST in rio_poll.h), so a reused number is registered afresh;
  - a registration remembers the object it was registered with. When that
    object reports another fd (a closed socket's ``fileno()`` is -1) the
    registration is stale: the next wait or handle on the fd discards it
    (its parked tasks get ClosedResourceError) and starts afresh, and
    removing a handle by the closed object still finds it, as ``selectors``
    does. A parked task woken before that (poll(2) and WSAPoll report the new
    socket's readiness under the old number) finds its object closed when it
    is polled (``repoll``) and gets ClosedResourceError the same way;
  - lowering interest on an fd the kernel forgot is not an error.
- The runtime's wake-up fd is the read end of a non-blocking self-pipe, not
  an eventfd: CPython's ``signal.set_wakeup_fd`` writes single bytes, and one
  pipe serves both cross-thread wakes and signals. On Windows the "pipe" is a
  connected loopback TCP socket pair: WSAPoll watches only sockets, and
  ``set_wakeup_fd`` accepts only a socket there. Errors are in errno on
  every platform (rio_sock.h maps Winsock's codes).
- A wait that may block releases the GIL; a busy loop's non-blocking poll
  keeps it (it returns at once; a release and re-take cost more). EINTR
  returns no events and runs ``PyErr_CheckSignals`` so Python signal
  handlers run promptly.
"""

from libc.errno cimport errno, EINTR, EBADF, ENOENT
from libc.stdlib cimport malloc, free
from cpython.exc cimport PyErr_SetFromErrno, PyErr_CheckSignals

from rio_core._queue cimport ring_push

BACKEND = RIO_BACKEND.decode()


cdef int fileobj_fd(object fileobj) except -1:
    """The fd of an int or of an object with fileno(), as selectors checks it
    (ValueError otherwise, or for a negative fd)."""
    cdef int fd
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


cdef bint fileobj_gone(object fileobj, int fd):
    """Whether ``fileobj`` no longer stands for ``fd`` (it was closed). An int
    or None cannot tell, so it never counts as gone."""
    if fileobj is None or isinstance(fileobj, int):
        return False
    try:
        return int(fileobj.fileno()) != fd
    except Exception:
        return True


cdef str direction_name(uint32_t direction):
    return "reading" if direction == RIO_IN else "writing"


cdef class Registration:
    def __cinit__(self, int fd):
        self.fd = fd

    cdef uint32_t wanted(self) noexcept:
        cdef uint32_t want = 0
        if self.reader_task is not None or self.reader_handle is not None:
            want |= RIO_IN
        if self.writer_task is not None or self.writer_handle is not None:
            want |= RIO_OUT
        return want

    cdef bint occupied(self, uint32_t direction) noexcept:
        return self.wanted() & direction != 0

    def __repr__(self):
        reader = self.reader_task if self.reader_task is not None else self.reader_handle
        writer = self.writer_task if self.writer_task is not None else self.writer_handle
        return f"<Registration fd={self.fd} reader={reader!r} writer={writer!r}>"


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
        """The fds the poller watches."""
        return self.watched

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
        self.registrations = {}
        self.watched = 0
        return 0

    # ---- the driver

    cdef int notify(self) except -1:
        """Wake a wait blocked in another thread. Safe from any thread (GIL held)."""
        cdef char byte = 1
        if self.wake_pending or self.wake_write_fd < 0:
            return 0
        self.wake_pending = True
        # No GIL release: a one-byte write to a non-blocking pipe cannot block,
        # and handing the GIL over here would let the runtime finish while the
        # waking thread still holds references in its frame.
        rio_write(self.wake_write_fd, &byte, 1)   # EAGAIN: full, a wake is pending anyway
        return 0

    cdef int turn(self, int timeout_ms, Ring *ready) except -1:
        """Wait for events (timeout_ms: -1 for ever, 0 not at all), then wake
        each event's parked tasks and queue its handles on ``ready``. A
        direction that is watched but has no waiter is dropped (lazy interest).
        The wake pipe is drained here."""
        cdef int n, i
        cdef char buf[256]
        cdef rio_poller *poller = self.poller
        cdef Registration reg
        cdef object task
        cdef uint32_t events, stale
        if poller == NULL:
            raise RuntimeError("reactor is closed")
        if timeout_ms == 0:
            # a busy loop's poll returns at once: keeping the GIL spares a
            # release and a re-take (a mutex and a condition each) per poll
            n = rio_poller_wait(poller, self.events, self.max_events, 0)
        else:
            with nogil:
                n = rio_poller_wait(poller, self.events, self.max_events, timeout_ms)
        self.waits += 1
        if n < 0:
            if errno == EINTR:
                PyErr_CheckSignals()
                return 0
            PyErr_SetFromErrno(OSError)
        for i in range(n):
            if self.events[i].ptr == NULL:
                self.wake_pending = False
                while rio_read(self.wake_read_fd, buf, sizeof(buf)) > 0:
                    pass
                continue
            reg = <Registration>self.events[i].ptr
            events = self.events[i].events
            # An error or hangup reaches both waiters, but it makes only a
            # watched direction stale: a writer's hangup must not cost the
            # writer its lazily kept interest (WSAPoll reports a peer's FIN as
            # a hangup on every wait; see rio_poll.h).
            stale = 0
            if events & (RIO_IN | RIO_ERR | RIO_HUP):
                if reg.reader_task is not None:         # one-shot: fire and free the slot
                    task = reg.reader_task
                    reg.reader_task = None
                    reg.fired |= RIO_IN
                    self.wake(task)
                elif reg.reader_handle is not None:     # persistent: queue on every event
                    ring_push(ready, reg.reader_handle)
                else:
                    stale |= reg.kernel_events & RIO_IN
            if events & (RIO_OUT | RIO_ERR | RIO_HUP):
                if reg.writer_task is not None:
                    task = reg.writer_task
                    reg.writer_task = None
                    reg.fired |= RIO_OUT
                    self.wake(task)
                elif reg.writer_handle is not None:
                    ring_push(ready, reg.writer_handle)
                else:
                    stale |= reg.kernel_events & RIO_OUT
            if stale:
                # readiness nobody waits for: stop watching that direction
                self.set_interest(reg, (reg.kernel_events & ~stale) | reg.wanted())
        return 0

    # ---- parked tasks

    cdef Registration park(self, int fd, uint32_t direction, object task, bint revalidate,
                           object fileobj):
        """Park ``task`` as the one-shot waiter of ``fd`` in ``direction``;
        None when another waiter holds that slot. ``revalidate``: re-send the
        interest to the kernel (an fd rio does not own may have been reused)."""
        cdef Registration reg = self.registration_for(fd, fileobj)
        if direction == RIO_IN:
            if reg.reader_handle is not None or (
                    reg.reader_task is not None and reg.reader_task is not task):
                return None
            reg.reader_task = task
        else:
            if reg.writer_handle is not None or (
                    reg.writer_task is not None and reg.writer_task is not task):
                return None
            reg.writer_task = task
        reg.fired &= ~direction
        self.watch(reg, revalidate)
        return reg

    cdef WaitOutcome repoll(self, Registration reg, unsigned int generation, uint32_t direction,
                            object task) except *:
        """A task parked on ``reg`` (in ``generation``) is polled again: did its
        readiness arrive, or was the fd forgotten meanwhile?"""
        if reg.generation != generation:
            return WAIT_CLOSED
        if reg.fired & direction:
            reg.fired &= ~direction
            if reg.fileobj is not None and fileobj_gone(reg.fileobj, reg.fd):
                # the object was closed under the wait: under poll(2)/WSAPoll
                # the readiness may be that of a new socket that reused the
                # number, reported before its first wait could mark this one
                # stale. Not ours: forget the fd, as the next wait would.
                self.discard(reg)
                return WAIT_CLOSED
            return WAIT_FIRED
        # a spurious wake: still parked (perhaps polled by another task now)
        if direction == RIO_IN:
            reg.reader_task = task
        else:
            reg.writer_task = task
        return WAIT_PARKED

    cdef int unpark(self, Registration reg, unsigned int generation, uint32_t direction,
                    object task) except -1:
        """``task`` stops waiting (cancelled, or the await was dropped): free
        its slot and bring the interest back to the remaining waiters."""
        if reg.generation != generation:
            return 0        # forgotten meanwhile: nothing of ours is left
        if direction == RIO_IN:
            if reg.reader_task is task:
                reg.reader_task = None
        elif reg.writer_task is task:
            reg.writer_task = None
        reg.fired &= ~direction
        return self.set_interest(reg, reg.wanted())

    cdef int close_fd(self, int fd) except -1:
        """``fd`` is about to be closed (notify_closing): forget it; its parked
        tasks wake and get ClosedResourceError."""
        cdef Registration reg = self.registrations.get(fd)
        if reg is not None:
            self.discard(reg)
        return 0

    cdef int adopt(self, int fd) except -1:
        """rio takes ownership of ``fd`` (a new socket): forget whatever a
        previous, plainly closed fd with this number left behind."""
        return self.close_fd(fd)

    # ---- persistent handles (the asyncio door)

    cdef Handle set_handle(self, object fileobj, uint32_t direction, Handle handle):
        """Make ``handle`` the reader (RIO_IN) or writer (RIO_OUT) of the fd;
        returns the handle it replaces (the caller cancels it), or None. The
        interest is re-sent to the kernel: the fd may be a reused number."""
        cdef int fd = fileobj_fd(fileobj)
        cdef Registration reg = self.registration_for(fd, fileobj)
        cdef Handle old
        if direction == RIO_IN:
            if reg.reader_task is not None:
                raise RuntimeError(f"fd {fd} is already awaited for reading by a rio task")
            old = reg.reader_handle
            reg.reader_handle = handle
        else:
            if reg.writer_task is not None:
                raise RuntimeError(f"fd {fd} is already awaited for writing by a rio task")
            old = reg.writer_handle
            reg.writer_handle = handle
        try:
            self.watch(reg, True)
        except BaseException:
            if direction == RIO_IN:         # leave no phantom waiter behind
                reg.reader_handle = old
            else:
                reg.writer_handle = old
            self.set_interest(reg, reg.wanted())
            raise
        return old

    cdef Handle clear_handle(self, object fileobj, uint32_t direction):
        """Remove the reader (or writer) handle of the fd; returns it, or None
        when there was none. A closed object is found by identity."""
        cdef Registration reg = self.find(fileobj)
        cdef Handle old
        if reg is None:
            return None
        if direction == RIO_IN:
            old = reg.reader_handle
            reg.reader_handle = None
        else:
            old = reg.writer_handle
            reg.writer_handle = None
        if old is None:
            return None
        if reg.wanted() == 0 and fileobj_gone(reg.fileobj, reg.fd):
            self.discard(reg)           # its fd was closed: the kernel forgot it already
        else:
            self.set_interest(reg, reg.wanted())
        return old

    cdef tuple interest(self, int fd):
        """``(directions, reader_handle, writer_handle)`` of whoever waits on
        ``fd`` (parked tasks count in the directions); None when nobody does."""
        cdef Registration reg = self.registrations.get(fd)
        if reg is None or reg.wanted() == 0:
            return None
        return (reg.wanted(), reg.reader_handle, reg.writer_handle)

    cdef list watched_fds(self):
        cdef Registration reg
        return [reg.fd for reg in self.registrations.values() if reg.wanted()]

    # ---- interest policy

    cdef Registration registration_for(self, int fd, object fileobj):
        """The live registration of ``fd``, made when there is none, and made
        afresh when the one there belongs to an object that was closed."""
        cdef Registration reg = self.registrations.get(fd)
        if reg is None:
            reg = Registration(fd)
            self.registrations[fd] = reg
        elif reg.fileobj is not fileobj and fileobj_gone(reg.fileobj, fd):
            self.discard(reg)
        if fileobj is not None:
            reg.fileobj = fileobj
        return reg

    cdef Registration find(self, object fileobj):
        """The registration ``fileobj`` was registered with: by its fd, or, when
        it has none any more (closed), by identity, as selectors does. None
        when there is none; ValueError for an invalid object never registered."""
        cdef Registration reg
        try:
            reg = self.registrations.get(fileobj_fd(fileobj))
            return reg if reg is not None and reg.wanted() else None
        except ValueError:
            for reg in self.registrations.values():
                if reg.fileobj is fileobj:
                    return reg
            raise

    cdef int watch(self, Registration reg, bint revalidate) except -1:
        """Make the poller watch every direction that has a waiter (keeping
        what it already watches). ``revalidate`` re-sends it even when the
        kernel should hold it already."""
        cdef uint32_t want = reg.kernel_events | reg.wanted()
        if want != reg.kernel_events or revalidate:
            if rio_poller_ctl(self.poller, reg.fd, want, <void *>reg, reg.kernel_events) < 0:
                PyErr_SetFromErrno(OSError)
            self.set_kernel_events(reg, want)
        return 0

    cdef int set_interest(self, Registration reg, uint32_t want) except -1:
        """Make the poller watch exactly ``want`` (0: not at all). Lowering the
        interest of an fd the kernel forgot (closed) is no error."""
        if want != reg.kernel_events:
            if rio_poller_ctl(self.poller, reg.fd, want, <void *>reg, reg.kernel_events) < 0:
                if (errno != EBADF and errno != ENOENT) or want & ~reg.kernel_events:
                    PyErr_SetFromErrno(OSError)
            self.set_kernel_events(reg, want)
        if reg.wanted() == 0:
            reg.fileobj = None      # nobody waits: keep no closed socket alive
        return 0

    cdef int set_kernel_events(self, Registration reg, uint32_t events) noexcept:
        if (reg.kernel_events == 0) != (events == 0):
            self.watched += 1 if events else -1
        reg.kernel_events = events
        return 0

    cdef int discard(self, Registration reg) except -1:
        """Forget the fd (it is closing, or was closed under us): out of the
        poller; a new generation, so waits of the old one fail; its parked
        tasks wake (and get ClosedResourceError) and its handles are cancelled."""
        cdef object reader = reg.reader_task, writer = reg.writer_task
        cdef Handle reader_handle = reg.reader_handle, writer_handle = reg.writer_handle
        reg.generation += 1
        reg.fired = 0
        reg.fileobj = None
        reg.reader_task = reg.writer_task = None
        reg.reader_handle = reg.writer_handle = None
        if reg.kernel_events != 0 and self.poller != NULL:
            # an fd closed under us is gone from the poller already (ENOENT,
            # EBADF: ignored), unless another descriptor keeps its file open;
            # a late event of that kind then finds no waiter here
            rio_poller_ctl(self.poller, reg.fd, 0, <void *>reg, reg.kernel_events)
        self.set_kernel_events(reg, 0)
        if reader is not None:
            self.wake(reader)
        if writer is not None:
            self.wake(writer)
        if reader_handle is not None:
            reader_handle.cancel()
        if writer_handle is not None:
            writer_handle.cancel()
        return 0
