"""Pacing: when a record with a given arrival time is due, at a replay speed.

The clock is injected, so tests replay hours of data without waiting.

>>> clock = FakeClock()
>>> pacer = Pacer(speed=10.0, clock=clock)
>>> pacer.anchor(arrival_ns=0)
>>> clock.sleep(0.5)
>>> pacer.due_until()   # 0.5 s of wall time at 10x covers 5 s of arrival time
5000000000
"""

from __future__ import annotations

import argparse
import time
from typing import Protocol


def parse_speed(text: str) -> float | None:
    """A ``--speed`` value: ``max`` -> None (as fast as consumers allow), else a positive factor.

    >>> parse_speed("max"), parse_speed("10")
    (None, 10.0)
    """
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = float("nan")
    if not 0 < speed < float("inf"):
        raise argparse.ArgumentTypeError(f"--speed takes a positive number or 'max', not {text!r}")
    return speed


class Clock(Protocol):
    """Monotonic seconds, and a way to wait."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that moves only when slept on."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


class Pacer:
    """Maps arrival times (ns) to wall-clock due times; ``speed=None`` means as fast as possible.

    ``anchor`` ties an arrival time to now: call it on start and on every resume, so a pause
    is not followed by a burst that catches up.
    """

    def __init__(self, speed: float | None, clock: Clock) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self.speed = speed
        self.clock = clock
        self._wall0 = 0.0
        self._arrival0 = 0

    def anchor(self, arrival_ns: int) -> None:
        self._wall0 = self.clock.now()
        self._arrival0 = arrival_ns

    def due_until(self) -> int:
        """Records with arrival <= this (ns) are due now."""
        if self.speed is None:
            return 1 << 62
        return self._arrival0 + round((self.clock.now() - self._wall0) * self.speed * 1e9)

    def seconds_until(self, arrival_ns: int) -> float:
        """Wall seconds until ``arrival_ns`` is due (negative: overdue by that much)."""
        if self.speed is None:
            return 0.0
        return self._wall0 + (arrival_ns - self._arrival0) / (self.speed * 1e9) - self.clock.now()
