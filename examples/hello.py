"""rio-rt in thirty lines: spawn tasks, sleep, join, time out, run blocking code."""

import time

import rio_rt as rio


async def fetch(i: int) -> int:
    await rio.sleep(0.01 * (i % 5))
    return i * 2


async def main() -> None:
    started = rio.monotonic()
    tasks = [rio.spawn(fetch(i), name=f"fetch-{i}") for i in range(1000)]
    results = [await task for task in tasks]
    print(f"1000 tasks joined in {rio.monotonic() - started:.3f} s, sum={sum(results)}")

    try:
        async with rio.timeout(0.05):
            await rio.sleep(10)
    except TimeoutError:
        print("timeout: the 10 s sleep was cut at 50 ms")

    blocking = rio.spawn_blocking(time.sleep, 0.02)
    await blocking
    print("spawn_blocking: time.sleep ran in the thread pool without blocking the runtime")


if __name__ == "__main__":
    rio.block_on(main())
