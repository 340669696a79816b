"""Structured concurrency: workers started in a rio.TaskGroup and stopped with a
rio.CancellationToken; cleanup shielded from cancellation; deadlines with fail_after and
move_on_after; the fastest of several attempts with a rio.JoinSet.

    python examples/structured.py

Runs in a fraction of a second and exits by itself.
"""

from __future__ import annotations

import rio_rt as rio


async def job(n: int) -> int:
    await rio.sleep(0.002)
    return n


async def worker(
    name: str,
    token: rio.CancellationToken,
    done: list[str],
    *,
    task_status: rio.TaskStatus,
) -> None:
    task_status.started(name)  # the supervisor's start() returns once we are up
    n = 0
    while True:
        result = await token.run_until_cancelled(job(n))  # None once the token is cancelled
        if result is None:
            break
        n += 1
    with rio.CancelScope(shield=True):  # cleanup runs to the end, even if cancelled
        await rio.sleep(0.001)
        done.append(f"{name}: {n > 0 and 'worked' or 'idle'}, closed")


async def attempt(delay: float, label: str) -> str:
    await rio.sleep(delay)
    return label


async def fastest(*delays: float) -> str:
    attempts: rio.JoinSet[str] = rio.JoinSet()
    async with attempts:  # leaving the block cancels the slower ones
        for i, delay in enumerate(delays):
            attempts.spawn(attempt(delay, f"attempt {i}"))
        first = await attempts.join_next()
        assert first is not None
        return first.result()


async def main() -> None:
    token = rio.CancellationToken()
    done: list[str] = []
    async with rio.TaskGroup() as tg:
        names = [await tg.start(worker, f"w{i}", token.child_token(), done) for i in range(3)]
        await rio.sleep(0.02)
        token.cancel()  # safe from any thread; every child token follows
    print(f"started {', '.join(names)}; {'; '.join(sorted(done))}")

    try:
        with rio.fail_after(0.01):
            await rio.sleep(10)
    except TimeoutError:
        print("fail_after: TimeoutError")
    with rio.move_on_after(0.01) as scope:
        await rio.sleep(10)
    print(f"move_on_after: cancelled_caught={scope.cancelled_caught}")
    print(f"fastest: {await fastest(0.05, 0.01, 0.03)}")


if __name__ == "__main__":
    rio.block_on(main())
