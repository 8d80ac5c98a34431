"""The one way a test waits for something: poll a predicate, fail with what it waited for."""
from __future__ import annotations

import time
from typing import Any, Callable


def wait_for(predicate: Callable[[], Any], timeout: float, what: str = "a condition", interval: float = 0.2,
             context: Callable[[], str] = lambda: "") -> Any:
    """Poll `predicate` every `interval` s until it returns something truthy, and return that.

    After `timeout` s: an AssertionError naming `what`, followed by `context()` (server or worker logs).
    An exception from `predicate` (a process that died) goes straight through.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{context()}".rstrip())
        time.sleep(interval)
