"""Model-based tests of the waiter-queue primitives: Lock, Semaphore, channel.

Hypothesis generates a *schedule*: a list of operations that one controller
coroutine carries out on a fresh runtime (autojump clock). Each operation is
applied to the engine and, at the same time, to a small pure-Python reference
model that encodes the documented semantics (the opening notes and docstrings
of rio_core/_sync.pyx and rio_core/_channel.pyx):

- FIFO hand-offs: a release / freed permit / sent item goes straight to the
  first parked waiter; a queued waiter blocks later arrivals (no barging).
- A queued waiter that is cancelled leaves the queue (a Semaphore then serves
  the waiters behind it that now fit).
- A waiter that was granted but cancelled before it ran passes the grant on:
  the lock to the next waiter, the permits back, a received item to the next
  waiting receiver or back to the front of the buffer.
- Channel senders get a *reserved slot* when room appears
  (``buffer + reserved < capacity + waiting receivers``); a cancelled send
  never puts its item in the channel. Capacity 0 is a rendezvous, None is
  unbounded. Receivers see the end (ChannelClosed) once every sender handle is
  closed and the buffer, the reserved slots and the parked senders are
  drained ("nothing is lost, nobody hangs"); when every receiver is closed,
  sends fail and the buffer is dropped.

How the schedule is driven
--------------------------
Only the controller calls the synchronous operations (``release`` of a lock it
holds, ``Permit.release``, ``add_permits``, ``try_acquire``, ``try_send``,
``try_recv``, ``close``, ``clone``, ``Task.cancel``), so a grant and a cancel
can be made in the same controller step with no await in between: that is the
"granted, then cancelled before it ran" case. A ``step`` is ``await
rio.sleep(1)``: on the autojump clock it returns only once every other task is
parked, so after a step the runtime is quiescent and the model runs its own
ready queue (FIFO, as the engine's) to the same point. A ``yield`` is one
``rio.yield_now()``: exactly the tasks ready at that moment run once (partial
progress, e.g. a holder's hand-off made but its receiver not yet run), and the
model runs that many of its own. The model tracks tasks
that are spawned but not yet started, granted but not yet run, and cancelled
but not yet resumed, so it can be compared after *every* operation, not only
after steps.

Observed and compared: each task's outcome (pending / cancelled / what its
await returned or raised), who acquired the lock and in which order, which
tasks hold which permits and ``available_permits()``, the number of parked
waiters, which item each receiver got, the buffer length, every
``try_*`` outcome (item / WouldBlock / ChannelClosed). At the end of an example
everything is released / closed / drained, and these invariants are checked
independently of the model: no item lost or duplicated, no item of a send that
did not complete is ever received, no permit leaked, and no task is left
parked. The whole example runs under ``rio.timeout``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

import rio_rt as rio

STEP = 1.0  # one controller step: let the runtime run until every task is parked
BOUND = 10_000.0  # virtual seconds for a whole example (far more than its steps)


def event(name: str) -> None:
    """Count an interesting path (``--hypothesis-show-statistics``)."""
    if currently_in_test_context():
        hypothesis_event(name)


def model_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# --------------------------------------------------------------------------- model base


class MTask:
    """A task in the model."""

    def __init__(self, tid: int, kind: str, arg: Any = None) -> None:
        self.tid = tid
        self.kind = kind
        self.arg = arg  # what it waits for: k permits, (handle, item), handle
        self.state = "new"  # new | parked | granted | closed | holding | done
        self.cancel = False  # cancel requested, not yet delivered
        self.outcome: Any = "pending"
        self.granted: Any = None
        self.release_sent = False

    def __repr__(self) -> str:
        return f"T{self.tid}({self.kind} {self.state}{' cancel' if self.cancel else ''})"


class Model:
    """Tasks plus the runtime's FIFO ready queue."""

    def __init__(self) -> None:
        self.tasks: list[MTask] = []
        self.ready: deque[MTask] = deque()

    def spawn(self, kind: str, arg: Any = None) -> MTask:
        t = MTask(len(self.tasks), kind, arg)
        self.tasks.append(t)
        self.ready.append(t)
        return t

    def wake(self, t: MTask) -> None:
        if t.state != "done" and t not in self.ready:
            self.ready.append(t)

    def cancel(self, t: MTask) -> bool:
        if t.state == "done":
            return False
        t.cancel = True
        self.wake(t)
        return True

    def finish(self, t: MTask, outcome: Any) -> None:
        t.state = "done"
        t.outcome = outcome

    def run_ready(self, rounds: int | None = None) -> None:
        """Run the ready tasks until none is left, or only the ``rounds`` first."""
        todo = rounds if rounds is not None else -1
        while self.ready and todo != 0:
            todo -= 1
            t = self.ready.popleft()
            if t.state == "new" and t.cancel:
                event("cancelled before its first step")
                self.finish(t, "cancelled")  # cancelled before its first step: body never runs
            elif t.state == "granted" and t.cancel:
                event(f"{t.kind}: granted, then cancelled before it ran")
                self.run(t)
            else:
                self.run(t)
            self.after()

    def run(self, t: MTask) -> None:
        raise NotImplementedError

    def after(self) -> None:
        """Called after every transition."""

    def not_done(self) -> list[MTask]:
        return [t for t in self.tasks if t.state != "done"]

    def first_granted_or_head(self, queue: list[MTask]) -> MTask | None:
        """The target of `cancel_granted`: a task granted but not yet run (the
        interesting race), else the first queued one not already cancelled."""
        for t in self.tasks:
            if t.state == "granted" and not t.cancel:
                return t
        for t in queue:
            if not t.cancel:
                return t
        return None


def engine_status(task: Any) -> Any:
    if not task.done():
        return "pending"
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    if exc is not None:
        return ("error", repr(exc))
    return task.result()


class Harness:
    """Engine side: the spawned tasks, and the comparison with the model."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.engine_tasks: list[Any] = []
        self.log: list[str] = []

    def spawn(self, coro: Any) -> None:
        self.engine_tasks.append(rio.spawn(coro))

    def cancel(self, t: MTask | None) -> None:
        if t is None:
            return
        self.log.append(f"cancel T{t.tid}")
        assert self.engine_tasks[t.tid].cancel() == self.model.cancel(t)

    async def step(self) -> None:
        self.log.append("step")
        await rio.sleep(STEP)
        self.model.run_ready()
        self.check()

    async def yield_once(self) -> None:
        """Partial progress: the controller goes to the back of the FIFO ready
        queue, so exactly the tasks ready now run once before it continues."""
        self.log.append("yield")
        await rio.yield_now()
        self.model.run_ready(rounds=len(self.model.ready))
        self.check()

    def check(self) -> None:
        got = [engine_status(task) for task in self.engine_tasks]
        want = [t.outcome for t in self.model.tasks]
        assert got == want, self.mismatch("task outcomes", got, want)

    def mismatch(self, what: str, got: Any, want: Any) -> str:
        return (
            f"{what}: engine {got!r} != model {want!r}\n"
            f"  model tasks: {self.model.tasks}\n  ops so far: {self.log}"
        )

    async def cleanup(self) -> None:
        """Cancel whatever is left (after a failure too), so the runtime ends clean."""
        for task in self.engine_tasks:
            task.cancel()
        for _ in range(3):
            await rio.yield_now()
        for task in self.engine_tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: no "never retrieved" report


def run_schedule(run: Callable[..., Any], harness: Harness, body: Callable[[], Any]) -> None:
    async def main() -> None:
        try:
            async with rio.timeout(BOUND):
                await body()
        finally:
            await harness.cleanup()

    run(main)


def ops_strategy(weights: dict[str, int], max_size: int = 40) -> st.SearchStrategy:
    names = [name for name, weight in weights.items() for _ in range(weight)]
    op = st.tuples(st.sampled_from(names), st.integers(0, 7))
    # the length drawn first: longer schedules than st.lists' default, still
    # shrinking to short ones
    return st.integers(0, max_size).flatmap(lambda size: st.lists(op, min_size=size, max_size=size))


# --------------------------------------------------------------------------- Lock


class LockModel(Model):
    def __init__(self) -> None:
        super().__init__()
        self.holder: MTask | str | None = None  # a task, "C" (the controller) or None
        self.queue: list[MTask] = []
        self.got: list[int] = []  # who acquired, in order

    def hand_off(self) -> None:
        if self.queue:
            nxt = self.queue.pop(0)
            self.holder = nxt
            nxt.state = "granted"
            self.wake(nxt)
        else:
            self.holder = None

    def acquired(self, t: MTask) -> None:
        self.got.append(t.tid)
        t.state = "holding"
        if t.release_sent:  # the release order came before it ran: it does not wait
            self.hand_off()
            self.finish(t, "released")

    def run(self, t: MTask) -> None:
        if t.state == "new":
            if self.holder is None and not self.queue:
                self.holder = t
                self.acquired(t)
            else:
                self.queue.append(t)
                t.state = "parked"
        elif t.state == "parked":
            assert t.cancel, "a parked lock waiter woken without grant or cancel"
            event("lock: queued waiter cancelled")
            self.queue.remove(t)
            self.finish(t, "cancelled")
        elif t.state == "granted":
            if t.cancel:  # granted, cancelled before it ran: the next waiter gets it
                self.hand_off()
                self.finish(t, "cancelled")
            else:
                self.acquired(t)
        elif t.state == "holding":  # told to release, or cancelled: releases in `finally`
            self.hand_off()
            self.finish(t, "cancelled" if t.cancel else "released")


class LockHarness(Harness):
    model: LockModel

    def __init__(self) -> None:
        super().__init__(LockModel())
        self.lock = rio.Lock()
        self.got: list[int] = []
        self.cmds: list[Any] = []

    async def worker(self, tid: int, cmd: Any) -> str:
        await self.lock.acquire()
        self.got.append(tid)
        try:
            await cmd
        finally:
            self.lock.release()
        return "released"

    def check(self) -> None:
        super().check()
        m = self.model
        assert self.got == m.got, self.mismatch("acquisition order", self.got, m.got)
        assert self.lock.locked() == (m.holder is not None), self.mismatch(
            "locked()", self.lock.locked(), m.holder
        )
        assert self.lock._waiting() == len(m.queue), self.mismatch(
            "parked waiters", self.lock._waiting(), m.queue
        )

    async def release(self) -> None:
        m = self.model
        if m.holder == "C":
            self.log.append("C releases")
            self.lock.release()
            m.hand_off()
        elif isinstance(m.holder, MTask) and not m.holder.release_sent:
            t = m.holder
            self.log.append(f"T{t.tid} told to release")
            t.release_sent = True
            self.cmds[t.tid].set()
            if t.state == "holding":
                m.wake(t)

    async def apply(self, op: str, n: int) -> None:
        m = self.model
        if op == "spawn":
            t = m.spawn("lock")
            self.log.append(f"spawn T{t.tid} acquire")
            cmd = rio.Oneshot()
            self.cmds.append(cmd)
            self.spawn(self.worker(t.tid, cmd))
        elif op == "cancel":
            alive = m.not_done()
            if alive:
                self.cancel(alive[n % len(alive)])
        elif op == "cancel_granted":
            self.cancel(m.first_granted_or_head(m.queue))
        elif op == "release":
            await self.release()
        elif op == "release_cancel":  # the hand-off and a cancel of its receiver, same step
            await self.release()
            if isinstance(m.holder, MTask) and m.holder.state == "granted":
                self.cancel(m.holder)
        elif op == "c_acquire":
            if m.holder is None and not m.queue:
                self.log.append("C acquires")
                await self.lock.acquire()  # free and nobody queued: completes at once
                m.holder = "C"
        elif op == "step":
            await self.step()
            return
        elif op == "yield":
            await self.yield_once()
            return
        self.check()

    async def finish(self) -> None:
        m = self.model
        for _ in range(len(m.tasks) + 2):
            await self.release()
            await self.step()
        assert all(task.done() for task in self.engine_tasks), (
            f"tasks still parked: {m.not_done()}; ops: {self.log}"
        )
        assert not self.lock.locked() and self.lock._waiting() == 0
        # FIFO, independently of the model: the acquisitions are the tasks that
        # were never cancelled while waiting, each once.
        assert len(set(self.got)) == len(self.got)


LOCK_OPS = ops_strategy(
    {
        "spawn": 5,
        "cancel": 3,
        "cancel_granted": 3,
        "release": 3,
        "release_cancel": 3,
        "c_acquire": 2,
        "step": 4,
        "yield": 3,
    }
)


@model_settings(300)
@given(ops=LOCK_OPS)
# the controller hands the lock to T0 and cancels it before it runs: T1 gets it
@example(
    ops=[
        ("c_acquire", 0),
        ("spawn", 0),
        ("spawn", 0),
        ("step", 0),
        ("release_cancel", 0),
        ("step", 0),
    ]
)
# the same, the hand-off made by the holder task T0 (after one yield)
@example(
    ops=[
        ("spawn", 0),
        ("spawn", 0),
        ("spawn", 0),
        ("step", 0),
        ("release", 0),
        ("yield", 0),
        ("cancel_granted", 0),
        ("step", 0),
    ]
)
def test_lock_matches_model(run: Callable[..., Any], ops: list[tuple[str, int]]) -> None:
    h = LockHarness()

    async def body() -> None:
        for op, n in ops:
            await h.apply(op, n)
        await h.finish()

    run_schedule(run, h, body)


# --------------------------------------------------------------------------- Semaphore


class SemModel(Model):
    def __init__(self, permits: int) -> None:
        super().__init__()
        self.permits = permits
        self.total = permits  # initial + added
        self.queue: list[MTask] = []
        self.got: list[int] = []
        self.held: dict[Any, int] = {}  # tid or ("C", i) -> amount

    def grant_waiting(self) -> None:
        while self.queue and self.permits >= self.queue[0].arg:
            t = self.queue.pop(0)
            self.permits -= t.arg
            t.state = "granted"
            self.wake(t)

    def acquired(self, t: MTask) -> None:
        self.got.append(t.tid)
        self.held[t.tid] = t.arg
        self.finish(t, "acquired")

    def run(self, t: MTask) -> None:
        k = t.arg
        if t.state == "new":
            if not self.queue and self.permits >= k:
                self.permits -= k
                self.acquired(t)
            else:
                self.queue.append(t)
                t.state = "parked"
        elif t.state == "parked":
            assert t.cancel
            event("sem: queued waiter cancelled")
            self.queue.remove(t)
            self.grant_waiting()  # it may have been the one that did not fit
            self.finish(t, "cancelled")
        elif t.state == "granted":
            if t.cancel:  # the permits go back
                self.permits += k
                self.grant_waiting()
                self.finish(t, "cancelled")
            else:
                self.acquired(t)

    def release(self, key: Any) -> None:
        self.permits += self.held.pop(key)
        self.grant_waiting()


class SemHarness(Harness):
    model: SemModel

    def __init__(self, permits: int) -> None:
        super().__init__(SemModel(permits))
        self.sem = rio.Semaphore(permits)
        self.got: list[int] = []
        self.held: dict[Any, Any] = {}  # tid or ("C", i) -> Permit
        self.c_permits = 0

    async def worker(self, tid: int, k: int) -> str:
        permit = await self.sem.acquire(k)
        self.got.append(tid)
        self.held[tid] = permit
        return "acquired"

    def check(self) -> None:
        super().check()
        m = self.model
        assert self.got == m.got, self.mismatch("acquisition order", self.got, m.got)
        held = {key: p.amount for key, p in self.held.items()}
        assert held == m.held, self.mismatch("held permits", held, m.held)
        avail = self.sem.available_permits()
        assert avail == m.permits, self.mismatch("available_permits()", avail, m.permits)
        assert self.sem._waiting() == len(m.queue), self.mismatch(
            "parked waiters", self.sem._waiting(), m.queue
        )

    def release(self, n: int) -> None:
        keys = sorted(self.model.held, key=repr)
        if keys:
            key = keys[n % len(keys)]
            self.log.append(f"release permit of {key}")
            self.held.pop(key).release()
            self.model.release(key)

    async def apply(self, op: str, n: int) -> None:
        m = self.model
        if op == "spawn":
            k = n % 3 + 1
            t = m.spawn("sem", k)
            self.log.append(f"spawn T{t.tid} acquire({k})")
            self.spawn(self.worker(t.tid, k))
        elif op == "cancel":
            alive = m.not_done()
            if alive:
                self.cancel(alive[n % len(alive)])
        elif op == "cancel_granted":
            self.cancel(m.first_granted_or_head(m.queue))
        elif op == "release":
            self.release(n)
        elif op == "release_cancel":  # give permits back and cancel who got them, same step
            self.release(n)
            self.cancel(next((t for t in m.tasks if t.state == "granted" and not t.cancel), None))
        elif op == "try_acquire":
            k = n % 3 + 1
            permit = self.sem.try_acquire(k)
            self.log.append(f"C try_acquire({k}) -> {permit!r}")
            if not m.queue and m.permits >= k:
                assert permit is not None and permit.amount == k, self.mismatch(
                    "try_acquire", permit, k
                )
                m.permits -= k
                key = ("C", self.c_permits)
                self.c_permits += 1
                m.held[key] = k
                self.held[key] = permit
            else:
                assert permit is None, self.mismatch("try_acquire", permit, None)
        elif op in ("add_permits", "add_permits_cancel"):
            k = n % 3 if op == "add_permits" else n % 3 + 1
            self.log.append(f"add_permits({k})")
            self.sem.add_permits(k)
            m.total += k
            m.permits += k
            m.grant_waiting()
            if op == "add_permits_cancel":  # the permits reach a waiter: cancel it
                self.cancel(
                    next((t for t in m.tasks if t.state == "granted" and not t.cancel), None)
                )
        elif op == "step":
            await self.step()
            return
        elif op == "yield":
            await self.yield_once()
            return
        self.check()

    async def finish(self) -> None:
        m = self.model
        for _ in range(len(m.tasks) + 2):
            while m.held:
                self.release(0)
            await self.step()
        # What still waits is a head that wants more permits than there are in
        # all, and those queued behind it (FIFO: no barging). Anything else is
        # a lost wake-up. Cancel the head; the ones behind it may go.
        for _ in range(len(m.tasks) + 1):
            while m.held:
                self.release(0)
            await self.step()
            if not m.queue:
                break
            head = m.queue[0]
            assert head.arg > m.permits, f"{head} still waits with {m.permits} permits free"
            self.cancel(head)
        while m.held:
            self.release(0)
        await self.step()
        assert all(task.done() for task in self.engine_tasks), (
            f"tasks still parked: {m.not_done()}; ops: {self.log}"
        )
        avail = self.sem.available_permits()
        assert avail == m.total, f"permits leaked: {avail} available, {m.total} in all"
        assert len(set(self.got)) == len(self.got)


SEM_OPS = ops_strategy(
    {
        "spawn": 6,
        "cancel": 2,
        "cancel_granted": 2,
        "release": 3,
        "release_cancel": 3,
        "try_acquire": 1,
        "add_permits": 1,
        "add_permits_cancel": 2,
        "step": 4,
        "yield": 3,
    }
)


@model_settings(300)
@given(permits=st.integers(0, 3), ops=SEM_OPS)
# the added permit reaches T0, cancelled before it runs: it goes on to T1
@example(
    permits=0, ops=[("spawn", 0), ("spawn", 0), ("step", 0), ("add_permits_cancel", 0), ("step", 0)]
)
# the head (wants 2) leaves: T1 (wants 1) fits now
@example(
    permits=1, ops=[("spawn", 1), ("spawn", 0), ("step", 0), ("cancel_granted", 0), ("step", 0)]
)
def test_semaphore_matches_model(
    run: Callable[..., Any], permits: int, ops: list[tuple[str, int]]
) -> None:
    h = SemHarness(permits)

    async def body() -> None:
        for op, n in ops:
            await h.apply(op, n)
        await h.finish()

    run_schedule(run, h, body)


# --------------------------------------------------------------------------- channel


class ChanModel(Model):
    def __init__(self, capacity: int | None) -> None:
        super().__init__()
        self.capacity = capacity
        self.buffer: deque[int] = deque()
        self.reserved = 0
        self.sendq: list[MTask] = []
        self.recvq: list[MTask] = []
        self.tx_open = [True]
        self.rx_open = [True]
        self.senders = 1
        self.receivers = 1
        self.every_receiver_closed = False

    def has_room(self) -> bool:
        return self.capacity is None or len(self.buffer) + self.reserved < self.capacity + len(
            self.recvq
        )

    def ended(self) -> bool:
        return self.senders == 0 and not self.buffer and self.reserved == 0 and not self.sendq

    def deliver(self, item: int, front: bool = False) -> None:
        if self.recvq:
            r = self.recvq.pop(0)
            r.state = "granted"
            r.granted = item
            self.wake(r)
        elif front:
            self.buffer.appendleft(item)
        else:
            self.buffer.append(item)

    def pump(self) -> None:
        while self.sendq and self.has_room():
            s = self.sendq.pop(0)
            self.reserved += 1
            s.state = "granted"
            self.wake(s)

    def after(self) -> None:
        # Documented: receivers see the end once every sender is closed and
        # the buffer, reserved slots and parked senders are drained; nobody hangs.
        if self.ended() and self.recvq:
            event("channel ended with receivers waiting")
            for r in self.recvq:
                r.state = "closed"
                self.wake(r)
            self.recvq.clear()

    def run(self, t: MTask) -> None:
        if t.kind == "send":
            self.run_send(t)
        else:
            self.run_recv(t)

    def run_send(self, t: MTask) -> None:
        handle, item = t.arg
        if t.state == "new":
            if not self.tx_open[handle] or self.receivers == 0:
                self.finish(t, "closed")
            elif not self.sendq and self.has_room():
                self.deliver(item)
                self.finish(t, "sent")
            else:
                self.sendq.append(t)
                t.state = "parked"
        elif t.state == "parked":
            assert t.cancel
            self.sendq.remove(t)
            self.finish(t, "cancelled")
        elif t.state == "granted":  # a reserved slot
            self.reserved -= 1
            if t.cancel:  # a cancelled send sends nothing; the slot goes to the next
                event(
                    "send: reserved slot given up" + (" to a parked sender" if self.sendq else "")
                )
                self.pump()
                self.finish(t, "cancelled")
            elif self.receivers == 0:
                self.pump()
                self.finish(t, "closed")
            else:
                self.deliver(item)
                self.finish(t, "sent")
        elif t.state == "closed":
            self.finish(t, "cancelled" if t.cancel else "closed")

    def run_recv(self, t: MTask) -> None:
        handle = t.arg
        if t.state == "new":
            if not self.rx_open[handle]:
                self.finish(t, "closed")
            elif self.buffer:
                item = self.buffer.popleft()
                self.pump()
                self.finish(t, ("got", item))
            elif self.ended():
                self.finish(t, "closed")
            else:
                self.recvq.append(t)
                t.state = "parked"
                self.pump()  # a rendezvous sender may come in now
        elif t.state == "parked":
            assert t.cancel
            self.recvq.remove(t)
            self.finish(t, "cancelled")
        elif t.state == "granted":
            if t.cancel:  # the item goes to the next receiver, or back to the front
                event(
                    "recv: cancelled item passed to a receiver"
                    if self.recvq
                    else "recv: cancelled item back to the buffer front"
                )
                if self.receivers > 0:
                    self.deliver(t.granted, front=True)
                self.finish(t, "cancelled")
            else:
                self.finish(t, ("got", t.granted))
        elif t.state == "closed":
            self.finish(t, "cancelled" if t.cancel else "closed")

    # ---- the controller's synchronous operations: outcome strings

    def try_send(self, handle: int, item: int) -> str:
        if not self.tx_open[handle] or self.receivers == 0:
            return "closed"
        if self.sendq or not self.has_room():
            return "wouldblock"
        self.deliver(item)
        return "ok"

    def try_recv(self, handle: int) -> Any:
        if not self.rx_open[handle]:
            return "closed"
        if self.buffer:
            item = self.buffer.popleft()
            self.pump()
            return ("got", item)
        if self.ended():
            return "closed"
        return "wouldblock"

    def close_tx(self, handle: int) -> None:
        if self.tx_open[handle]:
            self.tx_open[handle] = False
            self.senders -= 1

    def close_rx(self, handle: int) -> None:
        if self.rx_open[handle]:
            self.rx_open[handle] = False
            self.receivers -= 1
            if self.receivers == 0:
                self.every_receiver_closed = True
                self.buffer.clear()
                for s in self.sendq:
                    s.state = "closed"
                    self.wake(s)
                self.sendq.clear()


class ChanHarness(Harness):
    model: ChanModel

    def __init__(self, capacity: int | None) -> None:
        super().__init__(ChanModel(capacity))
        tx, rx = rio.channel(capacity)
        self.txs = [tx]
        self.rxs = [rx]
        self.next_item = 100
        self.completed: list[int] = []  # items of sends that completed (tasks and try_send)
        self.not_sent: list[int] = []  # items of sends cancelled or failed
        self.received: list[int] = []  # by try_recv; tasks' items come from their results

    @staticmethod
    async def sender(tx: Any, item: int) -> str:
        try:
            await tx.send(item)
        except rio.ChannelClosed:
            return "closed"
        return "sent"

    @staticmethod
    async def receiver(rx: Any) -> Any:
        try:
            item = await rx.recv()
        except rio.ChannelClosed:
            return "closed"
        return ("got", item)

    def item(self) -> int:
        self.next_item += 1
        return self.next_item

    def check(self) -> None:
        super().check()
        m = self.model
        assert len(self.rxs[0]) == len(m.buffer), self.mismatch(
            "buffered items", len(self.rxs[0]), list(m.buffer)
        )
        closed = [tx.is_closed() for tx in self.txs]
        want = [not o or m.receivers == 0 for o in m.tx_open]
        assert closed == want, self.mismatch("Sender.is_closed()", closed, want)

    def try_send(self, h: int) -> None:
        m = self.model
        handle = h % len(self.txs)
        item = self.item()
        try:
            self.txs[handle].try_send(item)
            got = "ok"
        except rio.WouldBlock:
            got = "wouldblock"
        except rio.ChannelClosed:
            got = "closed"
        self.log.append(f"C try_send({item}) on tx{handle} -> {got}")
        want = m.try_send(handle, item)
        assert got == want, self.mismatch(f"try_send({item})", got, want)
        (self.completed if got == "ok" else self.not_sent).append(item)
        m.after()

    def try_recv(self, h: int) -> Any:
        m = self.model
        handle = h % len(self.rxs)
        try:
            got: Any = ("got", self.rxs[handle].try_recv())
            self.received.append(got[1])
        except rio.WouldBlock:
            got = "wouldblock"
        except rio.ChannelClosed:
            got = "closed"
        self.log.append(f"C try_recv() on rx{handle} -> {got}")
        want = m.try_recv(handle)
        assert got == want, self.mismatch("try_recv()", got, want)
        m.after()
        return got

    def granted_of(self, kind: str) -> MTask | None:
        return next(
            (
                t
                for t in self.model.tasks
                if t.kind == kind and t.state == "granted" and not t.cancel
            ),
            None,
        )

    async def apply(self, op: str, n: int) -> None:
        m = self.model
        if op == "spawn_send":
            handle = n % len(self.txs)
            item = self.item()
            t = m.spawn("send", (handle, item))
            self.log.append(f"spawn T{t.tid} send({item}) on tx{handle}")
            self.spawn(self.sender(self.txs[handle], item))
        elif op == "spawn_recv":
            handle = n % len(self.rxs)
            t = m.spawn("recv", handle)
            self.log.append(f"spawn T{t.tid} recv() on rx{handle}")
            self.spawn(self.receiver(self.rxs[handle]))
        elif op == "cancel":
            alive = m.not_done()
            if alive:
                self.cancel(alive[n % len(alive)])
        elif op == "cancel_granted":
            self.cancel(m.first_granted_or_head(m.sendq + m.recvq))
        elif op == "try_send":
            self.try_send(n)
        elif op == "try_send_cancel":  # hand an item to a parked receiver, cancel it
            self.try_send(n)
            self.cancel(self.granted_of("recv"))
        elif op == "try_recv":
            self.try_recv(n)
        elif op == "try_recv_cancel":  # make room for a parked sender, cancel it
            self.try_recv(n)
            self.cancel(self.granted_of("send"))
        elif op == "clone_tx":
            handle = n % len(self.txs)
            self.log.append(f"clone tx{handle}")
            if m.tx_open[handle]:
                self.txs.append(self.txs[handle].clone())
                m.tx_open.append(True)
                m.senders += 1
            else:
                try:
                    self.txs[handle].clone()
                except rio.ChannelClosed:
                    pass
                else:
                    raise AssertionError("clone() of a closed Sender did not raise")
        elif op == "clone_rx":
            handle = n % len(self.rxs)
            self.log.append(f"clone rx{handle}")
            if m.rx_open[handle]:
                self.rxs.append(self.rxs[handle].clone())
                m.rx_open.append(True)
                m.receivers += 1
            else:
                try:
                    self.rxs[handle].clone()
                except rio.ChannelClosed:
                    pass
                else:
                    raise AssertionError("clone() of a closed Receiver did not raise")
        elif op == "close_tx":
            handle = n % len(self.txs)
            self.log.append(f"close tx{handle}")
            self.txs[handle].close()
            m.close_tx(handle)
            m.after()
        elif op == "close_rx":
            handle = n % len(self.rxs)
            self.log.append(f"close rx{handle}")
            self.rxs[handle].close()
            m.close_rx(handle)
            m.after()
        elif op == "step":
            await self.step()
            return
        elif op == "yield":
            await self.yield_once()
            return
        self.check()

    async def finish(self) -> None:
        m = self.model
        # The end: receivers for everything buffered or still being sent, plus
        # one more (it must see the end), then every sender closed in the same
        # controller step, while those sends are still in flight. Then drain
        # what is left through an open receiver (if any). Every task must end.
        open_rx = [i for i, o in enumerate(m.rx_open) if o]
        if open_rx:
            in_flight = (
                len(m.buffer)
                + len(m.sendq)
                + sum(1 for t in m.tasks if t.kind == "send" and t.state in ("new", "granted"))
            )
            for _ in range(in_flight + 1):
                await self.apply("spawn_recv", open_rx[0])
        for handle in range(len(self.txs)):
            await self.apply("close_tx", handle)
        await self.step()
        for _ in range(2 * len(m.tasks) + 4):
            if open_rx:
                while self.try_recv(open_rx[0]) not in ("wouldblock", "closed"):
                    pass
                if m.sendq:  # a rendezvous sender waits for a receiver, not for try_recv
                    await self.apply("spawn_recv", open_rx[0])
            await self.step()
        assert all(task.done() for task in self.engine_tasks), (
            f"tasks still parked at the end: {m.not_done()}\n  ops: {self.log}"
        )

        # ---- invariants, independent of the model
        results = [engine_status(task) for task in self.engine_tasks]
        received = self.received + [r[1] for r in results if isinstance(r, tuple)]
        completed = self.completed + [
            t.arg[1]
            for t, r in zip(m.tasks, results, strict=True)
            if t.kind == "send" and r == "sent"
        ]
        not_sent = self.not_sent + [
            t.arg[1]
            for t, r in zip(m.tasks, results, strict=True)
            if t.kind == "send" and r != "sent"
        ]
        assert len(received) == len(set(received)), f"an item received twice: {received}"
        assert not set(received) & set(not_sent), (
            f"items of sends that did not complete were received: "
            f"{sorted(set(received) & set(not_sent))}"
        )
        assert set(received) <= set(completed)
        if not m.every_receiver_closed:
            assert sorted(received) == sorted(completed), (
                f"items lost: {sorted(set(completed) - set(received))}"
            )
        assert len(self.rxs[0]) == 0 or m.every_receiver_closed


CHAN_OPS = ops_strategy(
    {
        "spawn_send": 6,
        "spawn_recv": 5,
        "cancel": 2,
        "cancel_granted": 2,
        "try_send": 2,
        "try_send_cancel": 2,
        "try_recv": 2,
        "try_recv_cancel": 2,
        "clone_tx": 1,
        "clone_rx": 1,
        "close_tx": 1,
        "close_rx": 1,
        "step": 5,
        "yield": 3,
    }
)


@model_settings(400)
@given(capacity=st.sampled_from([0, 1, 3, None]), ops=CHAN_OPS)
# an item handed to R0, cancelled before it ran: R1 gets it
@example(
    capacity=0,
    ops=[("spawn_recv", 0), ("spawn_recv", 0), ("step", 0), ("try_send_cancel", 0), ("step", 0)],
)
# ... and with nobody else waiting, it goes back to the front of the buffer
@example(
    capacity=1,
    ops=[
        ("spawn_recv", 0),
        ("step", 0),
        ("try_send", 0),
        ("try_send_cancel", 0),
        ("step", 0),
        ("try_recv", 0),
    ],
)
# S0 granted a reserved slot, cancelled before it ran: S1 gets the slot, 102 is never sent
@example(
    capacity=1,
    ops=[
        ("try_send", 0),
        ("spawn_send", 0),
        ("spawn_send", 0),
        ("step", 0),
        ("try_recv_cancel", 0),
        ("step", 0),
    ],
)
# S0 granted a rendezvous slot; the receiver, then every sender, closes before S0 runs:
# S0 gets ChannelClosed, and so must the recv parked on the closed receiver (was a hang)
@example(
    capacity=0,
    ops=[("spawn_send", 0), ("spawn_recv", 0), ("yield", 0), ("close_rx", 0)],
)
def test_channel_matches_model(
    run: Callable[..., Any], capacity: int | None, ops: list[tuple[str, int]]
) -> None:
    h = ChanHarness(capacity)

    async def body() -> None:
        for op, n in ops:
            await h.apply(op, n)
        await h.finish()

    run_schedule(run, h, body)


# Fixed schedules of the channel's end (also reachable by the property above).
END_SCHEDULES = {
    # S0 parks on a rendezvous; two receivers come, S0's reserved send goes to
    # R1 after every sender handle was closed: the channel has ended, R2 must
    # see ChannelClosed.
    "send-completes-last": (
        0,
        [
            ("spawn_send", 0),
            ("step", 0),
            ("spawn_recv", 0),
            ("spawn_recv", 0),
            ("close_tx", 0),
            ("step", 0),
        ],
    ),
    # The same end reached by cancelling S0 after it was granted its slot.
    "reserved-send-cancelled-last": (
        0,
        [
            ("spawn_send", 0),
            ("step", 0),
            ("close_tx", 0),
            ("spawn_recv", 0),
            ("cancel", 0),
            ("step", 0),
        ],
    ),
    # Buffered: R1 takes 101 and frees a slot for S0 (102), which R2 gets;
    # R3 must see the end.
    "buffered-then-in-flight": (
        1,
        [
            ("try_send", 0),
            ("spawn_send", 0),
            ("step", 0),
            ("spawn_recv", 0),
            ("spawn_recv", 0),
            ("spawn_recv", 0),
            ("close_tx", 0),
            ("step", 0),
        ],
    ),
}


@pytest.mark.parametrize("name", list(END_SCHEDULES))
def test_channel_end_schedules(run: Callable[..., Any], name: str) -> None:
    capacity, ops = END_SCHEDULES[name]
    h = ChanHarness(capacity)

    async def body() -> None:
        for op, n in ops:
            await h.apply(op, n)
        await h.finish()

    run_schedule(run, h, body)
