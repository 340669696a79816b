"""Run CPython's own Task tests against a chosen Task class, and diff against asyncio's.

``python task_driver.py compare --task MODULE:ATTR [options]``

builds CPython's Task test cases (``task_cases.py`` beside this file: the
``test_tasks`` mixins ``BaseTaskTests``/``SetMethodsTest``/``add_subclass_tests``/
``BaseCurrentLoopTests`` and, on 3.12+, the eager task factory tests) once with
``Task = MODULE:ATTR`` (the candidate) and once with ``asyncio.tasks:_CTask``
(the baseline, ``--baseline`` to change it), runs each set in subprocesses with
driver.py's bookkeeping (a test that hangs or crashes is recorded and the run
goes on), and reports per test passed/failed/errored/skipped and the
DIFFERENCE: the tests that pass with the baseline but not with the candidate.

Options:

- ``--loops testloop,rio``: ``testloop`` runs the tests on ``test_utils.TestLoop``
  as CPython does (a Task that can run on foreign loops must pass there);
  ``rio`` runs them on rio's loop with a test clock (and every real loop the
  tests build is rio's too). Default: ``testloop``.
- ``--python PY[,PY...]``: interpreters to run under (default: this one); each
  runs this script again and needs the candidate importable (``rio`` needs
  rio_rt installed there).
- ``--timeout S``: per test set and loop (default 600), ``--test-timeout S``
  per test (default 60).
- ``--json``: print the full report as JSON instead of the summary.

The exit status is 0 when there is no difference, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402 (driver.py beside this file)

CASES_MODULE = "task_cases"
BASELINE = "asyncio.tasks:_CTask"
LOOP_KINDS = ("testloop", "rio")


def run_cases(task: str, loop: str, timeout: float, test_timeout: float) -> dict[str, Any]:
    """Run task_cases for ``task`` on ``loop``; return driver's summary plus per-test outcomes."""
    saved = {key: os.environ.get(key) for key in ("RIO_TASK_CLASS", "RIO_TASK_LOOP")}
    os.environ["RIO_TASK_CLASS"] = task
    os.environ["RIO_TASK_LOOP"] = loop
    outcomes: dict[str, dict[str, Any]] = {}
    original_read = driver.read_records

    def recording_read(path: str) -> list[dict[str, Any]]:
        records = original_read(path)
        for record in records:
            if "outcome" in record:
                outcomes[record["test"]] = record
        return records

    driver.read_records = recording_read
    try:
        summary = driver.run_in_subprocess(
            "rio" if loop == "rio" else "asyncio", CASES_MODULE, timeout, test_timeout
        )
    finally:
        driver.read_records = original_read
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    for failure in summary["failing"]:  # hangs and crashes are recorded only here
        outcomes.setdefault(failure["test"], failure)
    summary["outcomes"] = {
        test: {key: record.get(key, "") for key in ("outcome", "exc_type", "message", "where")}
        for test, record in outcomes.items()
    }
    return summary


def short_id(test: str) -> str:
    return test.split(f"{CASES_MODULE}.", 1)[-1]


def compare(
    candidate: dict[str, Any], baseline: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[str]]:
    """(tests that pass with the baseline but not the candidate, tests the other way)."""
    cand, base = candidate["outcomes"], baseline["outcomes"]
    worse = []
    for test, record in sorted(base.items()):
        if record["outcome"] != "pass":
            continue
        got = cand.get(test, {"outcome": "missing"})
        if got["outcome"] != "pass":
            worse.append({"test": short_id(test), **got})
    better = sorted(
        short_id(test)
        for test, record in cand.items()
        if record["outcome"] == "pass" and base.get(test, {}).get("outcome") != "pass"
    )
    return worse, better


def counts(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("status", "tests", "pass", "fail", "error", "skip", "xfail", "xpass", "seconds")
    return {key: summary[key] for key in keys}


def compare_here(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "candidate": args.task,
        "baseline": args.baseline,
        "loops": {},
    }
    for loop in args.loops.split(","):
        if loop not in LOOP_KINDS:
            raise SystemExit(f"--loops: {LOOP_KINDS}, not {loop!r}")
        cand = run_cases(args.task, loop, args.timeout, args.test_timeout)
        base = run_cases(args.baseline, loop, args.timeout, args.test_timeout)
        worse, better = compare(cand, base)
        report["loops"][loop] = {
            "candidate": counts(cand),
            "baseline": counts(base),
            "differences": worse,
            "candidate_only_passes": better,
            "candidate_outcomes": {short_id(t): r for t, r in sorted(cand["outcomes"].items())},
        }
        if cand["status"] != "ok":
            report["loops"][loop]["candidate_stderr_tail"] = cand.get("stderr_tail", "")
        if base["status"] != "ok":
            report["loops"][loop]["baseline_stderr_tail"] = base.get("stderr_tail", "")
    return report


def compare_under(python: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run ``compare`` under another interpreter; return its JSON report."""
    command = [python, os.path.abspath(__file__), "compare", "--task", args.task,
               "--baseline", args.baseline, "--loops", args.loops,
               "--timeout", str(args.timeout), "--test-timeout", str(args.test_timeout),
               "--json"]  # fmt: skip
    limit = 2 * args.timeout * len(args.loops.split(",")) + 60
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=limit, stdin=subprocess.DEVNULL
    )
    if not result.stdout.strip():
        return {"python": python, "error": result.stderr[-3000:]}
    report: dict[str, Any] = json.loads(result.stdout)
    report["interpreter"] = python
    return report


def print_summary(reports: list[dict[str, Any]], out: Any) -> None:
    for report in reports:
        if "error" in report:
            out.write(f"python {report['python']}: did not run: {report['error']}\n")
            continue
        out.write(
            f"python {report['python']}: candidate {report['candidate']} "
            f"against {report['baseline']}\n"
        )
        for loop, per_loop in report["loops"].items():
            cand, base = per_loop["candidate"], per_loop["baseline"]
            out.write(
                f"  on {loop}: candidate {cand['pass']} passed, {cand['fail']} failed, "
                f"{cand['error']} errors, {cand['skip']} skipped of {cand['tests']} "
                f"({cand['status']}); baseline {base['pass']} passed, {base['fail']} failed, "
                f"{base['error']} errors, {base['skip']} skipped of {base['tests']} "
                f"({base['status']})\n"
            )
            differences = per_loop["differences"]
            out.write(f"    difference: {len(differences)} test(s) pass with the baseline only\n")
            for item in differences:
                detail = f"{item.get('exc_type', '')}: {item.get('message', '')}"[:160]
                out.write(f"      {item['test']} [{item['outcome']}] {detail}\n")
            better = per_loop["candidate_only_passes"]
            if better:
                out.write(f"    {len(better)} test(s) pass with the candidate only:\n")
                for test in better:
                    out.write(f"      {test}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cmp = commands.add_parser("compare", help="run the Task tests for a candidate and a baseline")
    cmp.add_argument("--task", required=True, help="the candidate Task class, module:attr")
    cmp.add_argument("--baseline", default=BASELINE)
    cmp.add_argument("--loops", default="testloop")
    cmp.add_argument("--python", help="interpreters, comma-separated (default: this one)")
    cmp.add_argument("--timeout", type=float, default=600.0)
    cmp.add_argument("--test-timeout", type=float, default=60.0)
    cmp.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.python:
        reports = [compare_under(python, args) for python in args.python.split(",")]
    else:
        reports = [compare_here(args)]
    if args.json:
        json.dump(reports[0] if len(reports) == 1 else reports, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print_summary(reports, sys.stdout)
    clean = all(
        "error" not in report
        and all(not per_loop["differences"] for per_loop in report["loops"].values())
        for report in reports
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
