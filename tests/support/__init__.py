"""What the tests share. Every wait in the suite is bounded by :data:`WAIT` and polls through
:func:`wait_until`, which fails naming what it waited for.

- ``oracle``: independent readings of the contract (sections 1-3) in plain Python;
- ``quotes``: made-up records in the ring's schema, as arrays and as Arrow batches;
- ``processor``: ``python -m processor`` as a child process, its files and state;
- ``enginetools``: any program as a child process with its stderr lines, and a ring consumer;
- ``faulttools``: a ring reader keeping every field, a websocket quote server that can be
  killed, hypothesis strategies for bad CSV rows, tmpfs helpers;
- ``ringprocs``: child-process bodies for the ring's multiprocess tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

#: The longest any step of any test waits for anything (seconds).
WAIT = 30.0


def wait_until(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``check`` until it returns something truthy, and return it; fail naming ``what``
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)
