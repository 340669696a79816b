"""A bounded worker pool: a producer feeds jobs through a rio.channel to a fixed set of
workers; each job fans out into parts, at most LIMIT parts in flight across the whole pool
(a rio.Semaphore); a reporter task prints progress every PERIOD seconds (a rio.interval).

    python examples/worker_pool.py

Runs in well under a second and exits by itself.
"""

from __future__ import annotations

import rio_rt as rio

WORKERS = 4  # tasks taking jobs from the channel
JOBS = 40
PARTS = 5  # each job fans out into this many parts...
LIMIT = 8  # ...and at most this many parts run at once, over all workers
PERIOD = 0.02  # seconds between progress reports


class Stats:
    def __init__(self) -> None:
        self.jobs_done = 0
        self.in_flight = 0
        self.peak = 0


async def part(job: int, index: int, limit: rio.Semaphore, stats: Stats) -> int:
    async with limit:  # waits (FIFO) while LIMIT parts are running
        stats.in_flight += 1
        stats.peak = max(stats.peak, stats.in_flight)
        await rio.sleep(0.002)  # the work: a request, a query...
        stats.in_flight -= 1
    return job * 10 + index


async def worker(
    jobs: rio.Receiver[int],
    results: rio.Sender[tuple[int, int]],
    limit: rio.Semaphore,
    stats: Stats,
) -> None:
    with jobs, results:  # close this worker's handles when it is done
        async for job in jobs:  # ends once the producer closed its sender and all is taken
            tasks = [rio.spawn(part(job, i, limit, stats)) for i in range(PARTS)]
            total = sum([await task for task in tasks])
            stats.jobs_done += 1
            await results.send((job, total))


async def reporter(stats: Stats) -> None:
    ticks = rio.interval(PERIOD, missed_tick="skip")
    await ticks.tick()  # the first tick is immediate: report from the second on
    async for _deadline in ticks:
        print(f"  progress: {stats.jobs_done}/{JOBS} jobs, {stats.in_flight} parts in flight")


async def main() -> None:
    started = rio.monotonic()
    stats = Stats()
    limit = rio.Semaphore(LIMIT)
    jobs_tx, jobs_rx = rio.channel(WORKERS)  # bounded: the producer waits for the workers
    results_tx, results_rx = rio.channel(None)

    progress = rio.spawn(reporter(stats))
    workers = [
        rio.spawn(worker(jobs_rx.clone(), results_tx.clone(), limit, stats)) for _ in range(WORKERS)
    ]
    jobs_rx.close()  # the workers hold their own handles now
    results_tx.close()

    async def produce() -> None:
        with jobs_tx:
            for job in range(JOBS):
                await jobs_tx.send(job)

    producer = rio.spawn(produce())
    # Ends once every worker closed its results handle (so after every job).
    checksum = 0
    received = 0
    async for _job, total in results_rx:
        checksum += total
        received += 1
    await producer
    for task in workers:
        await task
    progress.cancel()
    try:
        await progress
    except rio.CancelledError:
        pass

    print(
        f"{received} jobs by {WORKERS} workers, {received * PARTS} parts, "
        f"at most {stats.peak} of {LIMIT} in flight, checksum {checksum}, "
        f"in {rio.monotonic() - started:.3f} s"
    )


if __name__ == "__main__":
    rio.block_on(main())
