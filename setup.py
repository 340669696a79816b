"""Build the rio_core extension modules.

Metadata lives in pyproject.toml; this file only describes the compiled part.
Set RIO_DEBUG=1 to build with internal assertions and leak counters
(``rio_core.debug_build()`` then returns True).
"""

import glob
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("RIO_DEBUG", "") not in ("", "0")
ANNOTATE = os.environ.get("RIO_ANNOTATE", "") not in ("", "0")

# In dependency order (each module cimports only modules before it).
MODULES = [
    "_handle",
    "_time",
    "_reactor",
    "_runtime",
    "_future",
    "_scope",
    "_sync",
    "_channel",
    "_group",
    "_token",
    "_io",
    "_net",
    "_loop",
    "_transport",
]

macros = [("RIO_DEBUG", "1" if DEBUG else "0")]
# RIO_REACTOR=poll builds the poll(2) fallback reactor on Linux too, so it is tested here.
if os.environ.get("RIO_REACTOR", "") == "poll":
    macros.append(("RIO_FORCE_POLL", "1"))
libraries = []
if sys.platform == "win32":
    # The reactor (wsapoll) and the socket hot path call Winsock directly.
    # WIN32_LEAN_AND_MEAN: <windows.h> (rio.h) must never pull in winsock v1,
    # which clashes with rio_sock.h's <winsock2.h> when <windows.h> comes first.
    macros.append(("WIN32_LEAN_AND_MEAN", "1"))
    libraries.append("ws2_32")
    extra_compile = []
else:
    extra_compile = ["-O2"] if not DEBUG else ["-O0", "-g"]
    extra_compile.append("-Wno-unreachable-code")

extensions = [
    Extension(
        f"rio_core.{name}",
        [f"rio_core/{name}.pyx"],
        define_macros=macros,
        extra_compile_args=extra_compile,
        include_dirs=["rio_core"],
        # Cython tracks the headers its modules name (cdef extern from), not
        # what those include (rio_sock.h): recompile when any header changes.
        depends=sorted(glob.glob("rio_core/*.h")),
        libraries=libraries,
    )
    for name in MODULES
]

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
    "freethreading_compatible": False,
}

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=ANNOTATE,
        compile_time_env={},
        # a debug build must never be mistaken for a release one: separate cache
        build_dir="build/cython-debug" if DEBUG else "build/cython",
    ),
)
