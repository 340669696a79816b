"""Run an unmodified asyncio program on rio's event loop.

    python -m rio_rt script.py [args...]
    python -m rio_rt -m package.module [args...]

rio's event loop policy is installed first, so ``asyncio.run``,
``asyncio.new_event_loop`` and ``asyncio.Runner`` create ``rio_rt.Loop``
instances; then the script or module runs as ``__main__`` with ``sys.argv``
set as Python itself would set it.
"""

from __future__ import annotations

import os
import runpy
import sys

from rio_rt._loop import install

USAGE = "usage: python -m rio_rt script.py [args...]\n       python -m rio_rt -m module [args...]\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        sys.stderr.write(USAGE)
        return 0 if args else 2
    install()
    if args[0] == "-m":
        if len(args) < 2:
            sys.stderr.write(USAGE)
            return 2
        module = args[1]
        sys.argv = [module, *args[2:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0
    script = args[0]
    if not os.path.exists(script):
        sys.stderr.write(f"python -m rio_rt: can't open file {script!r}\n")
        return 2
    sys.argv = list(args)
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
