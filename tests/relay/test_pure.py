"""The relay's pure parts: the backoff of a lost connection (logged, capped, stopped)."""

from __future__ import annotations

import io

import redis

from common.log import get_logger
from relay import _redis
from relay._redis import Gone, retry


def test_retry_backs_off_exponentially_to_the_cap_and_logs(monkeypatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(_redis.time, "sleep", slept.append)
    out = io.StringIO()
    log = get_logger("relay", stream=out)
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        if calls["n"] <= 8:
            raise redis.ConnectionError("refused")
        return "ok"

    assert retry(call, log, "XADD", lambda: False) == "ok"
    assert slept == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    text = out.getvalue()
    assert "redis connection lost; retrying" in text and "during=XADD" in text
    assert "redis connection back" in text


def test_retry_gives_up_at_a_stop(monkeypatch) -> None:
    monkeypatch.setattr(_redis.time, "sleep", lambda s: None)
    lost: list[int] = []

    def call() -> None:
        raise redis.ConnectionError("gone")

    try:
        retry(call, get_logger("relay", stream=io.StringIO()), "XREADGROUP", lambda: True,
              lost=lambda: lost.append(1))  # fmt: skip
    except Gone:
        pass
    else:
        raise AssertionError("no Gone")
    assert lost == [1]
