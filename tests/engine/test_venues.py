"""The venue adapters (``engine.venues``), from message samples of each venue's documentation.

Each fixture in ``tests/engine/venues/`` names the documentation pages and the date its
messages were written from, what the client must send on connect, the server's answers and
frames (quotes, heartbeats, acknowledgements, notices, the venue's errors, messages of other
types, bad quotes), and what must come out: the quotes, exactly; the rejected items, with their
reasons; the counts of control messages, heartbeats, venue errors and unknown types.

Part one drives the adapters without sockets (sans-I/O); part two runs the live source against
a :class:`~tests.support.fakevenue.FakeVenue` speaking the same protocol: the subscription on
every connection, a drop and the resubscription after it, heartbeats that keep the connection
open past the venue's deadline (and their absence that does not).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from engine.cli import LIVE_FORMATS
from engine.live import Batcher, LiveSource
from engine.timestamps import parse_timestamp
from engine.venues import FORMATS, Decoded, make_adapter, split_pair
from tests.support import wait_until
from tests.support.fakevenue import (
    FakeVenue,
    fill,
    fixture_names,
    frame_text,
    load_fixture,
    matches,
)

RECEIVED_NS = 1_764_288_000_999_000_000
NAMES = fixture_names()


def expected_rows(fx: dict[str, Any], received_ns: int | None) -> list[tuple[Any, ...]]:
    """The fixture's quotes as ``(ticker, ns, bid, ask, bid_amount, ask_amount)``; a quote
    stamped with the receive time has ``received_ns`` (None: any time)."""
    rows = []
    for ticker, ts, *numbers in fx["quotes"]:
        ns = received_ns if ts == "receive time" else parse_timestamp(ts)
        assert not isinstance(ns, str), ts
        rows.append((ticker, ns, *(float(x) for x in numbers)))
    return rows


def table_rows(table: pa.Table | None) -> list[tuple[Any, ...]]:
    if table is None:
        return []
    cols = ["ticker", "timestamp", "bid_price", "ask_price", "bid_amount", "ask_amount"]
    return list(zip(*(table.column(c).to_pylist() for c in cols), strict=True))


def test_every_format_has_a_fixture_and_the_command_line_offers_each() -> None:
    assert sorted(FORMATS) == sorted(LIVE_FORMATS)
    assert sorted(NAMES) == sorted(f for f in FORMATS if f != "ours")


# --- part one: sans-I/O --------------------------------------------------------------------


def decode_all(name: str) -> tuple[Any, list[Decoded], list[str]]:
    fx = load_fixture(name)
    adapter = make_adapter(fx["format"], fx["instruments"], url="ws://venue" + fx["path"],
                           source="ws://venue")  # fmt: skip
    sent = adapter.connected()
    texts = [json.dumps(a) for a in fx["acks"]] + [frame_text(f) for f in fx["frames"]]
    out = [adapter.decode(t, i, RECEIVED_NS) for i, t in enumerate(texts, 1)]
    return adapter, out, sent


@pytest.mark.parametrize("name", NAMES)
def test_the_documented_messages_give_exactly_the_quotes_rejects_and_counts(name: str) -> None:
    fx = load_fixture(name)
    adapter, out, sent = decode_all(name)
    # What the client sends on connect is what the venue's documentation asks for.
    ids: list[Any] = []
    assert len(sent) == len(fx["sent_on_connect"])
    for text, template in zip(sent, fx["sent_on_connect"], strict=True):
        assert matches(json.loads(text), template, ids), (text, template)
    # The quotes, exactly (numbers from the venues' decimal texts), in order.
    got = [row for d in out for row in table_rows(d.table)]
    assert got == expected_rows(fx, RECEIVED_NS)
    for d in out:
        if d.table is not None:
            assert d.table.column("arrival").to_pylist() == [RECEIVED_NS] * d.table.num_rows
    # Bad quotes are rejected with their reason and the frame they came in; nothing else is.
    rejected = [r for d in out for r in d.rejected]
    assert [r.reason for r in rejected] == fx["rejected"]
    assert all(r.source == "ws://venue" and r.raw for r in rejected)
    counts = {k: v for k, v in adapter.counts.items() if k != "quotes" and v}
    assert counts == fx["counts"]
    assert adapter.counts["quotes"] == len(fx["quotes"])
    assert dict(adapter.unknown) == fx["unknown_types"]
    # Each unknown type is noted once; each venue error is noted as an error.
    notes = [n for d in out for n in d.notes]
    unknown_notes = [n.fields["type"] for n in notes if n.message == "unknown message type"]
    assert sorted(unknown_notes) == sorted(fx["unknown_types"])
    errors = [n for n in notes if n.level == "error"]
    assert len(errors) == fx["counts"].get("venue_errors", 0)
    assert all(n.message == "venue error" and n.fields["venue"] == adapter.venue for n in errors)


@pytest.mark.parametrize("name", NAMES)
def test_a_frame_that_is_not_json_or_not_a_message_is_rejected_and_the_next_one_is_read(
    name: str,
) -> None:
    fx = load_fixture(name)
    adapter = make_adapter(fx["format"], fx["instruments"], url="ws://venue" + fx["path"])
    adapter.connected()
    frames = ["{not json", "[1, 2]", '{"s": "BTCUSDT", "b": NaN, "a": Infinity}']
    bad = [adapter.decode(t, i, RECEIVED_NS) for i, t in enumerate(frames, 1)]
    assert [r.reason.split(" (")[0] for d in bad for r in d.rejected] == [
        "frame is not valid JSON", f"frame is not a {adapter.venue} message",
        "frame is not valid JSON"]  # fmt: skip
    assert [r.line for d in bad for r in d.rejected] == [1, 2, 3]
    assert not any(d.rows for d in bad)
    too_big = make_adapter(fx["format"], fx["instruments"], max_bytes=10).decode("x" * 11, 3, 0)
    assert too_big.rejected[0].reason == "frame is larger than 10 bytes (11 bytes)"


def test_unknown_types_are_noted_once_per_type_however_often_they_come() -> None:
    adapter = make_adapter("okx", ["BTC-USDT"])
    frame = json.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": []})
    notes = [adapter.decode(frame, i, 0).notes for i in range(5)]
    assert [len(n) for n in notes] == [1, 0, 0, 0, 0]
    assert adapter.unknown["channel=trades"] == 5 and adapter.counts["unknown"] == 5


def test_venue_symbols_become_tickers_of_the_projects_layout() -> None:
    assert split_pair("1000PEPEUSDT") == "1000PEPE-USDT"
    bybit_spot = make_adapter("bybit", ["BTCUSDT"], url="wss://stream.bybit.com/v5/public/spot")
    bybit_dated = make_adapter("bybit", ["BTCUSDT-26DEC25"], url="wss://x/v5/public/linear")
    assert bybit_spot.instrument_name("BTCUSDT") == "BTC-USDT"
    assert bybit_dated.instrument_name("BTCUSDT-26DEC25") == "BTC-USDT-26DEC25"
    assert make_adapter("binance").instrument_name("F:ETHUSDT_250926") == "ETH-USDT-250926"
    too_long = make_adapter("kraken", ["X"]).decode(json.dumps({"channel": "ticker", "data": [
        {"symbol": "A" * 70, "bid": 1, "ask": 2, "timestamp": "2025-01-01T00:00:00Z"}]}), 1, 0)
    assert too_long.rejected[0].reason.startswith("instrument name is not usable")


def test_binance_without_instruments_reads_the_streams_the_url_names() -> None:
    adapter = make_adapter("binance", url="wss://stream.binance.com:9443/ws/bnbusdt@bookTicker")
    assert adapter.connected() == []
    with pytest.raises(ValueError, match="subscribes to instruments"):
        make_adapter("okx")
    with pytest.raises(ValueError, match="unknown live format"):
        make_adapter("bitmex", ["XBTUSD"])


def test_heartbeats_are_what_the_venues_document() -> None:
    assert make_adapter("okx", ["BTC-USDT"]).heartbeat_message() == "ping"
    bybit = make_adapter("bybit", ["BTCUSDT"])
    assert matches(json.loads(bybit.heartbeat_message() or ""), {"op": "ping", "req_id": "$any"},
                   [])  # fmt: skip
    intervals = {f: make_adapter(f, ["X"]).heartbeat_interval for f in FORMATS}
    assert intervals == {"ours": None, "binance": None, "okx": 20.0, "okx-tickers": 20.0,
                         "bybit": 20.0, "coinbase": None, "kraken": None}  # fmt: skip
    assert make_adapter("okx", ["X"], heartbeat=0.5).heartbeat_interval == 0.5


def test_fill_and_matches_echo_request_ids() -> None:  # the fake venue's own rules
    ids: list[Any] = []
    assert matches({"op": "subscribe", "req_id": "7"}, {"op": "subscribe", "req_id": "$id"}, ids)
    assert ids == ["7"] and fill({"req_id": "$id", "ok": True}, "7") == {"req_id": "7", "ok": True}
    assert not matches({"op": "subscribe"}, {"op": "subscribe", "req_id": "$id"}, [])


# --- part two: the live source against a fake venue ---------------------------------------


@contextlib.contextmanager
def live(fx: dict[str, Any], url: str, **settings: Any) -> Iterator[LiveSource]:
    source = LiveSource(url, format=fx["format"], instruments=tuple(fx["instruments"]),
                        batch_interval=0.002, backoff_initial=0.02, backoff_max=0.2,
                        **settings)  # fmt: skip
    source.start()
    try:
        yield source
    finally:
        source.stop()


def collect(
    source: LiveSource, want: int, what: str, reasons: list[str] | None = None
) -> list[tuple[Any, ...]]:
    """Poll until ``want`` quotes came; their rows (the rejects' reasons go to ``reasons``)."""
    rows: list[tuple[Any, ...]] = []

    def more() -> bool:
        table, rejected = source.poll(0.05)
        rows.extend(table_rows(table))
        if reasons is not None:
            reasons.extend(r.reason for r in rejected)
        return len(rows) >= want

    wait_until(more, what)
    return rows


#: Where each fixture's first connection is dropped: a point where the venue's stream can go on
#: (Bybit: after the one-sided delta, before the snapshots that follow a reconnection).
DROP_AFTER = {"binance": 3, "okx": 3, "okx-tickers": 1, "bybit": 7, "coinbase": 3, "kraken": 4}


@pytest.mark.parametrize("name", NAMES)
def test_the_live_source_subscribes_again_after_a_drop_and_loses_nothing(name: str) -> None:
    fx = load_fixture(name)
    with FakeVenue(fx, drop_after=DROP_AFTER[name]) as venue, live(fx, venue.url) as source:
        reasons: list[str] = []
        rows = collect(source, len(fx["quotes"]), f"{name}: every quote through the drop",
                       reasons)  # fmt: skip

        def all_rejects() -> bool:
            reasons.extend(r.reason for r in source.poll(0.05)[1])
            return len(reasons) >= len(fx["rejected"])

        wait_until(all_rejects, f"{name}: every reject")
        assert venue.subscriptions == [1, 2], "subscribed once on each connection"
        assert venue.unexpected == [], "the client sent only what the venue expects"
        assert venue.sent == len(fx["frames"])
        stats = source.stats
        assert stats["connects"] == 2 and stats["disconnects"] >= 1
        assert stats["rejected"] == len(fx["rejected"])
    assert sorted(reasons) == sorted(fx["rejected"])
    expected = expected_rows(fx, None)
    assert [r[:1] + r[2:] for r in rows] == [r[:1] + r[2:] for r in expected]
    assert [r[1] for r, e in zip(rows, expected, strict=True) if e[1] is not None] == [
        e[1] for e in expected if e[1] is not None]  # fmt: skip


HEARTBEATING = [n for n in NAMES if "heartbeat" in load_fixture(n)]


@pytest.mark.parametrize("name", HEARTBEATING)
def test_heartbeats_keep_the_connection_past_the_venues_deadline(name: str) -> None:
    fx = load_fixture(name)
    deadline = 1.0  # heartbeats 5 times as often: a loaded machine keeps a wide margin
    with FakeVenue(fx, heartbeat_deadline=deadline) as venue, live(
        fx, venue.url, heartbeat=deadline / 5
    ) as source:
        collect(source, len(fx["quotes"]), f"{name}: every quote")
        # Three deadlines' worth of heartbeats on the one connection: it was never closed.
        wait_until(lambda: venue.heartbeats[1] >= 15, f"{name}: 15 heartbeats answered")
        assert venue.deadline_closes == 0 and venue.connections == 1
        assert source.stats["venue_heartbeats"] >= 12  # the answers were read as heartbeats


@pytest.mark.parametrize("name", HEARTBEATING)
def test_without_heartbeats_in_time_the_venue_closes_and_the_source_comes_back(name: str) -> None:
    fx = load_fixture(name)
    with FakeVenue(fx, heartbeat_deadline=0.3) as venue, live(fx, venue.url, heartbeat=30.0):
        wait_until(lambda: venue.deadline_closes >= 1 and venue.subscriptions[-1:] == [2],
                   f"{name}: closed for no heartbeat, then subscribed again")  # fmt: skip


def test_the_public_names_are_the_documented_ones() -> None:
    import engine.venues as venues

    assert sorted(venues.__all__) == sorted(["FORMATS", "Adapter", "Decoded", "Note", "Row",
                                             "EMULATED", "Emulation",
                                             "make_adapter", "split_pair"])  # fmt: skip
    assert all(hasattr(venues, name) for name in venues.__all__)
    assert all(cls.__module__.startswith("engine.venues._") for cls in FORMATS.values())
    assert sorted(venues.EMULATED) == sorted(f for f in FORMATS if f != "ours")
    assert all(cls.docs and cls.venue.isupper() for cls in FORMATS.values() if cls.venue)


def test_malformed_instruments_and_times_are_rejected_not_raised() -> None:
    okx = make_adapter("okx", ["BTC-USDT"])
    no_inst = okx.decode(json.dumps({"arg": {"channel": "bbo-tbt"}, "data": [
        {"asks": [["1", "1"]], "bids": [["1", "1"]], "ts": "1"}]}), 1, 0)
    assert [r.reason for r in no_inst.rejected] == ["instrument name is not usable (null)"]
    kraken = make_adapter("kraken", ["BTC/USD"])
    listed = kraken.decode(json.dumps({"channel": "ticker", "data": [
        {"symbol": ["A"], "bid": 1, "ask": 2, "timestamp": "2025-01-01T00:00:00Z"}]}), 2, 0)
    assert [r.reason for r in listed.rejected] == ['instrument name is not usable (["A"])']
    # A time past int64 nanoseconds would make the batch's table fail and hold everything
    # behind it: rejected here instead, and the quotes around it still go out.
    frame = {"arg": {"channel": "bbo-tbt", "instId": "A"}, "data": [
        {"asks": [["2", "1"]], "bids": [["1", "1"]], "ts": "99999999999999999999"},
        {"asks": [["2", "1"]], "bids": [["1", "1"]], "ts": "1764288000120"}]}
    d = okx.decode(json.dumps(frame), 3, 0)
    assert [r.reason for r in d.rejected] == ["ts is out of range (\"99999999999999999999\")"]
    batcher = Batcher()
    batcher.add_rows(d.rows, 3, 0, d.rejected, 0.0)
    assert batcher.flush(0.0, force=True)
    table, rejected = batcher.take() or (None, [])
    assert table is not None and table.column("timestamp").to_pylist() == [1764288000120000000]
    assert [r.reason for r in rejected] == [r.reason for r in d.rejected]
