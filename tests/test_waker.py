"""The task state machine and its wake transition (docs/design.md, "Task states").

The states are the engine's ``TaskState`` names, read through ``Task._sched_state``;
``transition_to_notified`` (in rio_core/_runtime.pxd) is the wake:

| state when woken | what wake() does                                                |
|------------------|-----------------------------------------------------------------|
| IDLE (parked)    | -> SCHEDULED, pushed on the ready queue                         |
| SCHEDULED        | nothing (no double enqueue)                                     |
| RUNNING          | -> NOTIFIED; the step re-queues it (SCHEDULED) when it parks    |
| NOTIFIED         | nothing                                                         |
| DONE             | nothing                                                         |

Every test observes polls of a pure-Python leaf future and, where it helps,
``Runtime.stats()``. Each body runs under a generous ``rio.timeout`` so that a
task left parked forever fails the test (autojump makes that instant) instead
of hanging the suite.
"""

from __future__ import annotations

import pytest

import rio_rt as rio

GUARD = 60.0  # seconds of autojump time; reaching it means a task was never re-polled


class Gate(rio.Future):
    """A leaf future that counts its polls and keeps the latest waker."""

    def __init__(self) -> None:
        self.polls = 0
        self.is_open = False
        self.waker = None
        self.contexts: list[object] = []

    def poll(self, cx):
        self.polls += 1
        self.contexts.append(cx)
        if self.is_open:
            return rio.Ready("opened")
        self.waker = cx.waker
        return rio.PENDING

    def open(self) -> None:
        self.is_open = True
        self.waker.wake()


async def settle(rounds: int = 3) -> None:
    """Let every other ready task take a few steps."""
    for _ in range(rounds):
        await rio.yield_now()


def test_poll_gets_a_context_with_a_waker(run):
    gate = Gate()

    async def main():
        async with rio.timeout(GUARD):
            waiter = rio.spawn(gate_waiter(gate))
            await settle()
            gate.open()
            return await waiter

    assert run(main) == "opened"
    assert gate.polls == 2
    for cx in gate.contexts:
        assert isinstance(cx, rio.Context)
        assert isinstance(cx.waker, rio.Waker)


async def gate_waiter(gate: Gate):
    return await gate


def test_parked_task_is_not_polled_without_a_wake(run):
    """No spinning: a parked task stays parked while time passes and others run."""
    gate = Gate()

    async def main():
        async with rio.timeout(GUARD):
            waiter = rio.spawn(gate_waiter(gate))
            await settle(10)
            await rio.sleep(5)
            await settle(10)
            polls_while_parked = gate.polls
            gate.open()
            result = await waiter
            return polls_while_parked, result

    assert run(main) == (1, "opened")
    assert gate.polls == 2


def test_wake_parked_task_polls_it_exactly_once_more(run):
    gate = Gate()

    async def main():
        async with rio.timeout(GUARD):
            waiter = rio.spawn(gate_waiter(gate))
            await settle()
            assert gate.polls == 1
            assert waiter._sched_state == "IDLE"
            gate.waker.wake()  # spurious: the gate stays closed
            assert waiter._sched_state == "SCHEDULED"
            await settle(5)
            assert gate.polls == 2
            assert waiter._sched_state == "IDLE"
            assert not waiter.done()
            gate.open()
            return await waiter

    assert run(main) == "opened"
    assert gate.polls == 3


@pytest.mark.parametrize("wakes", [2, 3, 10])
def test_repeated_wake_while_scheduled_enqueues_once(run, wakes):
    gate = Gate()

    async def main():
        async with rio.timeout(GUARD):
            waiter = rio.spawn(gate_waiter(gate))
            await settle()
            for _ in range(wakes):
                gate.waker.wake()
                assert waiter._sched_state == "SCHEDULED"
            await settle(5)
            polls_after_wakes = gate.polls
            gate.open()
            await waiter
            return polls_after_wakes

    assert run(main) == 2


def test_double_wake_costs_the_same_runtime_polls_as_one_wake():
    """Runtime.stats()['polls'] across the same window: no wake < one wake == two wakes."""
    rt = rio.Runtime(autojump_clock=True)

    async def window(gate: Gate, wakes: int) -> int:
        before = rt.stats()["polls"]
        for _ in range(wakes):
            gate.waker.wake()
        await settle(4)
        return rt.stats()["polls"] - before

    async def main():
        async with rio.timeout(GUARD):
            gate = Gate()
            waiter = rio.spawn(gate_waiter(gate))
            await settle()
            deltas = {}
            for wakes in (0, 1, 2, 0, 2, 1):
                deltas.setdefault(wakes, set()).add(await window(gate, wakes))
            gate.open()
            await waiter
            return deltas

    deltas = rt.block_on(main())
    # the same window always costs the same
    assert all(len(costs) == 1 for costs in deltas.values()), deltas
    none, one, two = (deltas[n].pop() for n in (0, 1, 2))
    assert one > none
    assert two == one


def test_double_wake_pushes_one_ready_queue_entry():
    rt = rio.Runtime(autojump_clock=True)

    async def main():
        async with rio.timeout(GUARD):
            gate = Gate()
            waiter = rio.spawn(gate_waiter(gate))
            await settle()
            depth_parked = rt.stats()["ready_depth"]
            gate.waker.wake()
            depth_woken = rt.stats()["ready_depth"]
            gate.waker.wake()
            depth_woken_twice = rt.stats()["ready_depth"]
            gate.open()
            await waiter
            return depth_parked, depth_woken, depth_woken_twice

    parked, woken, woken_twice = rt.block_on(main())
    assert woken == parked + 1
    assert woken_twice == woken


class WakesItselfOnce(rio.Future):
    """Wakes its own task from inside poll(), then returns PENDING once."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.polls = 0
        self.in_poll = False

    def poll(self, cx):
        assert not self.in_poll, "poll() re-entered from wake()"
        self.in_poll = True
        try:
            self.polls += 1
            self.log.append(f"poll{self.polls}")
            if self.polls == 1:
                task = cx.waker.task
                self.log.append(task._sched_state)
                cx.waker.wake()
                self.log.append(task._sched_state)
                cx.waker.wake()  # NOTIFIED stays NOTIFIED
                self.log.append(task._sched_state)
                return rio.PENDING
            return rio.Ready("second poll")
        finally:
            self.in_poll = False


def test_wake_while_running_repolls_after_the_step(run):
    log: list[str] = []

    async def self_waker():
        return await WakesItselfOnce(log)

    async def bystander():
        log.append("bystander")

    async def main():
        async with rio.timeout(GUARD):
            first = rio.spawn(self_waker())
            rio.spawn(bystander())
            return await first

    assert run(main) == "second poll"
    # The wake inside poll() does not re-enter it; the task is re-queued at the
    # back when its step returns pending, so the task queued behind it runs first.
    assert log == ["poll1", "RUNNING", "NOTIFIED", "NOTIFIED", "bystander", "poll2"]


def test_wake_after_completion_does_nothing(run):
    gate = Gate()
    polled_after: list[int] = []

    async def main():
        async with rio.timeout(GUARD):
            waiter = rio.spawn(gate_waiter(gate))
            await settle()
            stale = gate.waker
            gate.open()
            assert await waiter == "opened"
            polls = gate.polls
            assert waiter._sched_state == "DONE"
            stale.wake()  # the task is complete: no effect, no error
            stale.wake()
            await settle(5)
            await rio.sleep(1)
            polled_after.append(gate.polls - polls)
            assert waiter.done()
            assert waiter.result() == "opened"
            return stale

    stale = run(main)
    assert polled_after == [0]
    # after the runtime itself finished, waking is still harmless
    stale.wake()
    assert gate.polls == 2


def test_will_wake():
    wakers: dict[str, list] = {"a": [], "b": []}

    class Recorder(rio.Future):
        def __init__(self, key: str) -> None:
            self.key = key
            self.finished = False

        def poll(self, cx):
            wakers[self.key].append(cx.waker)
            if self.finished:
                return rio.Ready(None)
            self.waker = cx.waker
            return rio.PENDING

    async def wait(fut):
        await fut

    async def main():
        async with rio.timeout(GUARD):
            a, b = Recorder("a"), Recorder("b")
            ta, tb = rio.spawn(wait(a)), rio.spawn(wait(b))
            await settle()
            a.waker.wake()  # a second poll of the same task: a second waker object
            await settle()
            a.finished = b.finished = True
            a.waker.wake()
            b.waker.wake()
            await ta
            await tb

    rio.Runtime(autojump_clock=True).block_on(main())
    (a1, a2, a3), (b1, b2) = wakers["a"], wakers["b"]
    assert a1.will_wake(a1)
    assert a1.will_wake(a2) and a2.will_wake(a3) and a3.will_wake(a1)
    assert b1.will_wake(b2)
    assert not a1.will_wake(b1)
    assert not b2.will_wake(a3)


def test_repr_names_every_state(run):
    """``repr`` shows the scheduler's state, NOTIFIED included, then the outcome."""
    gate = Gate()
    seen: dict[str, str] = {}

    class Peek(rio.Future):
        def __init__(self) -> None:
            self.polled = False

        def poll(self, cx):
            task = cx.waker.task
            if not self.polled:
                self.polled = True
                seen["running"] = repr(task)
                cx.waker.wake()
                seen["notified"] = repr(task)
                return rio.PENDING
            return rio.Ready(None)

    async def peeking():
        await Peek()

    async def failing():
        raise ValueError("boom")

    async def main():
        async with rio.timeout(GUARD):
            peeker = rio.spawn(peeking(), name="peeker")
            waiter = rio.spawn(gate_waiter(gate), name="waiter")
            seen["scheduled"] = repr(waiter)
            await settle()
            seen["idle"] = repr(waiter)
            gate.open()
            await waiter
            await peeker
            seen["done"] = repr(waiter)
            failed = rio.spawn(failing(), name="failer")
            with pytest.raises(ValueError):
                await failed
            seen["failed"] = repr(failed)
            cancelled = rio.spawn(gate_waiter(Gate()), name="cancelled")
            await settle()
            cancelled.cancel()
            with pytest.raises(rio.CancelledError):
                await cancelled
            seen["cancelled"] = repr(cancelled)

    run(main)
    assert seen == {
        "scheduled": "<rio Task 'waiter' scheduled>",
        "idle": "<rio Task 'waiter' idle>",
        "running": "<rio Task 'peeker' running>",
        "notified": "<rio Task 'peeker' notified>",
        "done": "<rio Task 'waiter' done>",
        "failed": "<rio Task 'failer' failed ValueError>",
        "cancelled": "<rio Task 'cancelled' cancelled>",
    }
