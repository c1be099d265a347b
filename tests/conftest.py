"""Shared fixtures: unique ring names (and no shared memory left behind by any test), and
publisher threads stopped at the end of the test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.startup import without_pandas

# The programs run without pandas (common.startup): so do their tests. pandas is a benchmark
# baseline only, and pyarrow would otherwise take pandas-only paths the programs never take.
without_pandas()

import ringbuffer  # noqa: E402

from .support.processor import Publisher  # noqa: E402

TEST_PREFIX = "t"


def _leftovers(name: str) -> list[Path]:
    return [ringbuffer.segment_path(ring) for ring in ringbuffer.segments(name)]


@pytest.fixture
def ring_name() -> Iterator[str]:
    """A ring name no other test uses; the test fails if its segment outlives it."""
    name = f"{TEST_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:10]}"
    yield name
    left = _leftovers(name)
    for path in left:
        path.unlink()
    assert not left, f"test left shared memory behind: {left}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = _leftovers(f"{TEST_PREFIX}{os.getpid()}-")
    for path in left:
        path.unlink()
    if left and exitstatus == 0:
        session.exitstatus = 1
        print(f"\nshared memory left behind by the suite: {[p.name for p in left]}")


@pytest.fixture
def publishers() -> Iterator[list[Publisher]]:
    made: list[Publisher] = []
    yield made
    for p in made:
        p.stop()
