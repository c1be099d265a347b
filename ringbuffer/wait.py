"""Wait strategies: how a blocked writer or an idle reader spends its time.

A waiter first spins (lowest latency, burns a core), then yields the CPU, then sleeps with an
exponential backoff capped at ``max_sleep`` (an idle process then costs well under 5 % of a core).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class WaitStrategy:
    """Spin ``spins`` times, yield ``yields`` times, then sleep from ``min_sleep`` doubling to
    ``max_sleep`` seconds.

    >>> WaitStrategy(spins=0, yields=0, max_sleep=0.005).pause(0)
    """

    spins: int = 64
    yields: int = 32
    min_sleep: float = 50e-6
    max_sleep: float = 1e-3

    def pause(self, attempt: int) -> None:
        """Wait once; ``attempt`` counts the unsuccessful checks so far (0, 1, 2, ...)."""
        if attempt < self.spins:
            return
        attempt -= self.spins
        if attempt < self.yields:
            os.sched_yield()
            return
        attempt -= self.yields
        time.sleep(min(self.max_sleep, self.min_sleep * (1 << min(attempt, 30))))


#: The default: fast reaction, idle cost under 5 % of a core.
DEFAULT_WAIT = WaitStrategy()
#: A blocked writer: it waits on a slow consumer, so a longer nap costs no throughput.
WRITER_WAIT = WaitStrategy(max_sleep=10e-3)
#: For benchmarks that own the machine: never sleep.
BUSY_SPIN = WaitStrategy(spins=1 << 62)
