"""Wait strategies: how a blocked writer or an idle reader spends its time.

A waiter first spins (lowest latency, burns a core), then yields the CPU, then sleeps with an
exponential backoff capped at ``max_sleep``; once it has slept about ``park_after`` seconds at
that cap it *parks*, napping ``park_sleep`` at a time (a phased backoff, as the Disruptor's).
A steady stream keeps a reader in the short naps (the first record after a long quiet spell
waits up to ``park_sleep`` longer); an idle process costs about 2 % of a core (measured).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class WaitStrategy:
    """Spin ``spins`` times, yield ``yields`` times, then sleep from ``min_sleep`` doubling to
    ``max_sleep`` seconds; after about ``park_after`` seconds of sleeps, ``park_sleep`` each.

    >>> WaitStrategy(spins=0, yields=0, max_sleep=0.005).pause(0)
    """

    spins: int = 64
    yields: int = 32
    min_sleep: float = 50e-6
    max_sleep: float = 1e-3
    park_after: float = 0.25
    park_sleep: float = 5e-3

    def pause(self, attempt: int) -> None:
        """Wait once; ``attempt`` counts the unsuccessful checks so far (0, 1, 2, ...)."""
        if attempt < self.spins:
            return
        attempt -= self.spins
        if attempt < self.yields:
            os.sched_yield()
            return
        attempt -= self.yields
        if attempt * self.max_sleep >= self.park_after:  # each sleep so far lasted <= max_sleep
            time.sleep(max(self.park_sleep, self.max_sleep))
            return
        time.sleep(min(self.max_sleep, self.min_sleep * (1 << min(attempt, 30))))


#: The default: fast reaction while records flow, about 2 % of a core when idle.
DEFAULT_WAIT = WaitStrategy()
#: A blocked writer: as the default while consumers free space batch after batch (a long nap
#: there leaves the ring idle), parked in 10 ms naps behind a consumer that stopped reading.
WRITER_WAIT = WaitStrategy(park_sleep=10e-3)
#: For benchmarks that own the machine: never sleep.
BUSY_SPIN = WaitStrategy(spins=1 << 62)
