"""``engine.live.LiveSource`` against small websockets servers running in a thread of the test.

Every server (``engine.wsserver.WsServer``) binds 127.0.0.1 on a free port and stops when its
``with`` block ends; every wait is on a condition with a deadline and fails with a message
saying what did not happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest
from websockets.asyncio.server import ServerConnection

from engine.historical import TABLE_SCHEMA
from engine.live import LiveSource, backoff_delay
from engine.live_parse import parse_timestamp
from engine.rejects import Rejected
from engine.wsserver import WsServer

_BASE = parse_timestamp("2025-10-02 23:59:57.290000")
assert isinstance(_BASE, int)
BASE_NS: int = _BASE


# --- helpers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def running(source: LiveSource) -> Iterator[LiveSource]:
    """``source`` started, and stopped (within 2 s) at the end."""
    source.start()
    try:
        yield source
    finally:
        t0 = time.monotonic()
        source.stop()
        assert time.monotonic() - t0 < 2.0, "LiveSource.stop took 2 s or more"


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def collect(
    source: LiveSource, records: int, rejects: int = 0, timeout: float = 5.0
) -> tuple[list[pa.Table], list[Rejected]]:
    """Poll until ``records`` records and ``rejects`` rejects arrived (fail on timeout or on
    more than expected)."""
    tables: list[pa.Table] = []
    rejected: list[Rejected] = []
    got = 0
    deadline = time.monotonic() + timeout
    while got < records or len(rejected) < rejects:
        if time.monotonic() > deadline:
            pytest.fail(
                f"after {timeout} s: {got}/{records} records, {len(rejected)}/{rejects} rejects"
                f" (stats {source.stats})"
            )
        table, rej = source.poll(0.05)
        if table is not None:
            assert table.schema == TABLE_SCHEMA
            tables.append(table)
            got += table.num_rows
        rejected += rej
    assert got == records, f"{got} records arrived, expected {records}"
    assert len(rejected) == rejects, f"{len(rejected)} rejects, expected {rejects}: {rejected}"
    return tables, rejected


def rows(tables: list[pa.Table]) -> list[dict[str, Any]]:
    return pa.concat_tables(tables).to_pylist() if tables else []


def quote(i: int, *, strings: bool = False) -> dict[str, Any]:
    """Quote number ``i``: its timestamp is BASE + i microseconds and its bid is ``i + 0.5``."""
    ns = BASE_NS + i * 1000
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs)) + f".{frac // 1000:06d}"
    values: list[Any] = [i + 0.5, i + 0.75, float(i % 13), 2.5]
    if strings:
        values = [repr(v) for v in values]
    return {
        "timestamp": stamp,
        "ticker": f"T{i % 7}-USDT-SWAP@BINANCE",
        "bid_price": values[0],
        "ask_price": values[1],
        "bid_amount": values[2],
        "ask_amount": values[3],
    }


def check_quotes(got: list[dict[str, Any]], ids: list[int]) -> None:
    """The records are exactly quotes ``ids``, in that order."""
    assert [r["timestamp"] for r in got] == [BASE_NS + i * 1000 for i in ids], "order or loss"
    for r, i in zip(got, ids, strict=True):
        assert r["ticker"] == f"T{i % 7}-USDT-SWAP@BINANCE"
        assert (r["bid_price"], r["ask_price"]) == (i + 0.5, i + 0.75)
        assert (r["bid_amount"], r["ask_amount"]) == (float(i % 13), 2.5)
        assert math.isnan(r["latency"])


def frame(*ids: int) -> str:
    return json.dumps(quote(ids[0]) if len(ids) == 1 else [quote(i) for i in ids])


async def hold(ws: ServerConnection) -> None:
    await ws.wait_closed()


# --- parsing and batching ---------------------------------------------------------------------


def test_objects_arrays_and_numbers_as_strings() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        await ws.send(frame(0))
        await ws.send(frame(1, 2, 3))
        await ws.send(json.dumps(quote(4, strings=True)))
        await ws.send(json.dumps([quote(5, strings=True)]).encode(), text=False)  # binary too
        await hold(ws)

    before = time.time_ns()
    with WsServer(handler) as server, running(LiveSource(server.url)) as src:
        tables, _ = collect(src, records=6)
        after = time.time_ns()
        got = rows(tables)
        check_quotes(got, [0, 1, 2, 3, 4, 5])
        assert [r["line"] for r in got] == [1, 2, 2, 2, 3, 4], "line = frame number"
        assert all(before <= r["arrival"] <= after for r in got), "arrival = receive time"
        stats = src.stats
    assert stats["connects"] == 1 and stats["frames"] == 4 and stats["records"] == 6
    assert stats["rejected"] == 0 and stats["bytes"] > 0


def test_bad_frames_are_rejected_and_the_connection_carries_on() -> None:
    bad_type = dict(quote(10), timestamp=5)
    missing = {"ticker": "X"}
    frames = [
        frame(0),
        "this is not json",
        json.dumps(bad_type),
        json.dumps([quote(1), missing, quote(2)]),
        '"a string"',
        '{"timestamp": "2025-10-02 23:59:57", "ticker": "X", "bid_price": "abc", '
        '"ask_price": 1}',
        frame(3),
    ]

    async def handler(ws: ServerConnection, n: int) -> None:
        for f in frames:
            await ws.send(f)
        await hold(ws)

    with WsServer(handler) as server, running(LiveSource(server.url)) as src:
        tables, rejected = collect(src, records=4, rejects=5)
        check_quotes(rows(tables), [0, 1, 2, 3])
        stats = src.stats
    assert [r.line for r in rejected] == [2, 3, 4, 5, 6], "reject line = frame number"
    assert all(r.source == server.url for r in rejected)
    reasons = [r.reason for r in rejected]
    assert "not valid JSON" in reasons[0]
    assert "timestamp has the wrong type" in reasons[1]
    assert "missing field" in reasons[2] and "object 2 of frame" in reasons[2]
    assert "not a quote object" in reasons[3]
    assert "bid_price is not a number" in reasons[4]
    assert rejected[0].raw == "this is not json"
    assert stats["connects"] == 1 and stats["disconnects"] == 0, "bad frames must not reconnect"
    assert stats["rejected"] == 5 and stats["frames"] == 7


def test_batches_flush_at_batch_records() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        for i in range(1000):
            await ws.send(frame(i))
        await hold(ws)

    # A batch_interval far longer than the test: only the size can flush.
    with WsServer(handler) as server:
        source = LiveSource(server.url, batch_records=100, batch_interval=60.0)
        with running(source) as src:
            tables, _ = collect(src, records=1000)
    assert [t.num_rows for t in tables] == [100] * 10
    assert all(t.column("ticker").num_chunks == 1 for t in tables), "one chunk per batch"
    check_quotes(rows(tables), list(range(1000)))


def test_batches_flush_every_batch_interval() -> None:
    step = threading.Event()

    async def handler(ws: ServerConnection, n: int) -> None:
        await ws.send(frame(0, 1))
        await ws.send(frame(2))
        while not step.is_set():  # the second burst only once the test saw the first
            await asyncio.sleep(0.01)
        await ws.send(frame(3))
        await hold(ws)

    # A batch size never reached: only the interval can flush.
    with WsServer(handler) as server:
        source = LiveSource(server.url, batch_records=1_000_000, batch_interval=0.05)
        with running(source) as src:
            first, _ = collect(src, records=3)
            step.set()
            second, _ = collect(src, records=1)
    check_quotes(rows(first + second), [0, 1, 2, 3])
    assert len(first) <= 2


# --- lifecycle --------------------------------------------------------------------------------


def test_stop_start_alternation_reconnects_and_keeps_numbering() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        for i in range((n - 1) * 5, n * 5):
            await ws.send(frame(i))
        await hold(ws)

    got: list[dict[str, Any]] = []
    with WsServer(handler) as server:
        src = LiveSource(server.url)
        for k in range(1, 4):
            with running(src):
                # Wait for the records to be received, not polled: stop() must keep them.
                def received(n: int = 5 * k) -> bool:
                    return src.stats["records"] == n

                wait_for(received, 5, f"5 records in run {k}")
            assert src.stats["connects"] == k and src.stats["disconnects"] == k
            tables, _ = collect(src, records=5)
            got += rows(tables)
            assert src.poll(0.0) == (None, [])
        assert server.connections == 3
    check_quotes(got, list(range(15)))
    assert [r["line"] for r in got] == list(range(1, 16)), "frame numbers over the lifetime"


def test_stop_without_start_and_double_start_are_harmless() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        await ws.send(frame(n))
        await hold(ws)

    with WsServer(handler) as server:
        src = LiveSource(server.url)
        src.stop()
        assert src.poll(0.01) == (None, [])
        with running(src):
            src.start()  # already running: no second connection
            tables, _ = collect(src, records=1)
        assert server.connections == 1
    check_quotes(rows(tables), [1])


@pytest.mark.parametrize("how", ["socket", "close-frame"])
def test_server_drop_reconnects_and_logs(how: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        if n == 1:
            for i in range(3):
                await ws.send(frame(i))
            if how == "socket":
                ws.transport.close()  # TCP goes away without a websocket close frame
            else:
                await ws.close(1012, "restarting")
            return
        for i in range(3, 6):
            await ws.send(frame(i))
        await hold(ws)

    with WsServer(handler) as server:
        source = LiveSource(server.url, backoff_initial=0.05, backoff_max=0.2)
        with running(source) as src:
            tables, _ = collect(src, records=6)
            stats = src.stats
    check_quotes(rows(tables), list(range(6)))
    assert stats["connects"] == 2 and stats["disconnects"] == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if " live " in line]
    assert any(" connected " in line and f"url={server.url}" in line for line in lines), err
    drop = next(line for line in lines if " disconnected " in line)
    assert "records=3" in drop and "reason=" in drop
    if how == "close-frame":
        assert "1012" in drop and "restarting" in drop
    assert any(" reconnected " in line and "gap_s=" in line for line in lines), err


def test_records_before_a_drop_are_handed_over_at_once() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        if n == 1:
            await ws.send(frame(0, 1))
            await ws.send(frame(2))
            await ws.close()
        else:
            await hold(ws)

    with WsServer(handler) as server:
        # Neither the size nor the interval can flush: only the end of the connection does.
        source = LiveSource(server.url, batch_records=1_000_000, batch_interval=60.0)
        with running(source) as src:
            tables, _ = collect(src, records=3)
    check_quotes(rows(tables), [0, 1, 2])


def test_silent_server_hits_the_idle_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        await hold(ws)  # accepts, never sends, never closes

    with WsServer(handler) as server:
        source = LiveSource(server.url, idle_timeout=0.3, backoff_initial=0.05, backoff_max=0.1)
        with running(source) as src:
            wait_for(lambda: src.stats["connects"] >= 2, 5, "a reconnect after the idle timeout")
            assert src.stats["disconnects"] >= 1
        assert server.connections >= 2
    err = capsys.readouterr().err
    assert "connection idle" in err and "idle for 0.3 s" in err, err


def test_unreachable_server_backs_off_and_stops_promptly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = LiveSource(f"ws://127.0.0.1:{port}", backoff_initial=0.01, backoff_max=0.04)
    seen: list[str] = []

    def retried() -> bool:
        seen.append(capsys.readouterr().err)
        return "".join(seen).count("connect failed") >= 5

    with running(source):
        wait_for(retried, 5, "five connect attempts")
        assert source.stats["connects"] == 0
    err = "".join(seen)
    delays = [float(w.split("=")[1]) for w in err.split() if w.startswith("retry_in=")]
    assert delays and max(delays) <= 0.04


@pytest.mark.parametrize("url", ["", "http://127.0.0.1:1", "127.0.0.1:8765", "ws://"])
def test_bad_url_is_refused_up_front(url: str) -> None:
    with pytest.raises(ValueError, match="websocket URL"):
        LiveSource(url)


def test_backoff_delay_is_full_jitter_capped() -> None:
    for attempt, bound in [(0, 0.1), (1, 0.2), (3, 0.8), (10, 5.0), (200, 5.0)]:
        samples = [backoff_delay(attempt, 0.1, 5.0) for _ in range(2000)]
        assert all(0.0 <= d <= bound for d in samples)
        assert max(samples) > 0.9 * bound and min(samples) < 0.1 * bound


def test_oversized_frame_is_rejected_and_the_source_reconnects() -> None:
    big = json.dumps([quote(100 + i) for i in range(40)])
    assert len(big) > 2000

    async def handler(ws: ServerConnection, n: int) -> None:
        if n == 1:
            await ws.send(frame(0))
            await ws.send(big)
            await ws.send(frame(1))  # after the refused frame on the same connection: lost
        else:
            await ws.send(frame(2))
        await hold(ws)

    with WsServer(handler) as server:
        source = LiveSource(server.url, max_frame=2000, backoff_initial=0.05, backoff_max=0.1)
        with running(source) as src:
            tables, rejected = collect(src, records=2, rejects=1)
            stats = src.stats
    check_quotes(rows(tables), [0, 2])
    assert "larger than 2000 bytes" in rejected[0].reason
    assert rejected[0].line == 2 and rejected[0].source == server.url
    assert stats["connects"] == 2 and stats["rejected"] == 1


# --- flow control -----------------------------------------------------------------------------

PAD = "x" * 500  # unknown fields are ignored: bytes on the wire without parsing cost
PER_FRAME = 100


@functools.cache
def _big_frame(k: int) -> str:
    objs = []
    for i in range(k * PER_FRAME, (k + 1) * PER_FRAME):
        q = quote(i)
        q["pad"] = PAD
        objs.append(q)
    return json.dumps(objs)


class FloodServer(WsServer):
    """Sends ``total`` big array frames as fast as the client takes them (counted in
    ``frames``), sets ``done``, then holds."""

    def __init__(self, total: int) -> None:
        super().__init__(self._flood)
        self.total = total
        self.done = threading.Event()

    async def _flood(self, ws: ServerConnection, n: int) -> None:
        for k in range(self.total):
            await self.send(ws, _big_frame(k))
        self.done.set()
        await hold(ws)


def _stalled(server: FloodServer, source: LiveSource, total: int) -> None:
    """Wait until the queue is full and the server's sends have stopped short of ``total``."""
    wait_for(lambda: source.pending_batches >= source.settings.max_pending, 10, "the queue to fill")
    last, still = -1, 0
    deadline = time.monotonic() + 15
    while still < 3:  # three 0.1 s looks without progress
        assert time.monotonic() < deadline, "the server never stalled"
        assert not server.done.is_set(), f"the server sent all {total} frames: no backpressure"
        now = server.frames
        still = still + 1 if now == last else 0
        last = now
        server.done.wait(0.1)
    assert server.frames < total
    assert source.pending_batches == source.settings.max_pending, "the queue grew beyond its bound"


def test_backpressure_holds_the_server_and_loses_nothing() -> None:
    frames = 900  # ~57 MB: more than kernel (tcp_rmem max 32 MB) and websockets buffers hold
    with FloodServer(frames) as server:
        source = LiveSource(server.url, batch_records=1000, max_pending=2, idle_timeout=0.5)
        with running(source) as src:
            _stalled(server, src, frames)
            # Stay blocked for twice the idle timeout: that is not an idle connection.
            assert not server.done.wait(2 * src.settings.idle_timeout), "the server was not held"
            assert src.stats["disconnects"] == 0, "blocked time was counted as idle time"
            tables, _ = collect(src, records=frames * PER_FRAME, timeout=30)
            assert server.done.is_set()
            assert src.stats["connects"] == 1 and src.stats["disconnects"] == 0
    got = pa.concat_tables(tables)
    expected = [BASE_NS + i * 1000 for i in range(frames * PER_FRAME)]
    assert got.column("timestamp").to_pylist() == expected, "records lost, duplicated or moved"
    assert got.column("bid_price").to_pylist() == [i + 0.5 for i in range(frames * PER_FRAME)]


def test_stop_while_blocked_is_prompt_and_keeps_pending_batches() -> None:
    frames = 900
    with FloodServer(frames) as server:
        source = LiveSource(server.url, batch_records=1000, max_pending=2)
        source.start()
        _stalled(server, source, frames)
        t0 = time.monotonic()
        source.stop()
        assert time.monotonic() - t0 < 2.0, "stop() while blocked took 2 s or more"
        assert source.pending_batches >= 2
        tables = drain(source)
    got = pa.concat_tables(tables).column("timestamp").to_pylist()
    assert got == [BASE_NS + i * 1000 for i in range(len(got))], "a prefix, in order"


def drain(source: LiveSource) -> list[pa.Table]:
    """The tables of every batch waiting in a stopped ``source`` (nothing more arrives)."""
    tables = []
    while source.pending_batches:
        table, _ = source.poll(0.0)
        if table is not None:
            assert table.schema == TABLE_SCHEMA
            tables.append(table)
    return tables
