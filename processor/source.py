"""Where the processor's records come from: the ring, or the relay's Redis stream.

Both are a :class:`Source`, and the processor's one main loop (``processor.run``) reads,
deduplicates by ``seq``, commits what is durable and sees the end through this interface only:

- ``ringbuffer.ResumingConsumer`` on the ring ``--ring`` (the default);
- ``relay.StreamConsumer`` on the stream ``--stream`` of ``--redis URL`` (contract section 7):
  consumer group ``--name``; a commit is an XACK of the entries it covers.

:func:`open_source` picks one from the :class:`~processor.config.Config`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import ringbuffer
from common.log import Logger
from processor.config import Config


class Source(Protocol):
    """What the processor's loop uses of its source of records (see ResumingConsumer's notes:
    the same semantics for the stream)."""

    #: The last ``seq`` kept: records at or below it are dropped (set from the state file).
    watermark: int | None

    @property
    def tag(self) -> int | None: ...

    @property
    def position(self) -> int: ...

    @property
    def capacity(self) -> int: ...

    @property
    def ended(self) -> bool: ...

    def lag(self) -> int: ...

    def attach(self) -> bool: ...

    def read(
        self, max_records: int = 65536, timeout: float | None = 1.0
    ) -> ringbuffer.Delivery | None: ...

    def commit(self, token: ringbuffer.CommitToken) -> bool: ...

    def close(self) -> None: ...


def open_source(
    cfg: Config,
    *,
    resume: bool,
    log: Logger,
    stop: Callable[[], bool],
    sleep: Callable[[float], object],
    expect: dict[str, str],
    events: ringbuffer.ConsumerEvents,
    attach_poll: float,
    idle_after_end: float,
) -> Source:
    """The ring, or with ``--redis`` the relay's stream (a wrong or unreachable URL is a
    ``UsageError``)."""
    if cfg.redis is not None:
        from relay import StreamConsumer

        return StreamConsumer(cfg.redis, cfg.stream, cfg.name, log=log, stop=stop, sleep=sleep)
    return ringbuffer.ResumingConsumer(
        cfg.ring, cfg.name, expect=expect, release="commit", resume=resume, stop=stop,
        sleep=sleep, events=events, attach_poll=attach_poll, idle_after_end=idle_after_end,
    )  # fmt: skip
