# cython: language_level=3
"""The time driver: the clock, deadlines, and one binary min-heap of timers
for ``Sleep`` and for ``call_later``/``call_at``.

Design note
-----------
- Everything about time goes through ``TimeDriver``: reading the clock
  (``now_ns``), turning a user's seconds into a deadline (``checked_seconds``:
  the one place that rejects bad values; ``deadline_ns_from_seconds``, and
  ``deadline_ns_of`` for absolute times), arming (``arm``: every timer, whoever
  builds it), cancelling (``note_cancelled``: the one place that counts dead
  entries), firing (``fire_due``) and the reactor's timeout (``park_timeout_ms``).
- Entries are ``(deadline_ns, seq)`` keys in a flat C array of structs, so a
  sift compares integers in contiguous memory and never touches a Python
  object. ``seq`` breaks ties in insertion order (FIFO for equal deadlines).
- Insert is O(log n). Cancel is O(1): it only marks the handle
  ``TIMER_CANCELLED`` and counts it. Most timers are cancelled before they fire
  (timeouts that did not expire, sleeps of cancelled tasks), so removing them
  eagerly would pay O(log n) plus an index map for nothing. Cancelled entries
  are dropped when they reach the top, and ``compact()`` rebuilds the heap
  (O(n) heapify) once more than half of a large heap is dead, so memory stays
  bounded by twice the live timers.
- Deadlines are nanoseconds of CLOCK_MONOTONIC (int64: ~292 years). A timer
  fires only when ``now_ns >= deadline_ns``: never early.
- The driver sits below the scheduler: it wakes a timer's waiter through
  the wake function the scheduler gave it and queues a callback timer on the ready queue it is
  handed, without knowing what a task is.
- The test clock, ``MockClock``: virtual time that runs at ``rate`` times
  real time (0: frozen) and moves by ``jump``. Its autojump (the clock jumps to
  the next deadline once every task has been blocked for ``autojump_threshold``
  seconds of real time) is decided by the scheduler, which alone knows whether
  work is pending (rio_core._runtime, ``park_idle``); the driver only converts
  virtual timeouts into real ones (``park_timeout_ms``) and performs the jump
  (``jump_to_next_deadline``).
"""

from libc.math cimport isnan, INFINITY
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.object cimport PyObject

from rio_core._queue cimport ring_push
from rio_core._handle cimport Handle

cdef extern from "rio.h":
    bint RIO_DEBUG_ENABLED
    int64_t rio_monotonic_ns() nogil

cdef Py_ssize_t COMPACT_MIN_SIZE = 64
# The longest single reactor wait: a day (any later deadline is re-checked then).
cdef int MAX_PARK_MS = 86_400_000


# --------------------------------------------------------------------------- deadlines

cdef int64_t deadline_ns_from_seconds(double seconds) noexcept:
    """Seconds of a runtime clock -> a heap deadline: rounded up (a timer never
    fires early), 0 for any time not after the clock's zero (-inf included), and
    DEADLINE_NEVER_NS from 9.2e9 s (292 years; +inf included). NaN is the
    caller's to refuse first (checked_seconds)."""
    if seconds >= 9.2e9:
        return DEADLINE_NEVER_NS
    if seconds <= 0:
        return 0
    return <int64_t>(seconds * 1e9 + 0.999999)


cdef double checked_seconds(object seconds, str what) except? -1.0:
    """A user's number of seconds (a delay or a deadline) as a double: a
    TypeError for anything that is not a real number (bool included), a
    ValueError for NaN. Infinities are allowed: +inf is never, -inf is now."""
    cdef double value
    if isinstance(seconds, bool):
        raise TypeError(f"{what} must be a number of seconds, got bool {seconds!r}")
    try:
        value = seconds
    except TypeError:
        raise TypeError(f"{what} must be a number of seconds, "
                        f"got {type(seconds).__name__} {seconds!r:.60}") from None
    if isnan(value):
        raise ValueError(f"{what} must not be NaN")
    return value


cdef int64_t deadline_ns_of(object when, str what) except? -1:
    """An absolute deadline in seconds of the runtime clock, checked, in ns."""
    return deadline_ns_from_seconds(checked_seconds(when, what))


cdef int64_t checked_deadline_ns(double when, str what) except? -1:
    """The same for a deadline that is already a C double (the asyncio door's
    call_at/call_later): only NaN is left to refuse."""
    if isnan(when):
        raise ValueError(f"{what} must not be NaN")
    return deadline_ns_from_seconds(when)


def check_seconds(seconds, what="seconds"):
    """``float(seconds)`` after the engine's checks (TypeError for a non-number
    or a bool, ValueError for NaN); None passes through (no deadline)."""
    if seconds is None:
        return None
    return checked_seconds(seconds, what)


# --------------------------------------------------------------------------- the test clock

cdef class MockClock:
    """A test clock for ``Runtime(clock=...)`` and ``rio_rt.new_event_loop(clock=...)``.

    Virtual time starts at the real ``time.monotonic()`` of its creation and runs
    at ``rate`` times real time (0.0: it stands still). ``jump(seconds)`` moves it
    forward. When every task of the runtime has been blocked for
    ``autojump_threshold`` seconds of real time (and no blocking-pool job,
    cross-thread wake or ready I/O is pending), the clock jumps to the next
    deadline; ``math.inf`` turns that off.
    """

    def __init__(self, rate=0.0, autojump_threshold=0.0):
        self.real_anchor_ns = rio_monotonic_ns()
        self.virtual_anchor_ns = self.real_anchor_ns
        self.rate = rate
        self.autojump_threshold = autojump_threshold

    cdef int64_t now_ns(self) noexcept:
        if self.rate_ == 0.0:
            return self.virtual_anchor_ns
        return self.virtual_anchor_ns + <int64_t>(
            (rio_monotonic_ns() - self.real_anchor_ns) * self.rate_)

    cdef int reanchor(self) except -1:
        cdef int64_t now = self.now_ns()
        self.real_anchor_ns = rio_monotonic_ns()
        self.virtual_anchor_ns = now
        return 0

    cdef int jump_ns(self, int64_t delta_ns) except -1:
        self.reanchor()
        self.virtual_anchor_ns += delta_ns
        return 0

    @property
    def rate(self):
        """Virtual seconds per real second (>= 0)."""
        return self.rate_

    @rate.setter
    def rate(self, value):
        cdef double rate = checked_seconds(value, "rate")
        if rate < 0 or rate == INFINITY:
            raise ValueError(f"rate must be a finite number >= 0, got {value!r}")
        self.reanchor()
        self.rate_ = rate

    @property
    def autojump_threshold(self):
        """Real seconds every task must have been blocked before the clock jumps."""
        return self.threshold_s

    @autojump_threshold.setter
    def autojump_threshold(self, value):
        cdef double threshold = checked_seconds(value, "autojump_threshold")
        if threshold < 0:
            raise ValueError(f"autojump_threshold must be >= 0, got {value!r}")
        self.threshold_s = threshold

    def current_time(self):
        """The virtual time, in seconds."""
        return self.now_ns() / 1e9

    def jump(self, seconds):
        """Move the clock ``seconds`` forward (timers now due fire at the
        runtime's next tick)."""
        cdef double delta = checked_seconds(seconds, "seconds")
        if delta < 0:
            raise ValueError(f"time only moves forward: jump({seconds!r})")
        if delta == INFINITY:
            raise ValueError("cannot jump by an infinite time")
        self.jump_ns(<int64_t>(delta * 1e9))

    def __repr__(self):
        return (f"<rio MockClock time={self.current_time():.6f} rate={self.rate_} "
                f"autojump_threshold={self.threshold_s}>")


# --------------------------------------------------------------------------- handles

# (No freelist: Cython keeps freelists for base classes only; Handle has one.)
cdef class TimerHandle(Handle):
    def cancel(self):
        """Cancel the timer. O(1): the driver drops the entry lazily."""
        if self.state == TIMER_ARMED:
            self.driver.note_cancelled(self)
        elif self.state == TIMER_IDLE:
            self.state = TIMER_CANCELLED
        self.cancelled_flag = True
        self.waiter = None
        self.callback = None
        self.args = None

    def when(self):
        """The deadline, in seconds of the runtime clock."""
        if self.when_seconds != 0.0:
            return self.when_seconds
        return self.deadline_ns / 1e9

    cdef list repr_info(self, object callback, tuple args):
        info = Handle.repr_info(self, callback, args)
        info.insert(2 if self.cancelled_flag else 1, f"when={self.when()}")
        return info


cdef inline bint slot_less(HeapSlot *a, HeapSlot *b) noexcept:
    if a.deadline_ns != b.deadline_ns:
        return a.deadline_ns < b.deadline_ns
    return a.seq < b.seq


cdef inline void sift_up(HeapSlot *slots, Py_ssize_t pos) noexcept:
    cdef HeapSlot item = slots[pos]
    cdef Py_ssize_t parent
    while pos > 0:
        parent = (pos - 1) >> 1
        if slot_less(&item, &slots[parent]):
            slots[pos] = slots[parent]
            pos = parent
        else:
            break
    slots[pos] = item


cdef inline void sift_down(HeapSlot *slots, Py_ssize_t size, Py_ssize_t pos) noexcept:
    cdef HeapSlot item = slots[pos]
    cdef Py_ssize_t child
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and slot_less(&slots[child + 1], &slots[child]):
            child += 1
        if slot_less(&slots[child], &item):
            slots[pos] = slots[child]
            pos = child
        else:
            break
    slots[pos] = item


# --------------------------------------------------------------------------- the driver

cdef class TimeDriver:
    """The runtime's clock and timers (engine-internal; ``len()`` is the live timers)."""

    def __cinit__(self):
        self.capacity = 64
        self.slots = <HeapSlot *>PyMem_Malloc(self.capacity * sizeof(HeapSlot))
        if self.slots == NULL:
            raise MemoryError()
        self.size = 0
        self.next_seq = 0
        self.cancelled = 0

    def __dealloc__(self):
        self.clear()
        PyMem_Free(self.slots)

    def __len__(self):
        return self.size - self.cancelled

    # ---- the clock

    cdef int64_t now_ns(self) noexcept:
        if self.clock is None:
            return rio_monotonic_ns()
        return self.clock.now_ns()

    # ---- arming and cancelling

    cdef TimerHandle arm_wake(self, int64_t deadline_ns, object waiter):
        """Wake ``waiter`` at ``deadline_ns``."""
        cdef TimerHandle handle = TimerHandle.__new__(TimerHandle)
        handle.deadline_ns = deadline_ns
        handle.action = ACTION_WAKE
        handle.waiter = waiter
        self.arm(handle)
        return handle

    cdef TimerHandle arm_callback(self, int64_t deadline_ns, object callback, tuple args,
                                  object context):
        """Queue ``callback(*args)`` (in ``context``) at ``deadline_ns``."""
        cdef TimerHandle handle = TimerHandle.__new__(TimerHandle)
        handle.deadline_ns = deadline_ns
        handle.action = ACTION_CALLBACK
        handle.callback = callback
        handle.args = args
        handle.context = context
        self.arm(handle)
        return handle

    cdef int arm(self, TimerHandle handle) except -1:
        """Put an idle handle in the heap (every timer is armed here)."""
        cdef HeapSlot *grown
        if handle.state != TIMER_IDLE:
            raise RuntimeError("timer handle is already armed or finished")
        if self.size == self.capacity:
            grown = <HeapSlot *>PyMem_Realloc(self.slots, 2 * self.capacity * sizeof(HeapSlot))
            if grown == NULL:
                raise MemoryError()
            self.slots = grown
            self.capacity *= 2
        if self.cancelled * 2 > self.size and self.size >= COMPACT_MIN_SIZE:
            # Timers armed and cancelled in a burst, with no tick in between
            # (a timeout per request, call_later(...).cancel() churn): drop the
            # dead half now, so memory and the GC's work stay bounded by the
            # live timers. Amortised O(1): every pass halves the heap at least.
            self.compact()
        Py_INCREF(handle)
        self.slots[self.size].deadline_ns = handle.deadline_ns
        self.slots[self.size].seq = self.next_seq
        self.slots[self.size].handle = <PyObject *>handle
        self.next_seq += 1
        self.size += 1
        sift_up(self.slots, self.size - 1)
        handle.state = TIMER_ARMED
        handle.driver = self
        return 0

    cdef int note_cancelled(self, TimerHandle handle) except -1:
        """An armed handle was cancelled: count it; the heap drops it lazily."""
        if RIO_DEBUG_ENABLED:
            assert handle.state == TIMER_ARMED and handle.driver is self, "not armed here"
        handle.state = TIMER_CANCELLED
        self.cancelled += 1
        # The heap still owns the handle until it drops it; the back-reference
        # is not needed any more, and keeping it would make a cycle
        # (driver -> handle -> driver) that no GC can see.
        handle.driver = None
        return 0

    # ---- firing

    cdef int fire_due(self, Ring *ready) except -1:
        """Fire every timer whose deadline has passed: wake its waiter, or
        queue its handle on ``ready``."""
        cdef PyObject *top
        cdef TimerHandle handle
        cdef object waiter
        cdef int64_t now
        if self.size == 0:
            return 0
        now = self.now_ns()
        while self.size > 0:
            top = self.slots[0].handle
            if (<TimerHandle>top).state == TIMER_CANCELLED:
                self.drop_cancelled_top()
                continue
            if self.slots[0].deadline_ns > now:
                break
            self.pop_top()
            handle = <TimerHandle>top
            Py_DECREF(handle)      # `handle` holds its own reference now
            handle.state = TIMER_FIRED
            handle.driver = None
            if handle.action == ACTION_WAKE:
                waiter = handle.waiter
                handle.waiter = None
                if waiter is not None:
                    self.wake(waiter)
            else:
                ring_push(ready, handle)
        return self.compact()

    cdef int park_timeout_ms(self) except? -2:
        """How long (real milliseconds) the reactor may block when nothing is
        ready: -1 for ever (no timer, or a frozen test clock: only a jump moves
        it), 0 when a timer is due, else the time to the next deadline, rounded
        up (never early)."""
        cdef int64_t deadline = self.next_deadline()
        cdef int64_t delta
        cdef double real
        if deadline < 0:
            return -1
        delta = deadline - self.now_ns()
        if delta <= 0:
            return 0
        if self.clock is not None:
            if self.clock.rate_ == 0.0:
                return -1
            real = delta / self.clock.rate_
            if real >= MAX_PARK_MS * 1e6:
                return MAX_PARK_MS
            delta = <int64_t>real + 1
        delta = (delta + 999_999) // 1_000_000
        return <int>delta if delta < MAX_PARK_MS else MAX_PARK_MS

    cdef bint jump_to_next_deadline(self) except -1:
        """Move the test clock to the next live deadline; False when there is
        none (or no test clock, or it is not in the future)."""
        cdef int64_t deadline
        if self.clock is None:
            return False
        deadline = self.next_deadline()
        if deadline < 0 or deadline >= DEADLINE_NEVER_NS:
            return False
        deadline -= self.now_ns()
        if deadline <= 0:
            return False
        self.clock.jump_ns(deadline)
        return True

    cdef int64_t next_deadline(self) noexcept:
        """The earliest live deadline, or -1 when no timer is armed."""
        while self.size > 0:
            if (<TimerHandle>self.slots[0].handle).state != TIMER_CANCELLED:
                return self.slots[0].deadline_ns
            self.drop_cancelled_top()
        return -1

    # ---- the heap

    cdef PyObject *pop_top(self) noexcept:
        """Remove the top slot; the caller owns the returned reference."""
        cdef PyObject *top = self.slots[0].handle
        self.size -= 1
        if self.size > 0:
            self.slots[0] = self.slots[self.size]
            sift_down(self.slots, self.size, 0)
        return top

    cdef int drop_cancelled_top(self) noexcept:
        """Drop the top slot, a cancelled handle."""
        cdef PyObject *top = self.pop_top()
        self.cancelled -= 1
        Py_DECREF(<object>top)
        return 0

    cdef int compact(self) except -1:
        """Drop every cancelled entry when they are the majority of a large heap.

        The dropped handles are released only once the heap is whole again: the
        last reference to a handle can free its context, and with it objects whose
        finalizers may arm timers on this very heap.
        """
        cdef Py_ssize_t i, kept = 0, dropped = 0
        cdef PyObject *h
        cdef PyObject **dead
        if self.size < COMPACT_MIN_SIZE or self.cancelled * 2 <= self.size:
            return 0
        dead = <PyObject **>PyMem_Malloc(self.size * sizeof(PyObject *))
        if dead == NULL:
            raise MemoryError()
        for i in range(self.size):
            h = self.slots[i].handle
            if (<TimerHandle>h).state == TIMER_CANCELLED:
                dead[dropped] = h
                dropped += 1
            else:
                self.slots[kept] = self.slots[i]
                kept += 1
        self.size = kept
        self.cancelled = 0
        i = kept // 2 - 1
        while i >= 0:
            sift_down(self.slots, self.size, i)
            i -= 1
        if RIO_DEBUG_ENABLED:
            for i in range(1, self.size):
                assert not slot_less(&self.slots[i], &self.slots[(i - 1) >> 1]), "heap order"
        for i in range(dropped):
            Py_DECREF(<object>dead[i])
        PyMem_Free(dead)
        return 0

    cdef void clear(self) noexcept:
        """Cancel and drop every timer (the runtime is finished or closing)."""
        cdef PyObject *h
        while self.size > 0:
            self.size -= 1
            h = self.slots[self.size].handle
            (<TimerHandle>h).state = TIMER_CANCELLED
            (<TimerHandle>h).driver = None
            (<TimerHandle>h).cancelled_flag = True
            (<TimerHandle>h).callback = None
            (<TimerHandle>h).args = None
            (<TimerHandle>h).waiter = None
            Py_DECREF(<object>h)
        self.cancelled = 0
