"""Fixtures of the processor's tests: processors started as children, a ring to feed them,
publisher threads; all stopped at the end of the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import ringbuffer
from common.schema import QUOTE_SCHEMA

from ..support.processor import Proc, Publisher


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start processors; any still running at the end of the test is killed."""
    started: list[Proc] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(tmp_path, *args, env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.p.poll() is None:
            proc.p.kill()
            proc.p.wait()
        if proc.p.stdout is not None:
            proc.p.stdout.close()


@pytest.fixture
def ring(ring_name: str) -> Iterator[ringbuffer.Writer]:
    w = ringbuffer.create(ring_name, QUOTE_SCHEMA, capacity=1 << 14, tag=77)
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def publishers() -> Iterator[list[Publisher]]:
    made: list[Publisher] = []
    yield made
    for p in made:
        p.stop()
