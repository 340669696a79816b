"""Seeing what runs: all_tasks, parent/children, task stacks, dump_tasks, counters,
the opt-in step timing, tracing hooks and ``python -m rio_rt --dump-on``."""

from __future__ import annotations

import asyncio
import gc
import io
import os
import selectors
import signal
import subprocess
import sys
import textwrap
import time
import weakref
from pathlib import Path
from typing import Any

import pytest

import rio_rt as rio


async def sleeper(seconds: float = 100.0) -> None:
    await rio.sleep(seconds)


async def nested_outer(event: rio.Event) -> None:
    await nested_inner(event)


async def nested_inner(event: rio.Event) -> None:
    await event.wait()


# ---- all_tasks, parent, children


def test_all_tasks_lists_live_tasks_oldest_first(run: Any) -> None:
    async def main() -> list[str]:
        first = rio.spawn(sleeper(), name="first")
        second = rio.spawn(sleeper(), name="second")
        names = [task.name for task in rio.all_tasks()]
        first.cancel()
        await rio.yield_now()
        await rio.yield_now()
        after = [task.name for task in rio.all_tasks()]
        second.cancel()
        return [*names, "|", *after]

    assert run(main) == ["main", "first", "second", "|", "main", "second"]


def test_all_tasks_of_another_runtime_and_outside_one() -> None:
    rt = rio.Runtime(autojump_clock=True)
    assert rt.all_tasks() == []
    assert rio.all_tasks(rt) == []
    with pytest.raises(RuntimeError, match="running rio runtime"):
        rio.all_tasks()
    seen: list[list[str]] = []

    async def main() -> None:
        task = rio.spawn(sleeper(), name="kid")
        seen.append([t.name for t in rt.all_tasks()])
        task.cancel()

    rt.block_on(main())
    assert seen == [["main", "kid"]]
    assert rt.all_tasks() == []


def test_parent_and_children(run: Any) -> None:
    async def grandchild() -> None:
        await rio.sleep(10)

    async def child() -> None:
        rio.spawn(grandchild(), name="grandchild")
        await rio.sleep(10)

    async def main() -> None:
        me = rio.current_task()
        assert me is not None and me.parent is None
        kid = rio.spawn(child(), name="child")
        other = rio.spawn(sleeper(), name="other")
        await rio.sleep(1)  # the child spawns its own child
        assert kid.parent is me and other.parent is me
        assert me.children() == [kid, other]
        (grand,) = kid.children()
        assert grand.name == "grandchild" and grand.parent is kid
        assert grand.children() == []
        other.cancel()
        await rio.sleep(1)
        assert me.children() == [kid]  # only live children
        kid.cancel()
        await rio.sleep(1)
        # the parent finished: the grandchild outlives it, keeps its id, and is
        # still found among the finished task's children
        assert kid.done() and grand.parent is None and grand.parent_id == kid.id
        assert kid.children() == [grand]
        grand.cancel()

    run(main)


def test_parent_holds_no_reference(run: Any) -> None:
    async def spawner() -> rio.Task[None]:
        return rio.spawn(sleeper(), name="orphan")

    async def main() -> None:
        spawning = rio.spawn(spawner())
        orphan = await spawning
        ref = weakref.ref(spawning)
        del spawning
        gc.collect()
        assert ref() is None  # the child does not keep its parent alive
        assert orphan.parent is None and orphan.parent_id != 0
        me = rio.current_task()
        assert me is not None and me.parent_id == 0
        orphan.cancel()

    run(main)


def test_counters_and_age(run: Any) -> None:
    async def main() -> None:
        event = rio.Event()
        task = rio.spawn(nested_outer(event))
        assert task.polls == 0 and task.wakes == 0
        started = rio.monotonic()
        assert task.spawned_at == started
        await rio.sleep(2.5)
        assert task.polls == 1 and task.wakes == 0
        assert task.age == pytest.approx(2.5)
        event.set()
        await task
        assert task.polls == 2 and task.wakes == 1
        for _ in range(3):
            await rio.yield_now()
        me = rio.current_task()
        assert me is not None and me.polls >= 5
        assert me.step_time == 0.0  # not instrumented

    run(main)


# ---- stacks and the dump


def test_task_stack_follows_the_await_chain(run: Any) -> None:
    async def main() -> None:
        event = rio.Event()
        task = rio.spawn(nested_outer(event), name="nested")
        await rio.yield_now()
        stack = rio.task_stack(task)
        assert [frame.name for frame in stack.frames] == ["nested_outer", "nested_inner"]
        assert all(frame.filename == __file__ for frame in stack.frames)
        assert stack.frames[1].lineno == nested_inner.__code__.co_firstlineno + 1
        assert "Waiter" in repr(stack.leaf) or "Event" in repr(stack.leaf)
        sleeping = rio.spawn(sleeper(), name="sleeping")
        await rio.yield_now()
        sleep_stack = rio.task_stack(sleeping)
        assert [f.name for f in sleep_stack.frames] == ["sleeper"]
        assert isinstance(sleep_stack.leaf, rio.Sleep)
        joiner = rio.spawn(_join(sleeping))
        await rio.yield_now()
        assert rio.task_stack(joiner).leaf is sleeping
        event.set()
        await task
        assert rio.task_stack(task) == rio.TaskStack([], None)
        sleeping.cancel()
        await rio.yield_now()

    run(main)


async def _join(task: rio.Task[Any]) -> None:
    await task


def test_task_stack_of_a_task_parked_on_an_asyncio_future() -> None:
    async def waits_on(fut: asyncio.Future[int]) -> int:
        return await fut

    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        task = rio.spawn(waits_on(fut), name="bridged")
        await rio.yield_now()
        stack = rio.task_stack(task)
        assert [f.name for f in stack.frames] == ["waits_on"]
        assert stack.leaf is fut
        fut.set_result(1)
        assert await task == 1

    rio.block_on(main())


def test_dump_names_tasks_states_ages_and_stacks(run: Any) -> None:
    out = io.StringIO()

    async def main() -> None:
        event = rio.Event()
        task = rio.spawn(nested_outer(event), name="worker")
        rio.spawn(sleeper(), name="napper")
        await rio.sleep(1.5)
        rio.dump_tasks(out)
        event.set()
        await task
        for other in rio.all_tasks():
            if other is not rio.current_task():
                other.cancel()

    run(main)
    text = out.getvalue()
    assert "3 rio tasks, 0 asyncio tasks" in text
    lines = text.splitlines()
    worker = next(i for i, line in enumerate(lines) if "'worker'" in line)
    assert "state=IDLE" in lines[worker] and "age=1.500s" in lines[worker]
    assert "parent='main'" in lines[worker] and "polls=1 wakes=0" in lines[worker]
    assert lines[worker + 1].strip().startswith(f"nested_outer() at {__file__}:")
    assert lines[worker + 2].strip().startswith(f"nested_inner() at {__file__}:")
    assert lines[worker + 3].strip().startswith("waiting on ")
    assert any("'main'" in line and "state=RUNNING" in line for line in lines)
    napper = next(i for i, line in enumerate(lines) if "'napper'" in line)
    assert "rio Sleep until" in lines[napper + 2]


@pytest.mark.parametrize("kind", ["asyncio.Task", "create_task"])
def test_dump_on_rios_loop_includes_asyncio_tasks(kind: str) -> None:
    """CPython's asyncio tasks on rio's loop are listed as asyncio tasks; what
    create_task makes there is a rio Task, listed with the rio tasks."""
    out = io.StringIO()

    async def asyncio_side(event: asyncio.Event) -> None:
        await event.wait()

    async def main() -> None:
        event = asyncio.Event()
        if kind == "asyncio.Task":
            atask = asyncio.Task(asyncio_side(event), name="aio-side")
        else:
            atask = asyncio.get_running_loop().create_task(asyncio_side(event), name="aio-side")
        native = rio.spawn(sleeper(), name="native")
        await asyncio.sleep(0)
        rio.dump_tasks(out)
        event.set()
        await atask
        native.cancel()

    rio.block_on(main())
    text = out.getvalue()
    lines = text.splitlines()
    if kind == "asyncio.Task":
        assert "rio runtime Loop: 2 rio tasks, 1 asyncio tasks" in text
        aio = next(i for i, line in enumerate(lines) if "asyncio task 'aio-side'" in line)
        assert "state=pending" in lines[aio]
    else:
        assert "rio runtime Loop: 3 rio tasks, 0 asyncio tasks" in text
        aio = next(i for i, line in enumerate(lines) if "rio task 'aio-side'" in line)
        assert "state=IDLE" in lines[aio]
    assert lines[aio + 1].strip().startswith("asyncio_side() at ")
    assert any(line.strip().startswith("waiting on <Future pending") for line in lines[aio:])


def test_dump_without_a_runtime() -> None:
    out = io.StringIO()
    rio.dump_tasks(out)
    assert out.getvalue() == "rio: no runtime is running in this thread\n"


# ---- opt-in step timing


def test_instrument_counts_busy_time_and_the_histogram() -> None:
    def busy() -> None:
        deadline = time.perf_counter() + 0.003  # time is the subject: a 3 ms step
        while time.perf_counter() < deadline:
            pass

    async def work() -> None:
        busy()
        await rio.yield_now()

    async def main() -> rio.Task[None]:
        task = rio.spawn(work())
        await task
        return task

    rt = rio.Runtime(autojump_clock=True, instrument=True)
    assert rt.instrumented
    task = rt.block_on(main())
    stats = rt.stats()
    histogram = stats["step_histogram"]
    assert len(histogram) == 32
    assert sum(histogram) >= 4  # main: 2+ steps, work: 2 steps
    # the 3 ms step lands in bucket 12 ([2048, 4096) us) or just above (a slow machine)
    assert sum(histogram[12:]) >= 1
    assert stats["busy_time"] >= 0.003
    assert 0.003 <= task.step_time <= stats["busy_time"]


def test_not_instrumented_by_default_and_switchable() -> None:
    async def main() -> None:
        await rio.yield_now()

    rt = rio.Runtime(autojump_clock=True)
    assert not rt.instrumented
    rt.block_on(main())
    assert rt.stats()["busy_time"] == 0.0 and sum(rt.stats()["step_histogram"]) == 0
    rt.instrument()
    rt.block_on(main())
    counted = sum(rt.stats()["step_histogram"])
    assert counted >= 2
    rt.instrument(False)
    rt.block_on(main())
    assert sum(rt.stats()["step_histogram"]) == counted


def test_instrumented_loop() -> None:
    loop = rio.new_event_loop(instrument=True)
    try:
        assert loop.instrumented
        loop.run_until_complete(asyncio.sleep(0))
        assert sum(loop.stats()["step_histogram"]) >= 1  # asyncio steps are handles
    finally:
        loop.close()


# ---- tracing hooks


def test_hooks_see_spawn_polls_and_exit_in_order() -> None:
    events: list[tuple[str, str]] = []

    async def child() -> None:
        await rio.yield_now()

    async def main() -> None:
        await rio.spawn(child(), name="child")

    rt = rio.Runtime(autojump_clock=True)
    rt.set_hooks(
        on_spawn=lambda t: events.append(("spawn", t.name)),
        before_poll=lambda t: events.append(("before", t.name)),
        after_poll=lambda t: events.append(("after", t.name)),
        on_exit=lambda t: events.append(("exit", t.name)),
    )
    rt.block_on(main())
    child_events = [kind for kind, name in events if name == "child"]
    assert child_events == ["spawn", "before", "after", "before", "exit", "after"]
    assert events[0] == ("spawn", "main") and events[-1] == ("after", "main")
    assert events.count(("exit", "main")) == 1
    rt.set_hooks()  # all off again
    events.clear()
    rt.block_on(main())
    assert events == []


def test_a_failing_hook_is_reported_not_fatal(unraisable: list[Any]) -> None:
    def broken(task: rio.Task[Any]) -> None:
        raise ValueError("hook bug")

    async def main() -> int:
        await rio.yield_now()
        return 7

    rt = rio.Runtime(autojump_clock=True)
    rt.set_hooks(before_poll=broken)
    assert rt.block_on(main()) == 7
    assert unraisable and all(isinstance(r.exc_value, ValueError) for r in unraisable)
    with pytest.raises(TypeError, match="callable"):
        rt.set_hooks(on_spawn=42)  # type: ignore[arg-type]


# ---- python -m rio_rt --dump-on SIGUSR1

SCRIPT = """
import sys
import rio_rt as rio

async def stuck_here():
    await rio.sleep(60)

async def main():
    rio.spawn(stuck_here(), name="the-sleeper")
    await rio.sleep(0)
    print("ready", flush=True)
    await rio.sleep(60)

rio.block_on(main())
"""


def _read_until(stream: Any, needle: bytes, seconds: float) -> bytes:
    """Read ``stream`` until ``needle`` appears or ``seconds`` pass."""
    got = b""
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        while needle not in got:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                break
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            got += chunk
    return got


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_dump_on_signal(tmp_path: Path) -> None:
    script = tmp_path / "sleepy.py"
    script.write_text(textwrap.dedent(SCRIPT))
    with subprocess.Popen(
        [sys.executable, "-m", "rio_rt", "--dump-on", "SIGUSR1", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,  # outside the source tree: import the installed package
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            assert b"ready" in _read_until(proc.stdout, b"ready", 20.0)
            proc.send_signal(signal.SIGUSR1)
            dump = _read_until(proc.stderr, b"waiting on", 20.0).decode()
            assert proc.poll() is None, "the program must keep running after the dump"
        finally:
            proc.kill()
            proc.wait(timeout=20)
    assert "'the-sleeper'" in dump and "state=IDLE" in dump
    assert f"stuck_here() at {script}:" in dump
    assert "rio Sleep until" in dump


def test_dump_on_rejects_a_bad_signal(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rio_rt", "--dump-on", "SIGNOPE", "x.py"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,  # outside the source tree: import the installed package
    )
    assert done.returncode == 2 and "unknown signal 'SIGNOPE'" in done.stderr
