# cython: language_level=3
"""Leaf futures: the ``poll(cx)`` protocol, and the engine's own time futures.

A leaf future is its own awaitable iterator. Awaiting it in a rio task polls
it (``_poll``, in C for the engine's futures; ``poll(cx)`` for a user's Python
subclass): ``Ready(value)`` ends the await with the value, ``PENDING`` parks
the task through the scheduler's one trap (rio_core._runtime) until somebody
wakes ``cx.waker``. Spurious wakes are allowed: the future is polled again.

Awaited by asyncio code on rio's loop (no rio task is current), a future is
polled by a hidden "bridge" rio task, and the asyncio task waits for that
task to finish; throw()/close() cancel the bridge.

``Sleep`` arms a timer through the time driver (``arm_wake``) and drops it
when the awaiting task is cancelled or the await is abandoned, so nothing
wakes the task later. ``Sleep.reset`` moves the deadline: an armed timer is
cancelled and a new one armed for the same waiter (a heap entry's deadline
is fixed once armed), so exactly one timer stays armed per Sleep.

``Interval`` is a Sleep whose deadline the interval moves after every tick,
with tokio's ``MissedTickBehavior`` for ticks taken late; a tick's state
changes only in the poll that returns it, so a cancelled ``tick()`` loses
nothing. It lives here, above the scheduler, and not in the
time driver's module: Cython's cimport graph must be acyclic, and a leaf
future needs the scheduler's Task while the scheduler needs the time driver.
Changing the timer structure touches only rio_core._time.
"""

cimport cython
from libc.stdint cimport int64_t

from rio_core._runtime cimport (
    Task, Runtime, Context, Ready, PENDING_, READY_NONE, TASK_DONE, reraise,
    current_task_or_none, current_runtime_or_none, current_clock_ns,
)
from rio_core._time cimport (
    TimeDriver, TimerHandle, TIMER_ARMED, TIMER_FIRED, DEADLINE_NEVER_NS,
    checked_seconds, deadline_ns_of, deadline_ns_from_seconds,
)

from rio_core._runtime import _await_it
from rio_core._runtime cimport asyncio_join_future, set_stop_value

cdef extern from "rio.h":
    bint RIO_DEBUG_ENABLED

# Debug-build leak counter (rio_core.debug_counters()).
cdef Py_ssize_t live_sleeps_count = 0


def _debug_live_sleeps():
    return live_sleeps_count


cdef int64_t deadline_in(double seconds) noexcept:
    """``seconds`` (already checked) from now on the running runtime's clock;
    DEADLINE_NEVER_NS when the sum would overflow."""
    cdef int64_t deadline = current_clock_ns() + deadline_ns_from_seconds(seconds)
    return deadline if deadline >= 0 else DEADLINE_NEVER_NS


# --------------------------------------------------------------------------- the protocol

cdef class Future:
    """Base class for leaf futures: implement ``poll(cx)`` returning
    ``Ready(value)`` or ``PENDING``; keep ``cx.waker`` and wake it when
    the future may have become ready.

    A Future is its own awaitable iterator: awaiting it polls it.
    """

    def poll(self, cx):
        raise NotImplementedError(f"{type(self).__name__} must implement poll(cx)")

    cdef object _poll(self, Task task):
        return self.poll(task.get_cx())

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        cdef Task task = current_task_or_none()
        cdef Task bridge
        cdef Runtime rt
        if task is None:
            # awaited by asyncio code on rio's loop: a hidden rio task polls us
            bridge = self.bridge
            if bridge is None:
                rt = current_runtime_or_none()
                if rt is None:
                    raise RuntimeError(
                        f"{type(self).__name__} can only be awaited inside a rio task "
                        "or on a running rio event loop")
                bridge = rt.spawn_task(_await_it(self), None)
                self.bridge = bridge
            if bridge.state != TASK_DONE:
                return asyncio_join_future(bridge)
            self.bridge = None
            value = bridge.result()
            if value is not None:
                set_stop_value(value)
            raise StopIteration
        r = self._poll(task)
        if r is PENDING_:
            return PENDING_
        if type(r) is Ready:
            if (<Ready>r).value is not None:
                set_stop_value((<Ready>r).value)
            raise StopIteration     # returns NULL with the value set above
        raise TypeError(
            f"{type(self).__name__}.poll() must return rio_rt.Ready(value) or "
            f"rio_rt.PENDING, got {r!r}")

    def send(self, value):
        return self.__next__()

    def throw(self, typ, val=None, tb=None):
        self.drop_bridge()
        reraise(typ, val, tb)

    def close(self):
        self.drop_bridge()

    cdef int drop_bridge(self) except -1:
        """The asyncio awaiter went away: stop the hidden task polling us."""
        cdef Task bridge = self.bridge
        if bridge is not None:
            self.bridge = None
            bridge.cancel()
        return 0


# --------------------------------------------------------------------------- time

cdef class Sleep(Future):
    """A leaf future ready ``seconds`` after it was created.

    Cancellation-safe: when the awaiting task is cancelled (or the await is
    abandoned) the timer entry is cancelled, so nothing wakes the task later.
    """

    def __cinit__(self):
        if RIO_DEBUG_ENABLED:
            global live_sleeps_count
            live_sleeps_count += 1

    def __dealloc__(self):
        if RIO_DEBUG_ENABLED:
            global live_sleeps_count
            live_sleeps_count -= 1

    def __init__(self, seconds):
        self.deadline_ns = deadline_in(checked_seconds(seconds, "seconds"))

    @staticmethod
    def until(deadline):
        """A Sleep ready at ``deadline`` (seconds of ``rio_rt.monotonic()``)."""
        cdef Sleep s = Sleep.__new__(Sleep)
        s.deadline_ns = deadline_ns_of(deadline, "deadline")
        return s

    @property
    def deadline(self):
        """The deadline, in seconds of ``rio_rt.monotonic()``."""
        return self.deadline_ns / 1e9

    def reset(self, deadline):
        """Move the deadline to ``deadline`` (seconds of ``rio_rt.monotonic()``),
        earlier or later. A task waiting on this Sleep wakes at the new deadline;
        an elapsed Sleep becomes pending again (until the new deadline)."""
        self.reset_ns(deadline_ns_of(deadline, "deadline"))

    def is_elapsed(self):
        """Whether the runtime clock has reached the deadline."""
        return current_clock_ns() >= self.deadline_ns

    cdef int reset_ns(self, int64_t deadline_ns) except -1:
        """Move the deadline. An armed timer is replaced through its driver
        (cancel, then ``arm_wake`` for the same waiter); a fired one is
        forgotten, so the next poll compares with the new deadline."""
        cdef TimerHandle timer = self.timer
        cdef TimeDriver driver
        cdef object waiter
        self.deadline_ns = deadline_ns
        if timer is None:
            return 0
        if timer.state == TIMER_ARMED and timer.deadline_ns == deadline_ns:
            return 0
        self.timer = None
        if timer.state == TIMER_ARMED:
            driver = timer.driver
            waiter = timer.waiter
            timer.cancel()
            if waiter is not None:
                self.timer = driver.arm_wake(deadline_ns, waiter)
        return 0

    cdef object _poll(self, Task task):
        cdef TimeDriver time_driver = task.rt.time_driver
        cdef TimerHandle timer = self.timer
        if timer is not None and timer.state == TIMER_FIRED:
            return READY_NONE
        if time_driver.now_ns() >= self.deadline_ns:
            self.disarm()
            return READY_NONE
        if timer is not None and timer.state == TIMER_ARMED:
            timer.waiter = task          # re-target if a different task awaits now
            return PENDING_
        self.timer = time_driver.arm_wake(self.deadline_ns, task)
        return PENDING_

    def poll(self, cx):
        if not isinstance(cx, Context):
            raise TypeError(f"poll() expects a rio Context, got {type(cx).__name__}")
        return self._poll((<Context>cx).waker.task)

    cdef int disarm(self) except -1:
        cdef TimerHandle timer = self.timer
        if timer is not None:
            self.timer = None
            if timer.state == TIMER_ARMED:
                timer.cancel()
        return 0

    def throw(self, typ, val=None, tb=None):
        self.disarm()
        self.drop_bridge()
        reraise(typ, val, tb)

    def close(self):
        self.disarm()
        self.drop_bridge()

    def __repr__(self):
        return f"<rio Sleep until {self.deadline_ns / 1e9:.6f}>"


# --------------------------------------------------------------------------- interval

# A tick taken no later than this after its deadline is on time (tokio's 5 ms).
cdef int64_t MISSED_TOLERANCE_NS = 5_000_000

cdef tuple MISSED_TICK_NAMES = ("burst", "delay", "skip")


cdef inline int64_t add_ns(int64_t a, int64_t b) noexcept:
    """``a + b`` for a, b in [0, DEADLINE_NEVER_NS], saturating at "never"."""
    cdef int64_t total = a + b
    return total if total < <int64_t>DEADLINE_NEVER_NS else DEADLINE_NEVER_NS


cdef int missed_tick_of(object name) except -1:
    """A MissedTick from its name (a ValueError for any other object)."""
    if isinstance(name, str):
        if name == "burst":
            return MISSED_BURST
        if name == "delay":
            return MISSED_DELAY
        if name == "skip":
            return MISSED_SKIP
    raise ValueError(f"missed_tick must be one of 'burst', 'delay' or 'skip', "
                     f"got {name!r:.60}")


cdef class Interval:
    """Ticks every ``period`` seconds; the first tick is immediate (tokio's
    ``interval``). ``await tick()`` returns the deadline the tick was due at.

    Ticks taken late (more than 5 ms after their deadline) follow
    ``missed_tick``: ``"burst"`` fires the missed ticks back to back on the
    original grid, ``"delay"`` schedules the next tick one period after the late
    one was taken, ``"skip"`` schedules it at the next grid point after now.
    """

    def __init__(self, period, *, missed_tick="burst"):
        cdef double seconds = checked_seconds(period, "period")
        cdef Sleep delay
        if not seconds > 0:
            raise ValueError(f"period must be a positive number of seconds, got {period!r}")
        self.missed = <MissedTick>missed_tick_of(missed_tick)
        self.period_ns = deadline_ns_from_seconds(seconds)
        if self.period_ns < 1:
            self.period_ns = 1
        delay = Sleep.__new__(Sleep)
        delay.deadline_ns = current_clock_ns()
        self.delay = delay

    @property
    def period(self):
        """The period, in seconds."""
        return self.period_ns / 1e9

    @property
    def missed_tick(self):
        """``"burst"``, ``"delay"`` or ``"skip"``."""
        return MISSED_TICK_NAMES[<int>self.missed]

    @property
    def deadline(self):
        """When the next tick is due, in seconds of ``rio_rt.monotonic()``."""
        return self.delay.deadline_ns / 1e9

    def tick(self):
        """An awaitable: waits for the next tick and returns the deadline it
        was due at. Cancel-safe: a cancelled tick() loses no tick."""
        cdef IntervalTick t = IntervalTick.__new__(IntervalTick)
        t.interval = self
        return t

    def reset(self):
        """The next tick is due one period from now."""
        self.delay.reset_ns(add_ns(current_clock_ns(), self.period_ns))

    def __aiter__(self):
        return self

    def __anext__(self):
        return self.tick()

    cdef object _take(self, Task task):
        """Poll for the next tick: PENDING, or Ready(its deadline) with the
        following deadline set (tokio's poll_tick)."""
        cdef Sleep delay = self.delay
        cdef int64_t due, now, following
        cdef Ready ready
        if delay._poll(task) is PENDING_:
            return PENDING_
        due = delay.deadline_ns
        now = task.rt.time_driver.now_ns()
        if now > due + MISSED_TOLERANCE_NS and self.missed != MISSED_BURST:
            if self.missed == MISSED_DELAY:
                following = add_ns(now, self.period_ns)
            else:
                following = add_ns(now, self.period_ns - (now - due) % self.period_ns)
        else:
            following = add_ns(due, self.period_ns)
        delay.reset_ns(following)
        ready = Ready.__new__(Ready)
        ready.value = due / 1e9
        return ready

    def __repr__(self):
        return (f"<rio Interval period={self.period_ns / 1e9!r} "
                f"missed_tick={self.missed_tick!r} next={self.delay.deadline_ns / 1e9:.6f}>")


cdef class IntervalTick(Future):
    """One ``Interval.tick()``: a leaf future ready with the tick's deadline."""

    cdef object _poll(self, Task task):
        return self.interval._take(task)

    def poll(self, cx):
        if not isinstance(cx, Context):
            raise TypeError(f"poll() expects a rio Context, got {type(cx).__name__}")
        return self._poll((<Context>cx).waker.task)

    def throw(self, typ, val=None, tb=None):
        self.interval.delay.disarm()
        self.drop_bridge()
        reraise(typ, val, tb)

    def close(self):
        self.interval.delay.disarm()
        self.drop_bridge()


def interval(period, *, missed_tick="burst"):
    """An ``Interval`` ticking every ``period`` seconds, the first tick at once."""
    return Interval(period, missed_tick=missed_tick)


@cython.final
@cython.freelist(64)
cdef class YieldNow:
    """Awaitable that yields to the runtime once (re-queued at the back)."""
    cdef bint yielded

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        if self.yielded:
            raise StopIteration
        self.yielded = True
        return None


def yield_now():
    """Let every other ready task run once, then continue."""
    return YieldNow.__new__(YieldNow)


def sleep(seconds):
    """Sleep for ``seconds`` (never less). ``seconds <= 0`` yields once."""
    cdef double delay = checked_seconds(seconds, "seconds")
    cdef Sleep s
    if delay <= 0:
        return YieldNow.__new__(YieldNow)
    s = Sleep.__new__(Sleep)
    s.deadline_ns = deadline_in(delay)
    return s


def sleep_until(deadline):
    """Sleep until ``deadline`` (seconds of ``rio_rt.monotonic()``)."""
    return Sleep.until(deadline)


# --------------------------------------------------------------------------- the clock

def monotonic():
    """The runtime clock in seconds: time.monotonic()'s clock, ahead of it only
    while an autojump test clock has jumped. (On Windows it is
    QueryPerformanceCounter, which time.monotonic() reads from CPython 3.13 on;
    earlier versions read a 15.6 ms tick of the same clock.)"""
    return current_clock_ns() / 1e9


def monotonic_ns():
    return current_clock_ns()
