"""The live source's reconnect rule: the backoff starts over only after a healthy connection.

The rule is the pure :class:`engine.live.Backoff`, driven here with a fake clock and a jitter
that returns the bound; one test runs ``LiveSource`` against a real ``WsServer`` that accepts,
sends one quote and closes with 1011 (the storm of issue 11 item 4).
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from engine.live import Backoff, LiveSource
from engine.wsserver import WsServer

from ..support import wait_until


def top(lo: float, hi: float) -> float:
    """A jitter that always takes the largest delay allowed."""
    return hi


def test_delays_double_up_to_the_cap_while_connections_are_short() -> None:
    b = Backoff(initial=0.1, cap=1.0, jitter=top)
    assert b.healthy_after == 2.0, "healthy after twice the cap by default"
    delays, now = [], 0.0
    for _ in range(8):
        b.connected(now)
        now += 0.5  # up half a second: less than healthy_after
        b.disconnected(now)
        delays.append(b.next_delay())
        now += delays[-1]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    assert b.attempt == 8


def test_a_connection_that_stayed_up_long_enough_starts_the_backoff_over() -> None:
    b = Backoff(initial=0.1, cap=1.0, jitter=top)
    for _ in range(5):  # failed connects: no connection at all
        b.next_delay()
    assert b.attempt == 5
    b.connected(10.0)
    b.disconnected(11.999)  # just short of healthy
    assert b.next_delay() == 1.0 and b.attempt == 6
    b.connected(20.0)
    b.disconnected(22.0)  # up for healthy_after: healthy
    assert b.attempt == 0
    assert b.next_delay() == 0.1 and b.attempt == 1


def test_delivering_data_does_not_count_as_healthy() -> None:
    """The old rule reset the backoff on any frame: the rule now knows nothing of frames, only
    of how long the connection stayed up."""
    b = Backoff(initial=0.1, cap=5.0, healthy_after=3.0, jitter=top)
    for k in range(10):
        b.connected(float(k))
        b.disconnected(k + 0.01)
        b.next_delay()
    assert b.attempt == 10


def test_full_jitter_stays_under_the_bound_and_the_cap() -> None:
    b = Backoff(initial=0.1, cap=0.5)
    for _ in range(200):
        d = b.next_delay()
        assert 0.0 <= d <= 0.5


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0.0, "cap": 1.0}, {"initial": 2.0, "cap": 1.0},
     {"initial": 0.1, "cap": 1.0, "healthy_after": -1.0}],
)  # fmt: skip
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


@pytest.mark.parametrize("how", ["close-1011", "oversized-frame"])
def test_a_feed_that_sends_one_quote_and_closes_gets_a_growing_backoff(
    how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every connection completes the handshake, delivers one quote and closes with 1011 (or
    sends a frame over the client's limit, which the client refuses and drops). Over
    a window of 2 s the source connects a handful of times (with a 0.5 s cap the expected delay
    is 0.25 s once the cap is reached), not the ~100 a second of a backoff that starts over on
    every quote; the attempts logged keep growing (1, 2, 3, ...) and the delays stay under the
    cap."""
    quote = json.dumps({"timestamp": "2025-10-02 23:59:57.290000", "ticker": "A",
                        "bid_price": 1.5, "ask_price": 1.6})  # fmt: skip

    async def handler(ws: ServerConnection, n: int) -> None:
        await ws.send(quote)
        if how == "close-1011":
            await ws.close(1011, "internal error")
        else:  # the client refuses the frame (close 1009) and drops the connection
            await ws.send("[" + quote * 100 + "]")
            await ws.wait_closed()

    with WsServer(handler) as server:
        source = LiveSource(server.url, backoff_initial=0.005, backoff_max=0.5, max_frame=4096)
        source.start()
        try:
            wait_until(lambda: server.connections >= 3, "three connections")
            threading.Event().wait(WINDOW)  # the window over which connections are counted
            connections = server.connections
        finally:
            source.stop()
    err = capsys.readouterr().err
    assert connections <= 30, f"{connections} connections in {WINDOW} s: a reconnect storm"
    attempts = [int(a) for a in re.findall(r" reconnecting .*? attempt=(\d+)", err)]
    assert len(attempts) >= 3, err
    assert attempts == list(range(1, len(attempts) + 1)), f"the backoff started over: {attempts}"
    delays = [float(d) for d in re.findall(r" reconnecting .*? retry_in=([0-9.]+)", err)]
    assert max(delays) <= 0.5


#: Seconds over which the reconnects are counted.
WINDOW = 2.0
