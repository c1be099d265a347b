"""A ring consumer thread for tests: ``ringbuffer.ResumingConsumer`` recording what it kept.

It reads as any user's durable consumer does (re-attaching when the engine makes a new ring,
dropping records whose seq it has already kept), and records, per record, the columns the tests
check, and per ring how it went away.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import ringbuffer

from . import WAIT

#: The columns recorded for every record kept (timestamps as int64 nanoseconds).
COLUMNS = ("seq", "mode", "pos", "ticker", "timestamp")


class _Events(ringbuffer.ConsumerEvents):
    """Notes in the :class:`Consumer` how each ring went away."""

    def __init__(self, owner: Consumer) -> None:
        self.owner = owner

    def attached(self, consumer: ringbuffer.ResumingConsumer, resume: bool) -> None:
        self.owner._past_end = False

    def reattaching(
        self, consumer: ringbuffer.ResumingConsumer, cause: ringbuffer.RingReset | None
    ) -> None:
        if cause is not None:
            self.owner._note(resets=1, ending=str(cause))


class Consumer(threading.Thread):
    """Reads ring ``ring`` as consumer ``name`` in a thread of the test.

    - ``seq``, ``mode``, ``pos``, ``ticker``, ``timestamp`` (lists), ``column(k)`` (an array):
      what was kept;
    - ``duplicates``: records dropped as already kept; ``resets``: rings that went away under
      it (``RingReset``); ``endings``: per ring, ``"end"`` when the engine ended the stream, or
      the ``RingReset`` message; ``reads`` / ``idle``: reads that found records / nothing;
    - with ``pace``, it takes one permit per read (the test decides when each batch is read);
    - with ``stop_at_end`` set it returns at the end of a stream (an end seen before that
      waits for the next ring); :meth:`halt` stops it in any case.

    Every wait is bounded and fails naming what it waited for.
    """

    def __init__(
        self,
        ring: str,
        name: str = "test",
        pace: threading.Semaphore | None = None,
        max_records: int = 4096,
    ) -> None:
        super().__init__(daemon=True)
        self.ring, self.name, self.pace, self.max_records = ring, name, pace, max_records
        self.cols: dict[str, list[Any]] = {k: [] for k in COLUMNS}
        # The same lists by name (the thread appends to them under ``_cond``).
        self.seq: list[int] = self.cols["seq"]
        self.mode: list[int] = self.cols["mode"]
        self.pos: list[int] = self.cols["pos"]
        self.ticker: list[str] = self.cols["ticker"]
        self.timestamp: list[int] = self.cols["timestamp"]
        self.duplicates = self.resets = self.reads = self.idle = 0
        self.endings: list[str] = []
        self.stop_at_end = threading.Event()
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._cond = threading.Condition()
        self._past_end = False  # this ring's end is in ``endings``: await the next ring

    # -- the thread ----------------------------------------------------------------------------

    def run(self) -> None:
        try:
            with ringbuffer.ResumingConsumer(
                self.ring, self.name, stop=self._halt.is_set, events=_Events(self)
            ) as ring:
                if not ring.attach():  # before the first permit: an engine may wait for it
                    return
                while not self._halt.is_set():
                    if self.pace is not None:
                        self.pace.acquire(timeout=WAIT)
                    got = ring.read(max_records=self.max_records, timeout=0.1)
                    if got is not None:
                        self._keep(got)
                        continue
                    if self.pace is not None:
                        self.pace.release()  # the permit was not used
                    self._note(idle=1)
                    if ring.ended and not self._past_end:
                        self._note(ending="end")
                        if self.stop_at_end.is_set():
                            return
                        self._past_end = True  # an engine restart makes a new ring
        except BaseException as exc:  # surfaced by the test
            self.error = exc
        finally:
            with self._cond:
                self._cond.notify_all()

    def _keep(self, got: ringbuffer.Delivery) -> None:
        b = got.batch
        values = {k: b.column(k) for k in COLUMNS}
        values["timestamp"] = values["timestamp"].cast("int64")
        with self._cond:
            for k, v in values.items():
                self.cols[k].extend(v.to_pylist())
            self.duplicates += got.duplicates
            self.reads += 1
            self._cond.notify_all()

    def _note(self, resets: int = 0, idle: int = 0, ending: str | None = None) -> None:
        with self._cond:
            self.resets += resets
            self.idle += idle
            if ending is not None:
                self.endings.append(ending)
            self._cond.notify_all()

    # -- what it kept --------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return len(self.cols["seq"])

    def column(self, k: str) -> np.ndarray:
        with self._cond:
            return np.array(self.cols[k], dtype=object if k == "ticker" else np.int64)

    def records(self) -> list[tuple[str, int]]:
        """(ticker, timestamp) of every record kept, in order."""
        with self._cond:
            return list(zip(self.cols["ticker"], self.cols["timestamp"], strict=True))

    # -- waiting -------------------------------------------------------------------------------

    def wait_for(self, done: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        """Wait until ``done()``; fail naming ``what`` after ``timeout`` or if the thread died."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0 or self.error is not None or not self.is_alive():
                    raise AssertionError(
                        f"consumer: no {what} within {timeout}s (records={self.count}, "
                        f"reads={self.reads}, endings={self.endings}, error={self.error!r})"
                    )
                self._cond.wait(min(left, 0.2))

    def wait_count(self, n: int, timeout: float = WAIT) -> None:
        self.wait_for(lambda: self.count >= n, f"{n} records", timeout)

    def wait_reads(self, n: int, timeout: float = WAIT) -> None:
        """Wait until ``n`` batches of records were read in all."""
        self.wait_for(lambda: self.reads >= n, f"{n} batches read", timeout)

    def wait_idle(self, timeout: float = WAIT) -> None:
        """Wait until the consumer has found nothing more to read, twice from now."""
        n = self.idle + 2
        self.wait_for(lambda: self.idle >= n, "the consumer to go idle", timeout)

    def finish(self, timeout: float = WAIT) -> None:
        """Wait for the thread to return (at the end of stream, with ``stop_at_end``)."""
        self.join(timeout)
        assert not self.is_alive(), (
            f"consumer still running after {timeout}s: records={self.count}, "
            f"endings={self.endings}"
        )
        assert self.error is None, repr(self.error)

    def halt(self) -> None:
        self._halt.set()
        self.join(WAIT)
