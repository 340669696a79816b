"""Cancellation: at await points, of joins, before the first step, and Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

import rio_rt as rio


def test_cancelled_error_is_asyncio_cancelled_error():
    assert rio.CancelledError is asyncio.CancelledError


def test_cancel_during_sleep_cancels_the_timer_entry():
    rt = rio.Runtime(autojump_clock=True)
    log = []

    async def sleeper():
        try:
            await rio.sleep(1000)
            log.append("woke")
        finally:
            log.append("finally")

    async def main():
        base = rt.stats()
        task = rio.spawn(sleeper())
        await rio.yield_now()  # the sleeper parks on its timer
        armed = rt.stats()
        assert armed["timers"] == base["timers"] + 1
        assert task.cancel() is True
        with pytest.raises(rio.CancelledError):
            await task
        after_cancel = rt.stats()
        # live timer count drops, or the entry is marked cancelled for lazy removal
        assert (
            after_cancel["timers"] < armed["timers"]
            or after_cancel["timers_cancelled"] > armed["timers_cancelled"]
        )
        start = rio.monotonic()
        await rio.sleep(2000)  # well past the sleeper's old deadline
        assert rio.monotonic() - start >= 2000
        return base, rt.stats(), task

    base, final, task = rt.block_on(main())
    assert log == ["finally"]  # never woken by its old timer
    assert task.cancelled()
    assert final["timers"] == base["timers"]


def test_cancel_during_join_leaves_the_joined_task_running(run):
    log = []

    async def long_job():
        await rio.sleep(10)
        log.append("job finished")
        return "job result"

    async def joiner(job):
        try:
            await job
        except rio.CancelledError:
            log.append("joiner cancelled")
            raise

    async def main():
        job = rio.spawn(long_job())
        waiting = rio.spawn(joiner(job))
        await rio.sleep(1)
        assert waiting.cancel() is True
        with pytest.raises(rio.CancelledError):
            await waiting
        assert waiting.cancelled()
        assert not job.done()
        assert not job.cancelled()
        result = await job
        return result

    assert run(main) == "job result"
    assert log == ["joiner cancelled", "job finished"]


def test_finally_blocks_run_in_every_frame(run):
    log = []

    async def inner():
        try:
            await rio.sleep(100)
        finally:
            log.append("inner finally")

    async def outer():
        try:
            await inner()
        finally:
            log.append("outer finally")

    async def main():
        task = rio.spawn(outer())
        await rio.sleep(1)
        task.cancel()
        with pytest.raises(rio.CancelledError):
            await task

    run(main)
    assert log == ["inner finally", "outer finally"]


def test_task_can_catch_cancellation_and_continue(run):
    log = []

    async def stubborn():
        me = rio.current_task()
        try:
            await rio.sleep(100)
        except rio.CancelledError as exc:
            log.append(("caught", exc.args, me.cancelling()))
        # cancel is one-shot: later awaits are not interrupted
        await rio.sleep(5)
        await rio.yield_now()
        log.append(("uncancel", me.uncancel(), me.cancelling()))
        return "survived"

    async def main():
        task = rio.spawn(stubborn())
        await rio.sleep(1)
        assert task.cancel("stop now") is True
        result = await task
        assert not task.cancelled()
        return result

    assert run(main) == "survived"
    assert log == [("caught", ("stop now",), 1), ("uncancel", 0, 0)]


def test_cancel_of_a_finished_task_returns_false_and_does_nothing(run):
    async def quick():
        return "done"

    async def fail():
        raise ValueError("failed")

    async def main():
        ok, bad = rio.spawn(quick()), rio.spawn(fail())
        await rio.yield_now()
        await rio.yield_now()
        assert ok.done() and bad.done()
        assert ok.cancel() is False
        assert bad.cancel() is False
        assert ok.cancel("again") is False
        assert not ok.cancelled() and not bad.cancelled()
        assert ok.result() == "done"
        with pytest.raises(ValueError):
            await bad
        return await ok

    assert run(main) == "done"


def test_cancel_before_the_first_step(run):
    ran = []

    async def body():
        ran.append("body")
        return "never"

    async def main():
        task = rio.spawn(body())
        assert task.cancel() is True
        with pytest.raises(rio.CancelledError):
            await task
        return task

    task = run(main)
    assert ran == []
    assert task.cancelled()


def test_cancelled_task_state(run):
    async def sleeper():
        await rio.sleep(100)

    async def main():
        task = rio.spawn(sleeper())
        await rio.yield_now()
        assert task.cancel("because") is True
        assert not task.done()  # delivered at the task's next step
        assert task.cancel() is True  # still pending: a second request is accepted
        with pytest.raises(rio.CancelledError):
            await task
        with pytest.raises(rio.CancelledError):
            await task  # awaiting again raises again
        return task

    task = run(main)
    assert task.done()
    assert task.cancelled()
    with pytest.raises(rio.CancelledError):
        task.result()


def test_cancel_reaches_a_task_parked_on_a_leaf_future(run):
    class Never(rio.Future):
        def poll(self, cx):
            self.waker = cx.waker
            return rio.PENDING

    log = []

    async def parked():
        try:
            await Never()
        finally:
            log.append("finally")

    async def main():
        task = rio.spawn(parked())
        await rio.yield_now()
        task.cancel()
        with pytest.raises(rio.CancelledError):
            await task

    run(main)
    assert log == ["finally"]


def test_cancel_from_a_sibling_task(run):
    async def victim():
        await rio.sleep(100)

    async def killer(target):
        await rio.sleep(2)
        return target.cancel()

    async def main():
        target = rio.spawn(victim())
        assassin = rio.spawn(killer(target))
        start = rio.monotonic()
        with pytest.raises(rio.CancelledError):
            await target
        elapsed = rio.monotonic() - start
        return await assassin, elapsed

    cancelled, elapsed = run(main)
    assert cancelled is True
    assert 2 <= elapsed < 3


# Ctrl-C for the scripts: os.kill(pid, SIGINT) terminates the process on Windows,
# where raise_signal runs the C handler, as a console Ctrl-C does.
INTERRUPT = """
import os as _os, signal as _signal
def interrupt():
    if _os.name == "nt":
        _signal.raise_signal(_signal.SIGINT)
    else:
        _os.kill(_os.getpid(), _signal.SIGINT)
"""


def run_script(body: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", INTERRUPT + textwrap.dedent(body)],
        cwd=cwd,  # outside the source tree: import the installed package
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=15,
    )


def test_ctrl_c_during_a_step_runs_finally_then_raises_keyboard_interrupt(tmp_path):
    proc = run_script(
        """
        import os, signal
        import rio_rt as rio

        async def main():
            try:
                interrupt()
                await rio.sleep(30)
            finally:
                print("MAIN-FINALLY-RAN", flush=True)

        rio.block_on(main())
        print("NOT-REACHED", flush=True)
        """,
        tmp_path,
    )
    assert "MAIN-FINALLY-RAN" in proc.stdout, proc.stderr
    assert "NOT-REACHED" not in proc.stdout
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in proc.stderr


def test_ctrl_c_while_sleeping_in_the_os(tmp_path):
    """SIGINT arrives while the runtime blocks in the reactor on a 30 s timer."""
    proc = run_script(
        """
        import os, signal, threading, time
        import rio_rt as rio

        async def child():
            try:
                await rio.sleep(30)
            finally:
                print("CHILD-FINALLY-RAN", flush=True)

        async def main():
            rio.spawn(child())
            threading.Timer(0.2, interrupt).start()
            try:
                await rio.sleep(30)
            finally:
                print("MAIN-FINALLY-RAN", flush=True)

        start = time.monotonic()
        try:
            rio.block_on(main())
        finally:
            print(f"ELAPSED {time.monotonic() - start:.3f}", flush=True)
        print("NOT-REACHED", flush=True)
        """,
        tmp_path,
    )
    assert "MAIN-FINALLY-RAN" in proc.stdout, proc.stderr
    assert "CHILD-FINALLY-RAN" in proc.stdout, proc.stderr
    assert "NOT-REACHED" not in proc.stdout
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in proc.stderr
    elapsed = float(proc.stdout.split("ELAPSED ")[1].split()[0])
    assert elapsed < 10  # interrupted, not slept through
