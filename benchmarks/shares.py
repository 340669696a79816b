"""Where a workload's instructions go, counted by callgrind: the engine, CPython's C
asyncio, the bytecode loop, the cyclic GC, the allocator and the rest of CPython.

    python benchmarks/shares.py [--python PYTHON] NAME[:RUNNER] [NAME[:RUNNER] ...]

For each workload (the runner defaults to ``rio`` or, for ``aio_*`` workloads,
``rio-loop``; any runner of the workload can be named, ``aio_sleeps:asyncio``), the
body runs once and three times under ``valgrind --tool=callgrind``, as in
``instructions.py``; half the per-function difference is one run, start-up and
warm-up excluded. Every function's own instructions (not its callees') land in one
share:

| share | functions |
|---|---|
| engine | in a ``rio_core`` extension module, GC traversal excepted |
| asyncio C | in CPython's ``_asyncio`` module (its C ``Future``, ``Task``, helpers) |
| bytecode | ``_PyEval_EvalFrameDefault``: every line of Python run, the program's and asyncio's |
| GC | ``gcmodule.c``, and every ``tp_traverse`` (the engine's types included) |
| alloc | ``obmalloc.c``: the object allocator |
| other CPython | the rest: calls, frames, dicts, attribute look-ups, refcounts, libc |

Instructions are not time, but the shares bound what a faster engine can win: with
the engine costing nothing, a run would shrink by at most the engine's share (a little
more, since the engine's calls into CPython count as CPython's). Needs valgrind and
``callgrind_annotate``; hash randomisation is off.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from instructions import run_callgrind

SHARES = ("engine", "asyncio C", "bytecode", "GC", "alloc", "other CPython")

# "1,234 (0.12%)  path/file.c:function'2 [object]"; the object is missing on lines of
# code inlined from a header, which belong to the function's object
LINE = re.compile(r"^\s*([\d,]+)\s+\([\s\d.]+%\)\s+(\S+?):(\S+?)(?:'\d+)?(?:\s+\[(.+)\])?\s*$")


def share(path: str, function: str, obj: str) -> str:
    if "traverse" in function or function.startswith("visit_") or path.endswith("gcmodule.c"):
        return "GC"
    if path.endswith("/gc.c"):  # CPython 3.13's collector
        return "GC"
    if "rio_core" in obj or "rio_core" in function:
        return "engine"
    if "_asyncio" in obj:
        return "asyncio C"
    if function == "_PyEval_EvalFrameDefault":
        return "bytecode"
    if path.endswith("obmalloc.c"):
        return "alloc"
    return "other CPython"


def per_function(python: str, name: str, runner: str, runs: int) -> Counter[str]:
    """Instructions per share for ``runs`` runs of the body, start-up included."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        run_callgrind(python, name, runner, runs, out)
        annotated = subprocess.run(
            ["callgrind_annotate", "--threshold=100", "--inclusive=no", str(out)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    rows = [m.groups() for m in map(LINE.match, annotated.splitlines()) if m is not None]
    objects = {function: named for _, _, function, named in rows if named}
    shares: Counter[str] = Counter()
    for count, path, function, named in rows:
        obj = named or objects.get(function, "")
        shares[share(path, function, obj)] += int(count.replace(",", ""))
    return shares


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", default=sys.executable, help="the interpreter to measure")
    parser.add_argument("workloads", nargs="+", metavar="NAME[:RUNNER]")
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_annotate"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed")
    print(f"{'workload':24} {'runner':9} {'Minstr':>8} " + " ".join(f"{s:>13}" for s in SHARES))
    for spec in args.workloads:
        name, _, runner = spec.partition(":")
        runner = runner or ("rio-loop" if name.startswith("aio_") else "rio")
        three = per_function(args.python, name, runner, 3)
        one = per_function(args.python, name, runner, 1)
        run = {s: max(three[s] - one[s], 0) / 2 for s in SHARES}
        total = sum(run.values()) or 1.0
        cells = " ".join(f"{100 * run[s] / total:12.1f}%" for s in SHARES)
        print(f"{name:24} {runner:9} {total / 1e6:8.1f} {cells}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
