"""Fixtures of the processor's tests: processors started as children and a ring to feed them,
both gone at the end of the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import ringbuffer
from common.schema import QUOTE_SCHEMA

from ..support.programs import Proc


@pytest.fixture
def spawn() -> Iterator[Callable[..., Proc]]:
    """Start processors (``LATENCY_THRESHOLD`` unset unless ``env`` sets it); any still running
    at the end of the test is killed."""
    started: list[Proc] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Proc:
        proc = Proc("processor", args, env={"LATENCY_THRESHOLD": None, **(env or {})})
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
