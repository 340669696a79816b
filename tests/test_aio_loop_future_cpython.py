"""CPython's own Future tests, built for rio's ``LoopFuture``.

``test.test_asyncio.test_futures`` writes its Future tests once, in the
``BaseFutureTests`` and ``BaseFutureDoneCallbackTests`` mixins, and builds them
for ``_CFuture`` and ``_PyFuture``. Here they are built for ``LoopFuture``, on
CPython's ``TestLoop`` (as CPython runs them) and on rio's loop. The three tests
that read the class's name run with a factory named ``Future``: rio's Future
calls itself ``Future`` (in its repr and its "never retrieved" report), as
asyncio's does. Skipped where CPython's ``test`` package is not installed (the
Windows CPython the wine run uses).
"""

from __future__ import annotations

import unittest.mock
from typing import Any

import pytest
from rio_core._runtime import LoopFuture

import rio_rt

test_futures = pytest.importorskip("test.test_asyncio.test_futures")
test_utils = pytest.importorskip("test.test_asyncio.utils")


class Future:
    """Makes a LoopFuture; named as the class asyncio code sees."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return LoopFuture(*args, **kwargs)


class NamedAsFuture:
    """The CPython tests that compare the class's ``__name__`` with what the
    future prints."""

    def test_future_repr(self) -> None:
        with unittest.mock.patch.object(self, "cls", Future):
            super().test_future_repr()  # type: ignore[misc]

    def test_future_exception_never_retrieved(self) -> None:
        with unittest.mock.patch.object(self, "cls", Future):
            super().test_future_exception_never_retrieved()  # type: ignore[misc]

    def test_future_exception_never_retrieved_debug(self) -> None:
        with unittest.mock.patch.object(self, "cls", Future):
            super().test_future_exception_never_retrieved_debug()  # type: ignore[misc]


class TestCPythonFutureCasesOnTestLoop(
    NamedAsFuture, test_futures.BaseFutureTests, test_utils.TestCase
):
    cls = LoopFuture


class TestCPythonDoneCallbackCasesOnTestLoop(
    test_futures.BaseFutureDoneCallbackTests, test_utils.TestCase
):
    def _new_future(self) -> Any:
        return LoopFuture(loop=self.loop)


class OnRioLoop:
    """Run the cases on rio's loop instead of TestLoop."""

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self.loop.close()  # type: ignore[has-type]
        self.loop = rio_rt.new_event_loop()
        self.set_event_loop(self.loop)  # type: ignore[attr-defined]


class TestCPythonFutureCasesOnRio(
    OnRioLoop, NamedAsFuture, test_futures.BaseFutureTests, test_utils.TestCase
):
    cls = LoopFuture


class TestCPythonDoneCallbackCasesOnRio(
    OnRioLoop, test_futures.BaseFutureDoneCallbackTests, test_utils.TestCase
):
    def _new_future(self) -> Any:
        return self.loop.create_future()
