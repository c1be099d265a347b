"""Benchmarks run only when asked: ``pytest benchmarks --benchmark`` (``make bench``).

``--benchmark`` is this project's flag, defined in the root ``conftest.py``
(pytest-benchmark has ``--benchmark-only`` and friends, but no bare ``--benchmark``).
Without it every test that uses the ``benchmark`` fixture is skipped with a message saying
so; doctests still run. After the session, a ring
this process's benchmarks left in /dev/shm is removed and fails the run.
"""

from __future__ import annotations

import os

import pytest

from benchmarks.transport import leftover_rings

SKIP_REASON = "benchmarks run only with --benchmark: pytest benchmarks --benchmark (make bench)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the benchmarks unless ``--benchmark`` was given."""
    if config.getoption("--benchmark"):
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a benchmark of this process left a ring in /dev/shm (and remove it)."""
    import ringbuffer

    mine = [n for n in leftover_rings() if f"-{os.getpid()}-" in n]
    for name in mine:
        (ringbuffer.SHM_DIR / name).unlink(missing_ok=True)
    if mine and exitstatus == 0:
        session.exitstatus = 1
        print(f"\nshared memory left behind by the benchmarks: {mine}")
