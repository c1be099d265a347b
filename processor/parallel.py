"""Batches rendered on worker threads, handed back in the order they were submitted.

numpy and Arrow release the GIL inside their loops, so two batches rendered side by side use
two cores for most of their time. The batches are views of the ring: the caller keeps their
records in the ring (``release="commit"``, or by not reading further) until their results are
handed back, and calls :meth:`RenderPool.drain` before it closes the reader.

>>> import pyarrow as pa
>>> from common.schema import Mode
>>> batch = pa.record_batch({
...     "timestamp": pa.array([0], pa.timestamp("ns")), "bid_price": [1.0], "ask_price": [2.0],
...     "latency": [0.0], "mode": pa.array([Mode.HISTORICAL], pa.uint8())})
>>> with RenderPool(20.0) as pool:
...     pool.submit(batch, "first")
...     [(out.mid, tag) for out, tag in pool.drain()]
[(b'1970-01-01 00:00:00.000, 1.5\\n', 'first')]
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

import pyarrow as pa

from processor.rules import Rendered, render

T = TypeVar("T")


class RenderPool(Generic[T]):
    """``render`` with a fixed threshold and format on ``threads`` worker threads (default: two
    when the machine has two cores or more, else none: rendered in the caller's thread)."""

    def __init__(self, threshold: float, extended: bool = False, *,
                 threads: int | None = None) -> None:  # fmt: skip
        self.threshold = threshold
        self.extended = extended
        self.threads = min(2, os.cpu_count() or 1) if threads is None else threads
        self._pool = ThreadPoolExecutor(self.threads, "render") if self.threads > 1 else None
        self._in_flight = self.threads if self._pool is not None else 0  # what ready() keeps
        self._pending: deque[tuple[Future[Rendered], T]] = deque()

    @property
    def pending(self) -> int:
        """Batches submitted and not yet handed back."""
        return len(self._pending)

    def submit(self, batch: pa.RecordBatch, tag: T) -> None:
        """Start rendering ``batch``; ``tag`` comes back with its result."""
        future: Future[Rendered]
        if self._pool is None:
            future = Future()
            future.set_result(render(batch, self.threshold, self.extended))
        else:
            future = self._pool.submit(render, batch, self.threshold, self.extended)
        self._pending.append((future, tag))

    def ready(self) -> Iterator[tuple[Rendered, T]]:
        """Hand back results in submission order while more batches are pending than threads
        can render at once (waiting for the oldest): a full pool keeps every thread busy."""
        while len(self._pending) > self._in_flight:
            yield self._take()

    def drain(self) -> Iterator[tuple[Rendered, T]]:
        """Hand back every pending result, in submission order (waiting for each)."""
        while self._pending:
            yield self._take()

    def _take(self) -> tuple[Rendered, T]:
        future, tag = self._pending[0]
        out = future.result()  # a render that raised raises here, in order
        self._pending.popleft()
        return out, tag

    def close(self) -> None:
        """Wait for the workers and stop them (results not taken are dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._pending.clear()

    def __enter__(self) -> RenderPool[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
