"""Instructions per workload run, counted by callgrind: a noise-free before/after.

    python benchmarks/instructions.py --before VENV_A/bin/python --after VENV_B/bin/python
                                      NAME[:RUNNER] [NAME[:RUNNER] ...]

Wall-clock ratios on a shared machine move by tens of percent from run to run;
instruction counts do not. For each workload (``yield``, ``aio_ping_pong:rio-loop``;
the runner defaults to ``rio``, or ``rio-loop`` for ``aio_*`` workloads) and each build,
the workload's body runs once and three times under ``valgrind --tool=callgrind``; half
the difference is the instructions of one run, start-up and warm-up excluded. Reported:
millions of instructions per run for each build, and before / after (above 1: the
after build executes fewer instructions). Needs valgrind; hash randomisation is off.

Instructions are not time (cache misses and branch prediction are not counted), so
this complements ``compare_builds.py``; it does not replace it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def body_main(name: str, runner: str, runs: int) -> None:
    """In the measured process: run ``name``'s ``runner`` body ``runs`` times."""
    sys.path.insert(0, str(HERE))
    import aio_workloads  # noqa: F401  (registers the asyncio-door workloads)
    import net_workloads  # noqa: F401  (registers the TCP workloads)
    import sync_workloads  # noqa: F401  (registers the channel, lock and semaphore workloads)
    from workloads import WORKLOADS

    body = WORKLOADS[name].bodies[runner]
    for _ in range(runs):
        body()


def run_callgrind(python: str, name: str, runner: str, runs: int, out: Path) -> str:
    """Run ``name``'s ``runner`` body ``runs`` times under callgrind, writing its
    profile to ``out``; return valgrind's report (stderr)."""
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        python,
        str(Path(__file__).resolve()),
        "--body",
        name,
        runner,
        str(runs),
    ]
    # the same start-up in every run: no hash randomisation, and no .pyc written
    # by the first run for the next to load
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(command, capture_output=True, text=True, cwd=out.parent, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{python} {name}:{runner}: exit status {done.returncode}")
    return done.stderr


def instructions(python: str, name: str, runner: str, runs: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = run_callgrind(python, name, runner, runs, Path(tmp) / "callgrind.out")
    match = re.search(r"Collected\s*:\s*(\d+)", report)
    if match is None:
        sys.stderr.write(report[-4000:])
        raise SystemExit(f"{python} {name}:{runner}: no instruction count in valgrind's report")
    return int(match.group(1))


def per_run(python: str, name: str, runner: str) -> int:
    return (instructions(python, name, runner, 3) - instructions(python, name, runner, 1)) // 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--body"]:
        body_main(argv[1], argv[2], int(argv[3]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, metavar="PYTHON")
    parser.add_argument("--after", required=True, metavar="PYTHON")
    parser.add_argument("workloads", nargs="+", metavar="NAME[:RUNNER]")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed")
    print(f"{'workload':24} {'runner':9} {'before Minstr':>14} {'after Minstr':>13} {'ratio':>7}")
    for spec in args.workloads:
        name, _, runner = spec.partition(":")
        runner = runner or ("rio-loop" if name.startswith("aio_") else "rio")
        before = per_run(args.before, name, runner)
        after = per_run(args.after, name, runner)
        print(
            f"{name:24} {runner:9} {before / 1e6:14.1f} {after / 1e6:13.1f} {before / after:6.3f}x",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
