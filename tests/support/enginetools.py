"""Driving ``python -m engine`` in tests: log lines to wait on, and a consumer thread."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import ringbuffer

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0


def run_module(module: str, *args: str, **kw) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` to completion (bounded)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
        timeout=kw.pop("timeout", 120), **kw,
    )  # fmt: skip


class Proc:
    """A running program whose stderr lines are collected for :meth:`wait_log`."""

    def __init__(self, module: str, args: Sequence[str]) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-m", module, *args], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()

    def _pump(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_log(self, pattern: str, count: int = 1, timeout: float = WAIT) -> str:
        """Wait until ``count`` stderr lines match ``pattern``; return the last of them."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [ln for ln in self.lines if rx.search(ln)]
                if len(hits) >= count:
                    return hits[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not self._t.is_alive()):
                    raise AssertionError(
                        f"no {count}x {pattern!r} in stderr within {timeout}s; got:\n"
                        + "".join(self.lines[-30:])
                    )
                self._cond.wait(min(left, 0.2))

    @property
    def pid(self) -> int:
        return self.p.pid

    def signal(self, sig: int) -> None:
        self.p.send_signal(sig)

    def wait(self, timeout: float = WAIT) -> int:
        try:
            code = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise AssertionError(f"process did not exit within {timeout}s") from None
        self._t.join(5)
        return code

    def stderr(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.p.kill()
        self.p.wait(WAIT)


class _Counted(ringbuffer.ConsumerEvents):
    """What :class:`Consumer` counts of its ring consumer's events."""

    def __init__(self, consumer: Consumer) -> None:
        self.c = consumer

    def attached(self, consumer: ringbuffer.ResumingConsumer, resume: bool) -> None:
        self.c._past_end = False

    def reattaching(
        self, consumer: ringbuffer.ResumingConsumer, cause: ringbuffer.RingReset | None
    ) -> None:
        if cause is not None:
            self.c.resets += 1


class Consumer(threading.Thread):
    """Reads ring ``ring`` into arrays through ``ringbuffer.ResumingConsumer`` (re-attaching
    after engine restarts, dropping records whose seq it has already seen: the stream's
    exactly-once rule). Stops at the end of stream once ``stop_at_end`` is set (an end seen
    before that waits for the next ring), or when :meth:`halt` is called."""

    def __init__(
        self, ring: str, name: str = "test", pace: threading.Semaphore | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.ring, self.name = ring, name
        self.cols: dict[str, list[np.ndarray]] = {"seq": [], "pos": [], "mode": [], "timestamp": []}
        self.duplicates = 0
        self.resets = 0  # rings that went away under the consumer (RingReset)
        self.stop_at_end = threading.Event()
        self._halt = threading.Event()
        self.error: BaseException | None = None
        self.pace = pace
        self._count = 0
        self.reads = 0
        self.idle = 0  # reads that found nothing
        self._cond = threading.Condition()
        self._past_end = False  # this ring's end was seen without stop_at_end: await the next

    def run(self) -> None:
        try:
            with ringbuffer.ResumingConsumer(
                self.ring, self.name, stop=self._halt.is_set, events=_Counted(self)
            ) as ring:
                if not ring.attach():  # before the first permit is taken: the engine waits
                    return
                while not self._halt.is_set():
                    if self.pace is not None:  # one permit per batch of data
                        self.pace.acquire(timeout=WAIT)
                    got = ring.read(max_records=512, timeout=0.1)
                    if got is None:
                        if self.pace is not None:
                            self.pace.release()
                        with self._cond:
                            self.idle += 1
                            self._cond.notify_all()
                        if ring.ended and not self._past_end:
                            if self.stop_at_end.is_set():
                                return
                            self._past_end = True  # an engine restart makes a new ring
                        continue
                    b = got.batch
                    for k in self.cols:
                        col = b.column(k)
                        if k == "timestamp":
                            col = col.cast("int64")
                        self.cols[k].append(col.to_numpy().copy())
                    with self._cond:
                        self.duplicates += got.duplicates
                        self.reads += 1
                        self._count += b.num_rows
                        self._cond.notify_all()
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def halt(self) -> None:
        self._halt.set()
        self.join(WAIT)

    def wait_count(self, n: int, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._count < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"consumer has {self._count} records, wanted {n}")
                self._cond.wait(min(left, 0.2))

    def wait_reads(self, n: int, timeout: float = WAIT) -> None:
        """Wait until ``n`` batches of data were read in all."""
        self._wait(lambda: self.reads >= n, f"{n} batches read", timeout)

    def wait_idle(self, timeout: float = WAIT) -> None:
        """Wait until the consumer has found nothing more to read, twice from now."""
        n = self.idle + 2
        self._wait(lambda: self.idle >= n, "the consumer to go idle", timeout)

    def _wait(self, done, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what} ({self.reads} reads)")
                self._cond.wait(min(left, 0.2))

    def column(self, k: str) -> np.ndarray:
        return np.concatenate(self.cols[k]) if self.cols[k] else np.array([], np.int64)


def no_segment(ring: str) -> bool:
    return not ringbuffer.segment_path(ring).exists()

