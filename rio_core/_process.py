"""Process-wide state a runtime must cooperate with: Ctrl-C and fork.

Both are per process, not per runtime, and neither needs the scheduler's
internals: ``SigintGuard`` is given the wake-up fd and the main task, and the
fork hook is given the function that forgets this thread's running runtime.
So this module sits below the scheduler and knows nothing of it.

- Ctrl-C during ``block_on`` cancels the main task, lets its ``finally``
  blocks run, then ``block_on`` raises KeyboardInterrupt, as
  ``asyncio.Runner`` does. A second Ctrl-C, or one after the main task is
  done, raises KeyboardInterrupt at once. Only the main thread installs the
  handler, and only over Python's default one (a program's own handler wins).
- Signals that arrive while the runtime sleeps in the OS must wake it:
  ``signal.set_wakeup_fd`` is pointed at the reactor's wake-up pipe (a
  socket on Windows) while ``block_on`` runs.
- A child forked while a runtime ran on the forking thread has no running
  runtime: the runtime, its threads and its fds belong to the parent.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any


class SigintGuard:
    """Ctrl-C handling for one ``block_on`` (see the module's note)."""

    def __init__(self, wakeup_fd: int) -> None:
        self.wakeup_fd = wakeup_fd
        self.main: Any = None
        self.interrupted = False
        self.installed = False
        self.wakeup_installed = False
        self.old_handler: Any = None
        self.old_wakeup_fd = -1

    def install(self, main: Any) -> None:
        self.main = main
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            self.old_wakeup_fd = signal.set_wakeup_fd(self.wakeup_fd)
            self.wakeup_installed = True
        except (ValueError, OSError):
            self.old_wakeup_fd = -1
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.old_handler = signal.signal(signal.SIGINT, self.on_sigint)
            self.installed = True

    def uninstall(self) -> None:
        if self.installed:
            self.installed = False
            signal.signal(signal.SIGINT, self.old_handler)
        if self.wakeup_installed:
            self.wakeup_installed = False
            try:
                signal.set_wakeup_fd(self.old_wakeup_fd)
            except (ValueError, OSError):
                pass

    def on_sigint(self, signum: int, frame: object) -> None:
        if self.interrupted or self.main is None or self.main.done():
            raise KeyboardInterrupt()
        self.interrupted = True
        self.main.cancel()


def at_fork_in_child(forget_running_runtime: Callable[[], None]) -> None:
    """Have a forked child forget the runtime its forking thread was running."""
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=forget_running_runtime)
