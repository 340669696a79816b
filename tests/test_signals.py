"""Signals as async events (rio_rt.signal): ``receive(signum)`` and ``ctrl_c()``.

SIGUSR1 tests install a recording Python handler first, so a delivery that
rio fails to catch is recorded instead of killing the test process. SIGINT
tests run in a subprocess: a mistake there raises KeyboardInterrupt, which
would stop the whole pytest session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import rio_rt as rio


def run_io(coro_fn: Callable[[], Awaitable[Any]], *, seconds: float = 10.0) -> Any:
    """Run ``coro_fn()`` on a fresh real-clock runtime, bounded by ``seconds``."""

    async def bounded() -> Any:
        async with rio.timeout(seconds):
            return await coro_fn()

    return rio.Runtime().block_on(bounded())


@pytest.fixture
def usr1_guard() -> Iterator[tuple[Any, list[int]]]:
    """A recording SIGUSR1 handler, in place before and after the test."""
    if not hasattr(signal, "SIGUSR1"):
        pytest.skip("needs POSIX signals (SIGUSR1)")
    calls: list[int] = []

    def record(signum: int, _frame: object) -> None:
        calls.append(signum)

    previous = signal.signal(signal.SIGUSR1, record)
    try:
        yield record, calls
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_receive_gets_a_signal_sent_from_a_task(usr1_guard):
    guard, guard_calls = usr1_guard

    async def main():
        async with rio.signal.receive(signal.SIGUSR1) as signals:
            assert signal.getsignal(signal.SIGUSR1) is not guard

            async def sender() -> None:
                await rio.yield_now()
                os.kill(os.getpid(), signal.SIGUSR1)

            task = rio.spawn(sender())
            got = await anext(signals)
            await task
        return got

    assert run_io(main) == signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) is guard
    assert guard_calls == [], "rio's handler did not replace the previous one"


def test_receive_iterates_once_per_delivery(usr1_guard):
    guard, guard_calls = usr1_guard

    async def main():
        received = []
        async with rio.signal.receive(signal.SIGUSR1) as signals:

            async def sender() -> None:
                for _ in range(3):
                    await rio.yield_now()
                    os.kill(os.getpid(), signal.SIGUSR1)
                    while len(received) < _ + 1:
                        await rio.yield_now()

            task = rio.spawn(sender())
            async for signum in signals:
                received.append(signum)
                if len(received) == 3:
                    break
            await task
        return received

    assert run_io(main) == [signal.SIGUSR1] * 3
    assert signal.getsignal(signal.SIGUSR1) is guard
    assert guard_calls == []


def test_deliveries_before_the_first_await_are_not_lost(usr1_guard):
    async def main():
        signals = rio.signal.receive(signal.SIGUSR1)  # subscribed from here on
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            await rio.yield_now()  # let the Python-level handler run
            os.kill(os.getpid(), signal.SIGUSR1)
            await rio.yield_now()
            async with rio.timeout(2):
                assert await signals == signal.SIGUSR1
                assert await signals == signal.SIGUSR1
        finally:
            signals.close()

    run_io(main)
    assert signal.getsignal(signal.SIGUSR1) is usr1_guard[0]


def test_a_signal_from_another_thread_wakes_a_runtime_sleeping_in_the_os(usr1_guard):
    async def main():
        async with rio.signal.receive(signal.SIGUSR1) as signals:
            sender = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1))
            started = time.monotonic()
            sender.start()
            try:
                got = await signals  # nothing else to do: the runtime blocks in the reactor
            finally:
                sender.join()
            return got, time.monotonic() - started

    got, elapsed = run_io(main)
    assert got == signal.SIGUSR1
    assert elapsed < 2.0, f"the signal woke the runtime only after {elapsed:.2f} s"


def test_every_receiver_gets_the_signal_and_the_handler_returns_after_the_last(usr1_guard):
    guard, _calls = usr1_guard

    async def main():
        first = rio.signal.receive(signal.SIGUSR1)
        second = rio.signal.receive(signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR1)
        await rio.yield_now()
        async with rio.timeout(2):
            assert await first == signal.SIGUSR1
            assert await second == signal.SIGUSR1
        first.close()
        still_installed = signal.getsignal(signal.SIGUSR1) is not guard
        second.close()
        second.close()  # idempotent
        return still_installed

    assert run_io(main) is True
    assert signal.getsignal(signal.SIGUSR1) is guard


def test_a_cancelled_wait_for_a_signal_restores_the_handler(usr1_guard):
    guard, _calls = usr1_guard

    async def wait_for_usr1() -> None:
        async with rio.signal.receive(signal.SIGUSR1) as signals:
            await signals

    async def main():
        waiter = rio.spawn(wait_for_usr1())
        for _ in range(3):
            await rio.yield_now()
        assert signal.getsignal(signal.SIGUSR1) is not guard
        waiter.cancel()
        with pytest.raises(rio.CancelledError):
            await waiter

    run_io(main)
    assert signal.getsignal(signal.SIGUSR1) is guard


def test_awaiting_a_closed_receiver_raises_runtime_error(usr1_guard):
    async def main():
        signals = rio.signal.receive(signal.SIGUSR1)
        signals.close()
        with pytest.raises(RuntimeError):
            await signals

    run_io(main)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ("SIGUSR1", TypeError),
        (True, TypeError),
        (1.0, TypeError),
        (0, ValueError),
        (10_000, ValueError),
        (
            getattr(signal, "SIGKILL", 9),
            ValueError,
        ),  # POSIX: not catchable; Windows: no such signal
    ],
)
def test_receive_checks_the_signal_number(bad, error):
    with pytest.raises(error):
        rio.signal.receive(bad)


def test_receive_outside_the_main_thread_raises_runtime_error(usr1_guard):
    outcome: list[BaseException | None] = []

    async def main():
        try:
            rio.signal.receive(signal.SIGUSR1)
        except RuntimeError as exc:
            return exc
        return None

    def in_thread() -> None:
        outcome.append(run_io(main))

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(10)
    assert isinstance(outcome[0], RuntimeError)
    assert signal.getsignal(signal.SIGUSR1) is usr1_guard[0]


# --------------------------------------------------------------------------- Ctrl-C

CTRL_C_SCRIPT = r"""
import json, os, signal, sys, threading

import rio_rt as rio

MODE = sys.argv[1]
# os.kill(pid, SIGINT) terminates the process on Windows; raise_signal runs the C handler there
interrupt = (
    (lambda: signal.raise_signal(signal.SIGINT)) if os.name == "nt"
    else (lambda: os.kill(os.getpid(), signal.SIGINT))
)
before = signal.getsignal(signal.SIGINT)
report = {"default_before": before is signal.default_int_handler, "main_cancelled": False}


async def main():
    runtime_handler = signal.getsignal(signal.SIGINT)  # block_on's own Ctrl-C handler
    try:
        if MODE == "task":
            # ctrl_c() waits in a task; SIGINT is sent from another task
            waiter = rio.spawn(rio.signal.ctrl_c())
            for _ in range(3):
                await rio.yield_now()
            interrupt()
            async with rio.timeout(5):
                await waiter
        else:
            # the main task waits; SIGINT comes from a thread while the runtime sleeps
            sender = threading.Timer(0.05, interrupt)
            sender.start()
            try:
                async with rio.timeout(5):
                    await rio.signal.ctrl_c()
            finally:
                sender.join()
        report["received"] = True
        report["during_runtime_restored"] = signal.getsignal(signal.SIGINT) == runtime_handler
        await rio.sleep(0.01)  # not cancelled: the main task goes on awaiting
        report["cancelling"] = rio.current_task().cancelling()
        if MODE == "then-interrupt":
            # no ctrl_c() waits now: Ctrl-C cancels the main task as usual
            interrupt()
            await rio.sleep(5)
        return "finished"
    except rio.CancelledError:
        report["main_cancelled"] = True
        raise


try:
    report["result"] = rio.block_on(main())
except KeyboardInterrupt:
    report["keyboard_interrupt"] = True
report["restored"] = signal.getsignal(signal.SIGINT) is before
print(json.dumps(report), flush=True)
"""


def run_ctrl_c_script(mode: str, cwd: Any) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", CTRL_C_SCRIPT, mode],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["task", "thread"])
def test_ctrl_c_receives_sigint_without_cancelling_the_main_task(mode, tmp_path):
    report = run_ctrl_c_script(mode, tmp_path)
    assert report["default_before"], report
    assert report.get("received"), report
    assert report["main_cancelled"] is False, report
    assert report["cancelling"] == 0, report
    assert report.get("result") == "finished", report
    assert "keyboard_interrupt" not in report, report
    assert report["restored"], report


def test_after_ctrl_c_returns_sigint_cancels_the_main_task_again(tmp_path):
    report = run_ctrl_c_script("then-interrupt", tmp_path)
    assert report.get("received"), report
    assert report["during_runtime_restored"], report
    assert report["main_cancelled"] is True, report
    assert report.get("keyboard_interrupt") is True, report
    assert report["restored"], report
