"""Run an unmodified asyncio program on rio's event loop.

    python -m rio_rt [--dump-on SIGNAL] script.py [args...]
    python -m rio_rt [--dump-on SIGNAL] -m package.module [args...]

rio's event loop policy is installed first, so ``asyncio.run``,
``asyncio.new_event_loop`` and ``asyncio.Runner`` create ``rio_rt.Loop``
instances; then the script or module runs as ``__main__`` with ``sys.argv``
set as Python itself would set it.

``--dump-on SIGUSR1`` (a signal name or number) installs a handler that
writes every task of the running rio runtime to stderr (``rio_rt.dump_tasks``)
when the signal arrives: the handler hands the dump to the runtime, which
writes it between two steps of its next tick (a step that never returns
delays it; the ``slow_poll`` watchdog reports those).
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from typing import Any

import rio_core

from rio_rt._loop import install

USAGE = (
    "usage: python -m rio_rt [--dump-on SIGNAL] script.py [args...]\n"
    "       python -m rio_rt [--dump-on SIGNAL] -m module [args...]\n"
)


def parse_signal(text: str) -> signal.Signals:
    """``SIGUSR1``, ``USR1`` or a number."""
    if text.isdigit():
        return signal.Signals(int(text))
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return signal.Signals[name]
    except KeyError:
        raise ValueError(f"unknown signal {text!r}") from None


def install_dump_on(signum: signal.Signals) -> None:
    """On ``signum``, dump the tasks of the runtime running in the main thread."""

    def dump_now(runtime: Any) -> None:
        rio_core.dump_tasks(sys.stderr, runtime)

    def on_signal(received: int, frame: Any) -> None:
        runtime = rio_core.current_runtime()
        if runtime is None:
            sys.stderr.write(f"rio: {signum.name}: no rio runtime is running\n")
            sys.stderr.flush()
            return
        # between steps, on the runtime's next tick (the path of a cross-thread wake)
        runtime._call_soon_injected(lambda: dump_now(runtime))

    signal.signal(signum, on_signal)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        sys.stderr.write(USAGE)
        return 0 if args else 2
    while args and args[0] == "--dump-on":
        if len(args) < 2:
            sys.stderr.write(USAGE)
            return 2
        try:
            install_dump_on(parse_signal(args[1]))
        except ValueError as exc:
            sys.stderr.write(f"python -m rio_rt: {exc}\n")
            return 2
        args = args[2:]
    if not args:
        sys.stderr.write(USAGE)
        return 2
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
