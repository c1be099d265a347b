"""The live source's reconnect rule, without I/O: how long to wait before the next connect.

:class:`Backoff` is told when a connection opened and when it ended (clock values ``now`` passed
in, seconds, any monotonic origin) and answers the delay before the next connect attempt. Like
the :class:`~engine.live._batcher.Batcher` it has no asyncio or sockets, so tests drive it with
a fake clock and a fixed jitter; ``engine.live._connection`` does the waiting.

The rule:

- **Exponential, full jitter, capped.** Attempt ``k`` (from 0) waits a uniform draw from
  ``[0, min(cap, initial * 2**k)]`` (:func:`backoff_delay`). Every failed connect and every
  connection that ended counts as an attempt.
- **Starting over needs a healthy connection.** The attempt count goes back to 0 only when a
  connection stayed up for ``healthy_after`` seconds, by default twice the cap (10 s with the
  default 5 s cap). What a connection delivered does not matter: a feed that accepts, sends a
  quote and closes (or a client dropped for an oversized frame) is retried at growing delays up
  to the cap, not in a storm; a feed that was up for a while and drops is retried at once.

>>> b = Backoff(initial=0.1, cap=1.0, jitter=lambda lo, hi: hi)
>>> b.connected(now=0.0); b.disconnected(now=0.5); b.next_delay(), b.next_delay()
(0.1, 0.2)
>>> b.connected(now=5.0); b.disconnected(now=7.0); b.next_delay()
0.1
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable


def backoff_delay(
    attempt: int,
    initial: float,
    cap: float,
    jitter: Callable[[float, float], float] = random.uniform,
) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, initial * 2**attempt)]."""
    return jitter(0.0, min(cap, initial * 2.0 ** min(attempt, 60)))


class Backoff:
    """Delays between connect attempts (module docstring).

    ``initial`` is the first bound, ``cap`` the largest, ``healthy_after`` how long a connection
    must stay up for the next delay to start from ``initial`` again (default ``2 * cap``);
    ``jitter(lo, hi)`` draws the delay (``random.uniform``). Raises ValueError for a setting out
    of range."""

    def __init__(
        self,
        *,
        initial: float,
        cap: float,
        healthy_after: float | None = None,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if not 0 < initial <= cap < math.inf:
            raise ValueError("backoff needs 0 < initial <= cap < inf")
        if healthy_after is None:
            healthy_after = 2.0 * cap
        if not 0 <= healthy_after < math.inf:
            raise ValueError("healthy_after must be a finite number of seconds >= 0")
        self.initial = initial
        self.cap = cap
        self.healthy_after = healthy_after
        self.jitter = jitter
        #: Attempts since the last healthy connection (the next delay's exponent).
        self.attempt = 0
        self._up_since: float | None = None

    def connected(self, now: float) -> None:
        """A connection opened at ``now``."""
        self._up_since = now

    def disconnected(self, now: float) -> None:
        """The connection ended at ``now``: a healthy one starts the backoff over."""
        if self._up_since is not None and now - self._up_since >= self.healthy_after:
            self.attempt = 0
        self._up_since = None

    def next_delay(self) -> float:
        """Seconds to wait before the next connect attempt (counts the attempt)."""
        delay = backoff_delay(self.attempt, self.initial, self.cap, self.jitter)
        self.attempt += 1
        return delay
