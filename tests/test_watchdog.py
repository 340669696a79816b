"""The stuck-step watchdog: ``Runtime(slow_poll=..., on_slow_poll=...)`` and the same
on rio's loop. Time is the subject here: the stuck steps really block (time.sleep)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest
import rio_core

import rio_rt as rio

THRESHOLD = 0.05
STUCK_FOR = 0.3


def blocking_call() -> float:
    """The function a stuck step is in: returns when it ended (real monotonic s)."""
    time.sleep(STUCK_FOR)
    return rio_core._runtime._real_monotonic_ns() / 1e9


def watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "rio-watchdog"]


def test_a_stuck_step_is_reported_once_while_it_runs() -> None:
    reports: list[rio.SlowPoll] = []
    ended: list[float] = []

    async def stuck() -> None:
        ended.append(blocking_call())
        await rio.yield_now()

    async def main() -> None:
        task = rio.spawn(stuck(), name="stuck")
        await task
        reports.append(task)  # type: ignore[arg-type]  # marker: the task, last

    rt = rio.Runtime(slow_poll=THRESHOLD, on_slow_poll=reports.append)
    assert rt.slow_poll == THRESHOLD
    rt.block_on(main())
    *found, task = reports
    assert len(found) == 1, found
    (report,) = found
    assert report.entry is task
    assert report.reported_at < ended[0], "reported while the step was still running"
    assert THRESHOLD <= report.seconds < STUCK_FOR
    assert report.started <= report.reported_at
    names = [frame.name for frame in report.stack]
    assert "blocking_call" in names and "stuck" in names
    assert names[-1] == "blocking_call"  # the innermost frame: where it is stuck
    assert "'stuck'" in report.format() and "blocking_call" in report.format()
    assert watchdog_threads() == [], "the watchdog stops with the runtime"


def test_a_fast_program_gets_no_report() -> None:
    reports: list[rio.SlowPoll] = []

    async def main() -> None:
        for _ in range(50):
            await rio.yield_now()
        await rio.sleep(STUCK_FOR)  # parked, not stuck: a long sleep is no slow step

    rio.Runtime(slow_poll=THRESHOLD, on_slow_poll=reports.append).block_on(main())
    assert reports == []
    assert watchdog_threads() == []


def test_the_default_report_is_a_logging_warning(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        blocking_call()

    with caplog.at_level(logging.WARNING, logger="rio_rt"):
        rio.Runtime(slow_poll=THRESHOLD).block_on(main())
    records = [r for r in caplog.records if r.name == "rio_rt"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    message = records[0].getMessage()
    assert "has been running one step for" in message and "blocking_call" in message


def test_watchdog_on_rios_loop() -> None:
    reports: list[rio.SlowPoll] = []

    async def asyncio_stuck() -> None:
        blocking_call()

    async def main() -> None:
        await asyncio.get_running_loop().create_task(asyncio_stuck(), name="aio-stuck")

    loop = rio.new_event_loop(slow_poll=THRESHOLD, on_slow_poll=reports.append)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert len(reports) == 1
    (report,) = reports
    assert isinstance(report.entry, asyncio.Task) and report.entry.get_name() == "aio-stuck"
    assert "aio-stuck" in report.format()
    assert "blocking_call" in [frame.name for frame in report.stack]
    assert watchdog_threads() == []


def test_slow_poll_is_checked_and_switchable() -> None:
    with pytest.raises(ValueError, match="positive"):
        rio.Runtime(slow_poll=0)
    with pytest.raises(TypeError, match="callable"):
        rio.Runtime(slow_poll=1.0, on_slow_poll=42)  # type: ignore[arg-type]
    reports: list[Any] = []
    rt = rio.Runtime()
    assert rt.slow_poll is None

    async def main() -> None:
        blocking_call()

    rt.block_on(main())
    assert reports == []
    rt.set_slow_poll(THRESHOLD, reports.append)
    rt.block_on(main())
    assert len(reports) == 1
    rt.set_slow_poll(None)
    rt.block_on(main())
    assert len(reports) == 1

    async def change_while_running() -> None:
        with pytest.raises(RuntimeError, match="before the runtime runs"):
            rt.set_slow_poll(1.0)

    rt.block_on(change_while_running())


def test_a_failing_callback_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken(report: rio.SlowPoll) -> None:
        raise ValueError("callback bug")

    async def main() -> None:
        blocking_call()

    with caplog.at_level(logging.ERROR, logger="rio_rt"):
        rio.Runtime(slow_poll=THRESHOLD, on_slow_poll=broken).block_on(main())
    assert any("on_slow_poll callback failed" in r.getMessage() for r in caplog.records)
