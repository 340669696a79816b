"""Before/after comparison of two rio builds on the same machine.

    python benchmarks/compare_builds.py --before VENV_A/bin/python --after VENV_B/bin/python
                                        [--only NAME[,NAME]] [--repeat R] [--markdown OUT]
                                        [--min-ratio X]

Each interpreter is an environment with one build of rio-rt installed. R rounds; each
round runs `run.py --repeat 1` once with each interpreter (run.py's untimed warm-up
included), and the build that goes first alternates from round to round, so drift on
the machine spreads over both. Reported per workload and rio runner (`rio`, `rio-loop`):
the median over the rounds of each build's time, and "after vs before" = before time /
after time: above 1 means the after build is faster.

Exit status: 0 ok; 1 an "after vs before" ratio is below --min-ratio; 2 a run.py call
failed or a build could not run rio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RUN_PY = Path(__file__).resolve().parent / "run.py"
BUILDS = ("before", "after")

# (workload, rio runner) -> {round: seconds}; a round may lack a sample (the runner
# was dropped for that workload in that run), so pairs are matched by round.
Samples = dict[tuple[str, str], dict[int, float]]


def is_rio_runner(runner: str) -> bool:
    """`rio`, and the runners on rio's backend (`rio-loop`): see `unavailable` in workloads.py."""
    return runner == "rio" or runner.startswith("rio-")


def run_once(python: str, only: list[str]) -> dict[str, Any]:
    """One run.py call with `python`, one repetition: its JSON report."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        command = [python, str(RUN_PY), "--repeat", "1", "--json", str(out)]
        for names in only:
            command += ["--only", names]
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp)
        if done.returncode != 0 or not out.exists():
            sys.stderr.write(done.stdout[-3000:] + done.stderr[-5000:])
            print(f"{' '.join(command)}: exit status {done.returncode}", file=sys.stderr)
            raise SystemExit(2)
        report: dict[str, Any] = json.loads(out.read_text())
        return report


def add_samples(report: dict[str, Any], samples: Samples, round_number: int) -> None:
    for workload, columns in report["columns"].items():
        for runner in filter(is_rio_runner, columns["runners"]):
            seconds = report["medians_s"].get(workload, {}).get(runner)
            if seconds is not None:
                samples.setdefault((workload, runner), {})[round_number] = seconds


def median_ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1e3:.1f}"


def describe(environment: dict[str, str]) -> str:
    keys = ("python", "rio_rt", "rio build", "rio reactor")
    return "; ".join(f"{key} {environment[key]}" for key in keys if key in environment)


def table(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|---|---|" + "---:|" * (len(rows[0]) - 2))
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, metavar="PYTHON", help="the baseline build")
    parser.add_argument("--after", required=True, metavar="PYTHON", help="the changed build")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="passed on to run.py"
    )
    parser.add_argument("--repeat", type=int, default=7, metavar="R", help="rounds (default 7)")
    parser.add_argument("--markdown", metavar="PATH", help="write the table as markdown here")
    parser.add_argument(
        "--min-ratio",
        type=float,
        metavar="X",
        help="exit 1 if any after-vs-before ratio is below X",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    pythons = {"before": args.before, "after": args.after}
    for build, python in pythons.items():
        if shutil.which(python) is None:
            parser.error(f"--{build}: no interpreter at {python}")

    samples: dict[str, Samples] = {build: {} for build in BUILDS}
    environments: dict[str, dict[str, str]] = {}
    for round_number in range(args.repeat):
        order = BUILDS if round_number % 2 == 0 else BUILDS[::-1]
        for build in order:
            print(f"round {round_number + 1}/{args.repeat}: {build}", file=sys.stderr, flush=True)
            report = run_once(pythons[build], args.only)
            environments.setdefault(build, report["environment"])
            add_samples(report, samples[build], round_number)
            if not samples[build]:
                skipped = {k: v for k, v in report["environment"].items() if "skipped" in k}
                print(f"{build}: no rio runner ran {skipped}", file=sys.stderr)
                return 2

    rows = [["workload", "runner", "before ms", "after ms", "after vs before", "rounds' range"]]
    ratios = {}
    for key in samples["before"].keys() & samples["after"].keys():
        before, after = samples["before"][key], samples["after"][key]
        ratios[key] = statistics.median(before.values()) / statistics.median(after.values())
        # The same ratio within each round (both builds back to back): how far noise moves it.
        paired = [before[n] / after[n] for n in before.keys() & after.keys()]
        spread = f"{min(paired):.2f}-{max(paired):.2f}" if paired else "-"
        if len(before) < args.repeat or len(after) < args.repeat:
            spread += f" ({len(before)}/{len(after)} samples)"
        rows.append(
            [
                *key,
                median_ms(list(before.values())),
                median_ms(list(after.values())),
                f"{ratios[key]:.3f}x",
                spread,
            ]
        )
    rows[1:] = sorted(rows[1:])

    notes = [f"{build}: {pythons[build]} ({describe(environments[build])})" for build in BUILDS]
    notes.append(
        f"median of {args.repeat} rounds, first build alternating; "
        '"after vs before" = before time / after time: above 1 means after is faster; '
        "rounds' range: lowest and highest of that ratio within one round"
    )
    print("\n".join(notes) + "\n\n" + table(rows, markdown=False))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("## rio-rt: after vs before\n\n" + "".join(f"- {n}\n" for n in notes))
            f.write("\n" + table(rows, markdown=True) + "\n")

    if args.min_ratio is not None:
        slow = [f"{w} / {r}: {x:.3f}" for (w, r), x in sorted(ratios.items()) if x < args.min_ratio]
        if slow:
            print(f"--min-ratio {args.min_ratio}: " + ", ".join(slow), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
