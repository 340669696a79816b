"""rio-rt comparison suite: rio native vs stdlib asyncio vs uvloop vs the CPython floor,
and, over TCP, rio's native sockets vs asyncio streams and protocols vs uvloop, and rio's
channel, Lock and Semaphore vs asyncio's (and trio's).

    python benchmarks/run.py [--quick] [--only NAME[,NAME]] [--json OUT] [--markdown OUT]
                             [--min-ratio X] [--repeat R] [--timeout S]

Each workload runs R times per runner (after one untimed warm-up), the runner order
rotated every repetition so machine noise spreads over all runners; the table shows
the median per runner and ratios between medians. "A vs B" is B's time / A's time:
above 1 means A is faster. Workloads with the same runners share a table.

Exit status: 0 ok; 1 a rio-vs-asyncio ratio (for TCP workloads: rio vs asyncio streams)
is below --min-ratio (or rio could not be measured while --min-ratio was given); 2 a
runner raised or produced a wrong result.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import importlib
import json
import platform
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field

import aio_workloads  # noqa: F401  (registers the asyncio-door workloads)
import net_workloads  # noqa: F401  (registers the TCP workloads)
import sync_workloads  # noqa: F401  (registers the channel, lock and semaphore workloads)
from workloads import (
    MISSING_WORKLOADS,
    UNAVAILABLE,
    WORKLOADS,
    Columns,
    Workload,
    WrongResult,
    rio,
    rloop,
    trio,
    unavailable,
    uvloop,
)


def header(columns: Columns) -> list[str]:
    return [
        "workload",
        *(f"{r} ms" for r in columns.runners),
        *(label for label, _, _ in columns.ratios),
    ]


@dataclass
class Result:
    workload: Workload
    samples: dict[str, list[float]] = field(default_factory=dict)  # runner -> seconds
    errors: dict[str, str] = field(default_factory=dict)  # runner -> what went wrong

    def medians(self) -> dict[str, float]:
        return {runner: statistics.median(times) for runner, times in self.samples.items()}

    def ratios(self) -> dict[str, float]:
        medians = self.medians()
        return {
            label: medians[b] / medians[a]
            for label, a, b in self.workload.columns.ratios
            if a in medians and b in medians and medians[a] > 0
        }


def measure(workload: Workload, runners: list[str], repeats: int, timeout: float) -> Result:
    """One untimed warm-up per runner, then `repeats` rounds in rotated runner order.

    A runner that raises is reported (full traceback on stderr) and dropped from this
    workload; the others go on.
    """
    result = Result(workload)
    live = [r for r in runners if r in workload.bodies]

    def timed(runner: str) -> float | None:
        gc.collect()
        # A hung runner (a task parked forever) must not hang CI: dump stacks and exit.
        faulthandler.dump_traceback_later(timeout, exit=True)
        try:
            start = time.perf_counter()
            workload.bodies[runner]()
            return time.perf_counter() - start
        except Exception as exc:
            print(f"\nERROR in {workload.name} / {runner}:", file=sys.stderr)
            traceback.print_exc()
            summary = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, WrongResult):  # a crash: say where
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                summary += f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"
            result.errors[runner] = summary
            result.samples.pop(runner, None)
            live.remove(runner)
            return None
        finally:
            faulthandler.cancel_dump_traceback_later()

    for runner in list(live):
        timed(runner)  # warm-up, and the first correctness check
    for rep in range(repeats):
        shift = rep % len(live) if live else 0
        for runner in live[shift:] + live[:shift]:
            seconds = timed(runner)
            if seconds is not None:
                result.samples.setdefault(runner, []).append(seconds)
    return result


def settle_allocator() -> None:
    """Start every run from the same allocator state: glibc's mmap threshold already raised.

    glibc serves blocks above its mmap threshold (128 KiB at first) with fresh mmaps and
    raises the threshold to the size of the largest mmapped block freed so far, as any
    long-running process soon has. Until then the buffer of asyncio's StreamReader,
    growing and shrinking across 128 KiB, is mapped and faulted in again and again, and
    `bulk` over asyncio streams runs 2.5x slower. Whether an earlier workload freed a big block
    would decide it; freeing one 1 MiB block first decides it the same way every time.
    Elsewhere than glibc this is one harmless allocation.
    """
    block = bytearray(1 << 20)
    del block


def environment() -> dict[str, str]:
    c_task = getattr(asyncio.tasks, "_CTask", None)
    env = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "asyncio Task is the C one": str(c_task is not None and asyncio.Task is c_task),
    }
    if rio is not None:
        env["rio_rt"] = f"{getattr(rio, '__version__', '?')} ({rio.__file__})"
        try:
            debug = importlib.import_module("rio_core").debug_build()
            env["rio build"] = "DEBUG (ratios not meaningful)" if debug else "release"
        except Exception as exc:
            env["rio build"] = f"unknown: {type(exc).__name__}: {exc}"
        try:  # the TCP workloads depend on it: epoll is Linux's, poll(2) the fallback
            backend = importlib.import_module("rio_core._reactor").BACKEND
            if backend == "poll" and sys.platform.startswith("linux"):
                backend += " (the RIO_REACTOR=poll fallback build, not Linux's default epoll)"
            env["rio reactor"] = backend
        except Exception as exc:
            env["rio reactor"] = f"unknown: {type(exc).__name__}: {exc}"
    if uvloop is not None:
        env["uvloop"] = uvloop.__version__
    if rloop is not None:
        env["rloop"] = getattr(rloop, "__version__", "?")
    if trio is not None:
        env["trio"] = trio.__version__
    for runner, why in UNAVAILABLE.items():
        env[f"{runner} skipped (its cells stay empty)"] = why
    for name, why in MISSING_WORKLOADS.items():
        env[f"workload {name} not registered"] = why
    return env


def cells(result: Result) -> list[str]:
    """One table row: workload, median ms per runner, ratios; empty where not measured."""
    medians, ratios = result.medians(), result.ratios()
    columns = result.workload.columns
    row = [result.workload.name]
    for runner in columns.runners:
        if runner in result.errors:
            row.append("ERROR")
        else:
            row.append(f"{medians[runner] * 1e3:.1f}" if runner in medians else "")
    row += [f"{ratios[label]:.2f}x" if label in ratios else "" for label, _, _ in columns.ratios]
    return row


def tables(results: list[Result]) -> list[tuple[Columns, list[Result]]]:
    """Results grouped by their workloads' columns, in order of first appearance."""
    groups: dict[Columns, list[Result]] = {}
    for r in results:
        groups.setdefault(r.workload.columns, []).append(r)
    return list(groups.items())


def text_table(results: list[Result]) -> str:
    """One table per set of columns, separated by a blank line."""
    out = []
    for columns, group in tables(results):
        head = header(columns)
        rows = [head, *(cells(r) for r in group)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        lines = [
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        out.append("\n".join(lines))
    return "\n\n".join(out)


def markdown(results: list[Result], env: dict[str, str], repeats: int) -> str:
    out = ["## rio-rt benchmarks", ""]
    out += [f"- {key}: {value}" for key, value in env.items()]
    out.append(f"- median of {repeats} runs per runner, runner order rotated")
    out += ['- "A vs B" = B time / A time: above 1 means A is faster', ""]
    for columns, group in tables(results):
        head = header(columns)
        out.append("| " + " | ".join(head) + " |")
        out.append("|---|" + "---:|" * (len(head) - 1))
        out += ["| " + " | ".join(cells(r)) + " |" for r in group]
        out.append("")
    out.pop()
    errors = [
        f"- {r.workload.name} / {runner}: {msg}"
        for r in results
        for runner, msg in r.errors.items()
    ]
    if errors:
        out += ["", "**Errors**", "", *errors]
    return "\n".join(out) + "\n"


def as_json(results: list[Result], env: dict[str, str], repeats: int) -> dict[str, object]:
    return {
        "environment": env,
        "repeats": repeats,
        "runners": runner_names(results),
        "columns": {
            r.workload.name: {
                "runners": list(r.workload.columns.runners),
                "ratios": [label for label, _, _ in r.workload.columns.ratios],
                "gated_ratio": r.workload.columns.gated,
            }
            for r in results
        },
        "medians_s": {r.workload.name: r.medians() for r in results},
        "ratios": {r.workload.name: r.ratios() for r in results},
        "samples_s": {r.workload.name: r.samples for r in results},
        "params": {r.workload.name: dict(r.workload.params) for r in results},
        "errors": {r.workload.name: r.errors for r in results if r.errors},
    }


def runner_names(results: list[Result]) -> list[str]:
    """Every runner column of these results, in table order, each once."""
    return list(dict.fromkeys(r for c, _ in tables(results) for r in c.runners))


def gate(results: list[Result], min_ratio: float) -> bool:
    """True when every workload's gated ratio (rio vs asyncio) is at least min_ratio."""
    ok = True
    for r in results:
        gated = r.workload.columns.gated
        ratio = r.ratios().get(gated)
        if ratio is None:
            print(f"--min-ratio: {r.workload.name}: no '{gated}' ratio", file=sys.stderr)
            ok = False
        elif ratio < min_ratio:
            print(
                f"--min-ratio: {r.workload.name}: {gated} = {ratio:.2f} < {min_ratio}",
                file=sys.stderr,
            )
            ok = False
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 7")
    parser.add_argument("--repeat", type=int, help="repetitions per runner (overrides --quick)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="workload(s) to run: comma-separated or repeated",
    )
    parser.add_argument("--json", metavar="PATH", help="write machine-readable results here")
    parser.add_argument("--markdown", metavar="PATH", help="write the table as markdown here")
    parser.add_argument(
        "--min-ratio",
        type=float,
        metavar="X",
        help="exit 1 if any 'rio vs asyncio' ratio (for TCP workloads: "
        "'rio vs asyncio-streams') is below X",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="abort the run if one measurement takes longer (default 60)",
    )
    args = parser.parse_args(argv)

    repeats = args.repeat if args.repeat is not None else 3 if args.quick else 7
    if repeats < 1:
        parser.error("--repeat must be at least 1")
    names = [n for arg in args.only or [] for n in arg.split(",") if n] or list(WORKLOADS)
    missing = [f"{n} ({MISSING_WORKLOADS[n]})" for n in names if n in MISSING_WORKLOADS]
    if missing:
        parser.error(f"workload(s) not registered here: {', '.join(missing)}")
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; available: {', '.join(WORKLOADS)}")

    faulthandler.enable()  # an engine crash still prints where it happened
    settle_allocator()
    env = environment()
    for key, value in env.items():
        print(f"{key}: {value}")
    selected = [WORKLOADS[name] for name in names]
    runners = [
        r
        for r in dict.fromkeys(r for w in selected for r in w.columns.runners)
        if not unavailable(r)
    ]
    print(f"runners: {', '.join(runners)}; median of {repeats} runs each, order rotated\n")

    results = []
    for workload in selected:
        print(f"{workload.name}: {workload.summary}", flush=True)
        live = [r for r in workload.columns.runners if not unavailable(r)]
        results.append(measure(workload, live, repeats, args.timeout))

    print()
    print(text_table(results))
    print('\n"A vs B" = B median / A median: above 1 means A is faster.')
    for r in results:
        for runner, msg in r.errors.items():
            print(f"ERROR {r.workload.name} / {runner}: {msg}", file=sys.stderr)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(as_json(results, env, repeats), f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(results, env, repeats))

    if any(r.errors for r in results):
        return 2
    if args.min_ratio is not None and not gate(results, args.min_ratio):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
