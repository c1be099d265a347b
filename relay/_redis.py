"""The Redis connection both sides use: checked at start (exit 2), retried while running.

``connect(url, flag)`` opens a client and checks it (PING, Redis 7 or newer) — a wrong or
unreachable URL is a :class:`~common.cli.UsageError` naming the flag. ``retry(call, ...)`` runs a
Redis call and, when the connection is lost, logs it and tries again with capped exponential
backoff (0.05 s doubling to 2 s) until it works or ``stop()`` is true.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from common.cli import UsageError
from common.log import Logger

T = TypeVar("T")
BACKOFF_FIRST, BACKOFF_MAX = 0.05, 2.0


def connect(url: str, flag: str) -> redis.Redis:
    try:
        # No retries inside the client (redis-py retries a lost connection 3 times by default):
        # every loss must reach retry(), which logs it and re-reads what a lost reply held.
        client = redis.Redis.from_url(
            url, socket_timeout=30, socket_connect_timeout=5, retry=Retry(NoBackoff(), 0)
        )
        client.ping()
        version = str(client.info("server").get("redis_version", "0"))
    except (ValueError, redis.RedisError) as e:
        raise UsageError(f"{flag} {url}: cannot use it: {e}") from None
    if int(version.split(".")[0]) < 7:
        raise UsageError(f"{flag} {url}: Redis {version}; 7 or newer is needed (streams lag)")
    return client


class Gone(Exception):
    """A stop was requested while the connection was down."""


def retry(
    call: Callable[[], T], log: Logger, what: str, stop: Callable[[], bool],
    lost: Callable[[], None] | None = None,
) -> T:  # fmt: skip
    """``call()``, again after each lost connection (logged), until it works or ``stop()``.

    ``lost()`` runs after each failure, before the next try: a reply lost with the connection
    may have changed the server's state (an entry delivered to a consumer group, say)."""
    delay = BACKOFF_FIRST
    failures = 0
    while True:
        try:
            result = call()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as e:
            failures += 1
            if lost is not None:
                lost()
            if failures == 1 or failures % 20 == 0:
                log.warning("redis connection lost; retrying", during=what, error=str(e),
                            failures=failures)  # fmt: skip
            if stop():
                raise Gone(what) from e
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
            continue
        if failures:
            log.info("redis connection back", during=what, failures=failures)
        return result


def fields(value: Any) -> dict[bytes, bytes]:
    return dict(value) if not isinstance(value, dict) else value
