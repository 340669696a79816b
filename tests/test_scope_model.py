"""Nested cancel scopes against a small reference model (hypothesis).

A task enters ``depth`` nested scopes (some shielded), parks, and another
task cancels a random subset of them. Then the stack unwinds; after each
inner scope exits, the code in the scope around it awaits once more. The
model says, for every level, whether that await ran, and which scope caught
the cancellation: a cancellation is delivered at once unless a shield inside
its scope holds it back (then it is delivered when that shield exits); it
surfaces at the task's next await; while it propagates, a scope catches it
only if no cancellation of a scope further out is still delivered (the
``cancelling()`` count rule); a delivery not yet raised when its own scope
exits is withdrawn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import rio_rt as rio

Log = list[tuple[Any, ...]]


def model(shields: list[bool], cancelled: list[int]) -> Log:
    depth = len(shields)
    delivered: set[int] = set()
    pending: set[int] = set()

    def deliver(i: int) -> None:
        delivered.add(i)
        pending.add(i)

    for i in cancelled:
        if not any(shields[j] for j in range(i + 1, depth)):
            deliver(i)
    log: Log = []
    raising = bool(pending)
    pending.clear()
    log.append(("inner", "cancelled" if raising else "completed"))
    for i in range(depth - 1, -1, -1):
        if not raising:
            if pending:
                raising = True
                pending.clear()
            else:
                log.append(("after", i))
        caught = False
        pending.discard(i)
        if i in delivered:
            delivered.discard(i)
            if raising and not delivered:
                caught = True
                raising = False
        log.append(("exit", i, caught))
        if shields[i]:
            for j in range(i - 1, -1, -1):
                if j in cancelled and j not in delivered:
                    deliver(j)
                if shields[j]:
                    break
    log.append(("end", "raised" if raising else "returned"))
    return log


def program(
    shields: list[bool], cancelled: list[int], asyncio_door: bool
) -> Callable[[], Coroutine[Any, Any, Log]]:
    async def checkpoint() -> None:
        if asyncio_door:
            await asyncio.sleep(0)
        else:
            await rio.sleep(0)

    async def main() -> Log:
        log: Log = []
        scopes = [rio.CancelScope(shield=shield) for shield in shields]
        blocked = rio.Event()
        release = rio.Event()

        async def level(i: int) -> None:
            if i == len(scopes):
                blocked.set()
                try:
                    await release.wait()
                except asyncio.CancelledError:
                    log.append(("inner", "cancelled"))
                    raise
                log.append(("inner", "completed"))
                return
            scope = scopes[i]
            try:
                with scope:
                    await level(i + 1)
                    await checkpoint()
                    log.append(("after", i))
            finally:
                log.append(("exit", i, scope.cancelled_caught))

        async def canceller() -> None:
            await blocked.wait()
            for i in cancelled:
                scopes[i].cancel()
            release.set()

        if asyncio_door:
            helper: Any = asyncio.get_running_loop().create_task(canceller())
        else:
            helper = rio.spawn(canceller())
        try:
            await level(0)
        except asyncio.CancelledError:
            log.append(("end", "raised"))
        else:
            log.append(("end", "returned"))
        await helper
        task: Any = rio.current_task() or asyncio.current_task()
        await checkpoint()  # nothing left pending
        assert task.cancelling() == 0
        return log

    return main


scenarios = st.integers(min_value=1, max_value=5).flatmap(
    lambda depth: st.tuples(
        st.lists(st.booleans(), min_size=depth, max_size=depth),
        st.lists(st.integers(min_value=0, max_value=depth - 1), unique=True, max_size=depth),
    )
)


@settings(max_examples=150, deadline=None)
@given(scenarios)
def test_native_scopes_follow_the_model(scenario: tuple[list[bool], list[int]]) -> None:
    shields, cancelled = scenario
    runtime = rio.Runtime(autojump_clock=True)
    assert runtime.block_on(program(shields, cancelled, False)()) == model(shields, cancelled)


@settings(max_examples=100, deadline=None)
@given(scenarios)
def test_asyncio_task_scopes_follow_the_model(scenario: tuple[list[bool], list[int]]) -> None:
    shields, cancelled = scenario
    assert rio.run(program(shields, cancelled, True)()) == model(shields, cancelled)


def test_the_model_can_tell_scopes_apart() -> None:
    # the model itself: an outer cancel passes an inner scope, a shield holds it
    assert model([False, False], [0])[-3:] == [
        ("exit", 1, False),
        ("exit", 0, True),
        ("end", "returned"),
    ]
    held = model([False, True], [0])
    assert held[0] == ("inner", "completed") and ("after", 0) not in held
