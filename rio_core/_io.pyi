"""Type stubs for ``rio_core._io`` (readiness waits: how I/O parks a task)."""

from collections.abc import Generator
from types import TracebackType
from typing import Any, NoReturn, Protocol, type_check_only

from rio_core._future import Future
from rio_core._runtime import _ThrowType
from typing_extensions import disjoint_base

@type_check_only
class _HasFileno(Protocol):
    def fileno(self) -> int: ...

_FileDescriptorLike = int | _HasFileno

class ClosedResourceError(OSError):
    """The fd or stream was closed (by this program) while in use."""

    def __init__(self, msg: str = "the resource was closed while in use") -> None: ...

class BusyResourceError(RuntimeError):
    """Another task is already waiting for the same fd in the same direction."""

@disjoint_base
class IoWait(Future):
    """Ready when ``fd`` is readable (or writable)."""

    @property
    def fd(self) -> int: ...
    def __await__(self) -> Generator[Any, Any]: ...
    def throw(
        self, typ: _ThrowType, val: object = None, tb: TracebackType | None = None
    ) -> NoReturn: ...
    def close(self) -> None: ...

def wait_readable(fd_or_socket: _FileDescriptorLike) -> IoWait: ...
def wait_writable(fd_or_socket: _FileDescriptorLike) -> IoWait: ...
def notify_closing(fd_or_socket: _FileDescriptorLike) -> None: ...
