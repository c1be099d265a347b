"""Latency and throughput accounting: the stats, percentiles and the histogram."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Stats:
    """Everything measured, shared by the connections (one event loop: no locks)."""

    latencies: list[float] = field(default_factory=list)  # seconds, every acknowledged command
    orders_sent: int = 0
    cancels_sent: int = 0
    orders_acked: int = 0  # accepted: NEW / 201
    orders_rejected: int = 0  # refused with an error / 4xx
    cancels_acked: int = 0  # CANCELED / 200
    cancels_refused: int = 0  # the order had filled or gone meanwhile
    fills: int = 0
    behind: int = 0  # open loop: commands due by the end that were never sent (REST)
    errors: list[str] = field(default_factory=list)
    first_send: float | None = None
    last_ack: float | None = None

    def ack(self, due: float, now: float) -> None:
        self.latencies.append(now - due)
        self.last_ack = now

    @property
    def sent(self) -> int:
        return self.orders_sent + self.cancels_sent

    @property
    def acked(self) -> int:
        return self.orders_acked + self.orders_rejected + self.cancels_acked + self.cancels_refused


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, nearest rank.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5), percentile([1.0, 2.0, 3.0, 4.0], 0.99)
    (2.0, 4.0)
    """
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


#: Histogram bucket upper bounds, milliseconds.
BUCKETS_MS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, math.inf)


def histogram(ordered: Sequence[float]) -> list[tuple[float, int]]:
    """(upper bound ms, count) for each bucket, from sorted latencies in seconds.

    >>> histogram([0.00005, 0.0015, 0.0016])[:5]
    [(0.1, 1), (0.2, 0), (0.5, 0), (1, 0), (2, 2)]
    """
    out = []
    start = 0
    for bound in BUCKETS_MS:
        end = bisect.bisect_right(ordered, bound / 1000)
        out.append((bound, end - start))
        start = end
    return out
