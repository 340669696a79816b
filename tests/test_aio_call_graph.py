"""3.14's call-graph introspection (``asyncio.capture_call_graph``,
``format_call_graph``, ``Future._asyncio_awaited_by``) with rio's Tasks.

Stdlib asyncio is the oracle: one test body, run by ``asyncio.run`` and by
``rio_rt.run`` (no wrapper coroutine, which would show in the call stacks), and
the graphs (task names, call stacks, who awaits whom) must be the same. Task ids and the
numbers in default task names differ between loops, so every task here is named.
"""

from __future__ import annotations

import asyncio
import re
import sys
import types
from collections.abc import Generator
from typing import Any

import pytest
from rio_core._runtime import LoopFuture, Task

import rio_rt

needs_314 = pytest.mark.skipif(
    sys.version_info < (3, 14), reason="asyncio's call graph is new in 3.14"
)


def shape(graph: Any) -> Any:
    """A FutureCallGraph as plain data: the future's name, the function names
    of its call stack, and the shapes of its awaiters (sorted)."""
    if graph is None:
        return None
    future = graph.future
    name = future.get_name() if hasattr(future, "get_name") else type(future).__name__
    stack = [entry.frame.f_code.co_name for entry in graph.call_stack]
    return (name, stack, sorted(shape(parent) for parent in graph.awaited_by))


def without_ids(text: str) -> str:
    return re.sub(r"id=0x[0-9a-f]+", "id=...", text)


@types.coroutine
def bare_yield() -> Generator[None, None, None]:
    """Let the other tasks run once, adding no frame to the call graph."""
    yield


@needs_314
def test_capture_call_graph_in_a_taskgroup_matches_asyncio() -> None:
    async def leaf(ev: asyncio.Event) -> None:
        await ev.wait()

    async def child(ev: asyncio.Event, out: list[Any]) -> None:
        out.append(("self", shape(asyncio.capture_call_graph())))
        await leaf(ev)

    async def main() -> list[Any]:
        asyncio.current_task().set_name("main")  # type: ignore[union-attr]
        out: list[Any] = []
        ev = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(child(ev, out), name="first")
            second = tg.create_task(child(ev, out), name="second")
            for _ in range(3):
                await bare_yield()  # (asyncio.sleep's frame shows on asyncio only)
            out.append(("other", shape(asyncio.capture_call_graph(second))))
            out.append(("text", without_ids(asyncio.format_call_graph(second))))
            ev.set()
        # once the group is done, nothing is recorded as awaiting the children
        out.append(("after", second._asyncio_awaited_by))
        return out

    asyncio_seen = asyncio.run(main())
    assert rio_rt.run(main()) == asyncio_seen
    assert asyncio_seen[1] == ("self", ("second", ["child"], [("main", ["main"], [])]))
    assert asyncio_seen[-1] == ("after", None)


@needs_314
def test_gather_children_are_awaited_by_the_gathering_task() -> None:
    async def worker(n: int) -> Any:
        await asyncio.sleep(0)
        return shape(asyncio.capture_call_graph())

    async def main() -> list[Any]:
        asyncio.current_task().set_name("main")  # type: ignore[union-attr]
        children = [asyncio.ensure_future(worker(n)) for n in range(3)]
        for n, child in enumerate(children):
            child.set_name(f"w{n}")
        graphs = await asyncio.gather(*children)
        return [*graphs, [child._asyncio_awaited_by for child in children]]

    seen = rio_rt.run(main())
    assert seen == asyncio.run(main())
    assert seen[0] == ("w0", ["worker"], [("main", ["main"], [])])


@needs_314
def test_awaiting_a_task_or_a_future_records_the_awaiter() -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        fut = loop.create_future()

        async def wait_fut() -> None:
            await fut

        waiter = asyncio.create_task(wait_fut(), name="waiter")

        async def join() -> None:
            await waiter

        joiner = asyncio.create_task(join(), name="joiner")
        await asyncio.sleep(0)
        seen: list[Any] = [
            fut._asyncio_awaited_by == {waiter},
            waiter._asyncio_awaited_by == {joiner},
            joiner._asyncio_awaited_by,
            me._asyncio_awaited_by,  # type: ignore[union-attr]
            shape(asyncio.capture_call_graph(waiter)),
        ]
        fut.set_result(None)
        await joiner
        seen += [fut._asyncio_awaited_by, waiter._asyncio_awaited_by]
        return seen

    seen = rio_rt.run(main())
    assert seen == asyncio.run(main())
    assert seen[:4] == [True, True, None, None]
    assert seen[4] == ("waiter", ["wait_fut"], [("joiner", ["join"], [])])


@needs_314
def test_the_recording_functions_keep_asyncios_behaviour_for_its_own_futures() -> None:
    # rio installs its versions in asyncio; CPython's futures still get edges
    assert asyncio.futures.future_add_to_awaited_by is rio_rt_functions()[0]

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        fut, waiter = asyncio.Future(loop=loop), asyncio.Future(loop=loop)
        asyncio.future_add_to_awaited_by(fut, waiter)
        first = fut._asyncio_awaited_by
        asyncio.future_discard_from_awaited_by(fut, waiter)
        return first, fut._asyncio_awaited_by

    first, after = asyncio.run(main())
    assert first == {waiter_placeholder(first)} and not after


def rio_rt_functions() -> tuple[Any, Any]:
    from rio_core import _runtime

    return _runtime.future_add_to_awaited_by, _runtime.future_discard_from_awaited_by


def waiter_placeholder(found: Any) -> Any:
    (only,) = found
    return only


def test_rio_futures_record_awaiters_given_to_asyncio() -> None:
    # the functions work on every version (asyncio calls them from 3.14)
    add, discard = rio_rt_functions()

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        me = asyncio.current_task()
        assert type(fut) is LoopFuture and type(me) is Task
        add(fut, me)
        add(fut, me)
        add(fut, "not a future")  # ignored, as asyncio ignores what it cannot track
        seen = [fut._asyncio_awaited_by == {me}]
        discard(fut, me)
        discard(fut, me)  # discarding twice is harmless
        seen.append(fut._asyncio_awaited_by)
        fut.cancel()
        return seen

    assert rio_rt.run(main()) == [True, None]
