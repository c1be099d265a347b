"""The websocket feeds over a real socket: /ws/quotes in the live layout of contract section 1,
/ws/market for the page, and a subscriber that stops reading."""

from __future__ import annotations

import json
import socket
from decimal import Decimal
from typing import Any

from websockets.sync.client import connect

from tests.support import WAIT
from tests.support.venue import VenueProc, Wood


def frames(raw: str | bytes) -> list[dict[str, Any]]:
    value = json.loads(raw, parse_float=Decimal)
    return value if isinstance(value, list) else [value]


def test_quotes_start_with_every_symbol_then_follow_each_top_change(venue: VenueProc) -> None:
    with connect(f"ws://127.0.0.1:{venue.http}/ws/quotes", open_timeout=WAIT, proxy=None) as ws:
        first = frames(ws.recv(timeout=WAIT))
        assert [q["ticker"] for q in first] == ["BTC-USDT@EXCHANGE", "ETH-USDT@EXCHANGE",
                                                "SOL-USDT@EXCHANGE"]  # fmt: skip
        assert all(q["bid_price"] == q["ask_price"] == q["bid_amount"] == 0 for q in first)
        venue.post("/api/orders", {"symbol": "ETH-USDT", "side": "BUY", "price": "2000.1",
                                   "quantity": "0.5"})  # fmt: skip
        venue.post(
            "/api/orders", {"symbol": "ETH-USDT", "side": "BUY", "price": "1999", "quantity": "1"}
        )  # fmt: skip (not the top: no quote)
        venue.post("/api/orders", {"symbol": "ETH-USDT", "side": "SELL", "price": "2001",
                                   "quantity": "0.25"})  # fmt: skip
        got = frames(ws.recv(timeout=WAIT)) + frames(ws.recv(timeout=WAIT))
        assert [(q["ticker"], q["bid_price"], q["bid_amount"], q["ask_price"], q["ask_amount"])
                for q in got] == [
            ("ETH-USDT@EXCHANGE", Decimal("2000.1"), Decimal("0.5"), 0, 0),
            ("ETH-USDT@EXCHANGE", Decimal("2000.1"), Decimal("0.5"), 2001, Decimal("0.25")),
        ]  # fmt: skip
        assert all(len(q["timestamp"]) == 26 and q["timestamp"][10] == " " for q in got)


def test_market_feed_snapshot_then_events(venue: VenueProc) -> None:
    venue.post("/api/orders", {"symbol": "BTC-USDT", "side": "SELL", "price": 100, "quantity": 1})
    with connect(f"ws://127.0.0.1:{venue.http}/ws/market", open_timeout=WAIT, proxy=None) as ws:
        snap = json.loads(ws.recv(timeout=WAIT), parse_float=Decimal)
        assert snap["type"] == "snapshot"
        assert snap["symbols"]["BTC-USDT"]["asks"] == [[100, 1]]
        assert snap["symbols"]["BTC-USDT"]["tick"] == "0.01"
        venue.post("/api/orders", {"symbol": "BTC-USDT", "side": "BUY", "price": 100,
                                   "quantity": "0.4"})  # fmt: skip
        update = json.loads(ws.recv(timeout=WAIT), parse_float=Decimal)
        kinds = [e["type"] for e in update["events"]]
        assert kinds == ["trade", "level", "top"], update
        assert update["events"][1]["quantity"] == Decimal("0.6")


def test_a_subscriber_that_stops_reading_is_dropped_and_matching_goes_on(
    venue: VenueProc,
) -> None:
    # A raw websocket handshake, then never a read: the kernel buffers fill, then its queue.
    sock = socket.create_connection(("127.0.0.1", venue.http), timeout=WAIT)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        b"GET /ws/market HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    trader = Wood(venue.private)
    try:
        # Orders sent without waiting, in rounds: each round's events are one big frame.
        order_id = 0
        for _ in range(400):
            if any("subscriber not keeping up" in line for line in venue.proc.lines):
                break
            lines = []
            for i in range(500):
                order_id += 1
                side = "BUY" if i % 2 else "SELL"
                price = 100 + (i % 50) if side == "SELL" else 50 - (i % 40)
                lines.append(json.dumps({"message": "createOrder", "orderId": order_id,
                                         "side": side, "price": price, "quantity": 1}))  # fmt: skip
            trader.sock.sendall("\n".join(lines).encode() + b"\n")
            for _ in lines:
                assert trader.recv()["report"] == "NEW"
        venue.proc.wait_log(r"subscriber not keeping up: disconnected\" feed=market")
        # Matching never waited for it: orders go on being acknowledged.
        trader.send({"message": "createOrder", "orderId": 0, "side": "BUY", "price": 1,
                     "quantity": 1})  # fmt: skip
        assert trader.recv()["report"] == "NEW"
    finally:
        trader.close()
        sock.close()


def test_market_snapshot_history_holds_the_mids_and_every_trade_since_the_start(
    venue: VenueProc,
) -> None:
    venue.post("/api/orders", {"symbol": "SOL-USDT", "side": "SELL", "price": "20.5",
                               "quantity": 2})  # fmt: skip
    venue.post("/api/orders", {"symbol": "SOL-USDT", "side": "BUY", "price": "20.1",
                               "quantity": 1})  # fmt: skip
    venue.post("/api/orders", {"symbol": "SOL-USDT", "side": "BUY", "type": "MARKET",
                               "quantity": "0.5"})  # fmt: skip

    def history() -> dict[str, Any]:
        url = f"ws://127.0.0.1:{venue.http}/ws/market"
        with connect(url, open_timeout=WAIT, proxy=None) as ws:
            snap = json.loads(ws.recv(timeout=WAIT), parse_float=Decimal)
        h: dict[str, Any] = snap["symbols"]["SOL-USDT"]["history"]
        return h

    before = history()
    assert before["trades"] == [[before["trades"][0][0], Decimal("20.5"), Decimal("0.5"), "BUY"]]
    # the empty book at start, then each top: (bid, ask)
    assert [(b, a) for _, b, a in before["mids"]] == [
        (0, 0), (0, Decimal("20.5")), (Decimal("20.1"), Decimal("20.5")),
        (Decimal("20.1"), Decimal("20.5")),
    ]  # fmt: skip
    venue.stop()
    venue.restart()
    after = history()
    assert after["trades"] == before["trades"], "recovered trades are in the history"
    assert [(b, a) for _, b, a in after["mids"]] == [(Decimal("20.1"), Decimal("20.5"))]
