"""The native API under ``mypy --strict``: a typed tour that also runs.

``make lint`` type-checks this file (see [tool.mypy] in pyproject.toml), so it
keeps the ``.pyi`` stubs of ``rio_core`` honest from the user's side, while
``mypy.stubtest`` checks them against the compiled modules.

    python examples/typed_usage.py
"""

from __future__ import annotations  # rio's generic types are not subscriptable at run time

import socket
import time
from typing import TYPE_CHECKING

import rio_rt as rio
from rio_rt import lowlevel
from rio_rt.net import TcpListener, TcpStream

if TYPE_CHECKING:
    # The type of rio.PENDING has no public name yet; it exists for the type checker.
    from rio_core._runtime import _Pending


class Flag(rio.Future):
    """A leaf future: ready once ``set()`` was called (from any thread)."""

    def __init__(self) -> None:
        self.is_set = False
        self.waker: rio.Waker | None = None

    def poll(self, cx: rio.Context) -> rio.Ready[bool] | _Pending:
        if self.is_set:
            return rio.Ready(True)
        self.waker = cx.waker  # whoever sets the flag wakes the task
        return rio.PENDING

    def set(self) -> None:
        self.is_set = True
        if self.waker is not None:
            self.waker.wake()


async def double(i: int) -> int:
    await rio.sleep(0.001 * i)
    return i * 2


async def wait_for_flag(flag: Flag) -> bool:
    ready: bool = await flag
    return ready


async def forever() -> None:
    await rio.sleep(3600)


async def tasks_and_futures() -> None:
    tasks: list[rio.Task[int]] = [rio.spawn(double(i), name=f"double-{i}") for i in range(10)]
    results: list[int] = [await task for task in tasks]
    assert results == [i * 2 for i in range(10)]
    assert all(
        task.done() and task.result() == result for task, result in zip(tasks, results, strict=True)
    )

    flag = Flag()
    waiter = rio.spawn(wait_for_flag(flag))
    await rio.yield_now()  # let the waiter park on the flag
    flag.set()
    assert await waiter is True

    handoff: rio.Oneshot[str] = rio.Oneshot()
    rio.spawn_blocking(handoff.set, "from a pool thread")
    message: str = await handoff
    assert message == "from a pool thread"

    current = rio.current_task()
    assert current is not None and current.name == "main"


async def time_and_cancellation() -> None:
    start = rio.monotonic()
    await rio.sleep_until(start + 0.01)
    assert rio.monotonic() >= start + 0.01

    try:
        async with rio.timeout(0.01):
            await rio.sleep(10)
    except TimeoutError:
        pass
    assert await rio.wait_for(double(1), 1.0) == 2

    sleeper = rio.spawn(forever())
    await rio.yield_now()
    assert sleeper.cancel("no longer needed")
    try:
        await sleeper
    except rio.CancelledError:
        assert sleeper.cancelled()

    token = rio.CancellationToken()
    child: rio.CancellationToken = token.child_token()
    doubled: int | None = await child.run_until_cancelled(double(2))
    assert doubled == 4
    token.cancel()  # safe from any thread; cancels the child too
    await child.cancelled()
    assert child.is_cancelled() and await child.run_until_cancelled(double(3)) is None

    fired: list[float] = []
    handle: lowlevel.TimerHandle = lowlevel.call_at(rio.monotonic() + 0.005, fired.append, 1.5)
    await rio.sleep(0.01)
    assert fired == [1.5] and not handle.cancelled()

    def measure_sleep(seconds: float) -> float:
        start = time.perf_counter()
        time.sleep(seconds)
        return time.perf_counter() - start

    elapsed: float = await rio.spawn_blocking(measure_sleep, 0.01)
    assert elapsed >= 0.01

    nap = rio.Sleep(10)
    nap.reset(rio.monotonic() + 0.005)
    await nap
    assert nap.is_elapsed()

    ticks: rio.Interval = rio.interval(0.005, missed_tick="skip")
    first: float = await ticks.tick()  # immediate
    async for deadline in ticks:
        assert deadline > first  # one period (5 ms) later, on the grid
        break


async def loopback() -> None:
    async with await TcpListener.bind("127.0.0.1", 0) as listener:
        host, port = listener.local_address
        async with await TcpStream.connect(host, port) as client:
            server, _address = await listener.accept()
            with server.socket:
                assert server.socket.family == socket.AF_INET
                await client.write_all(b"ping")
                data: bytes = await server.read_exact(4)
                assert data == b"ping"
                server.close()


async def serve(greeting: str, *, task_status: rio.TaskStatus) -> None:
    task_status.started(f"{greeting}: ready")


async def groups() -> None:
    js: rio.JoinSet[int] = rio.JoinSet()
    for i in (3, 1, 2):
        js.spawn(double(i))
    first: rio.Task[int] | None = await js.join_next()
    assert first is not None and first.result() in (2, 4, 6)
    rest: list[int] = await js.join_all()
    assert len(rest) == 2
    async with rio.TaskGroup() as tg:
        child: rio.Task[int] = tg.spawn(double(5))
        status = await tg.start(serve, "server")
        assert status == "server: ready"
    assert child.result() == 10


async def main() -> int:
    await tasks_and_futures()
    await groups()
    await time_and_cancellation()
    await loopback()
    runtime = lowlevel.current_runtime()
    assert runtime is not None
    return runtime.stats()["polls"]


if __name__ == "__main__":
    polls = rio.Runtime().block_on(main())
    print(f"typed_usage: ok ({polls} task polls)")
