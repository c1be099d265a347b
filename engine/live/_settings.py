"""The live source's settings, checked once: what :class:`~engine.live.LiveSource` takes as
keyword arguments and hands to the batcher and the connection."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LiveSettings:
    """``batch_records`` records (rejects count too) or ``batch_interval`` seconds make a batch,
    whichever comes first; at most ``max_pending`` batches wait for ``poll``; a connection
    silent for ``idle_timeout`` seconds is dead (``<= 0``: never); reconnects back off from
    ``backoff_initial`` up to ``backoff_max`` seconds, starting over after a connection stayed
    up for ``2 * backoff_max`` (:class:`~engine.live._backoff.Backoff`); a frame over
    ``max_frame`` bytes is refused; frames are read as the venue ``format`` sends them
    (``engine.venues``), subscribing to ``instruments``, with the client's heartbeat every
    ``heartbeat`` seconds (None: the venue's documented interval).
    Raises ValueError for a setting out of range.

    >>> LiveSettings(batch_records=0)
    Traceback (most recent call last):
    ...
    ValueError: batch_records, max_pending and max_frame must be at least 1
    """

    batch_records: int = 4096
    batch_interval: float = 0.005
    idle_timeout: float = 10.0
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    max_frame: int = 1 << 20
    max_pending: int = 64
    format: str = "ours"
    instruments: tuple[str, ...] = ()
    heartbeat: float | None = None

    def __post_init__(self) -> None:
        if self.batch_records < 1 or self.max_pending < 1 or self.max_frame < 1:
            raise ValueError("batch_records, max_pending and max_frame must be at least 1")
        if not (self.batch_interval > 0 and self.backoff_initial > 0):
            raise ValueError("batch_interval and backoff_initial must be > 0")
        if not self.backoff_initial <= self.backoff_max < math.inf:
            raise ValueError("backoff_max must be finite and >= backoff_initial")
        if self.heartbeat is not None and not 0 < self.heartbeat < math.inf:
            raise ValueError("heartbeat must be a number of seconds > 0 (None: the venue's)")
        if math.isnan(self.idle_timeout):
            raise ValueError("idle_timeout must be a number of seconds (<= 0: never)")
