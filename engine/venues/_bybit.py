"""Bybit v5 public ``orderbook.1`` (top of book), spot, linear and inverse.

Follows the Bybit V5 API documentation, "WebSocket Stream / Public / Orderbook" and "WebSocket
Stream / Connect" (bybit-exchange.github.io/docs/v5/websocket/public/orderbook, .../ws/connect),
as read on 2026-11-28.

- Sends ``{"op": "subscribe", "req_id": "N", "args": ["orderbook.1.BTCUSDT", ...]}`` on connect
  (10 topics a message, the spot limit) and ``{"op": "ping", "req_id": "hb-N"}`` every 20 s, as
  Bybit asks; the answer (``"op": "ping"`` with ``ret_msg`` ``pong``, or ``"op": "pong"``) is a
  heartbeat.
- Reads ``{"topic": "orderbook.1.S", "type": "snapshot" | "delta", "ts", "data": {"s", "b":
  [[px, sz]], "a": [[px, sz]], "u", "seq"}, "cts"}``. A snapshot replaces the top of both sides
  (an empty list empties a side); a delta changes the levels it names, size ``"0"`` deleting
  one; a snapshot also comes again after a service restart (``u`` = 1). Each message gives a
  quote of the top as it then is; a delta before any snapshot is rejected. The timestamp is
  ``cts`` (the matching engine's time), ``ts`` (when the system produced the data) when absent.
- Control: ``{"op": "subscribe", "success": true, ...}``; ``"success": false`` is a venue
  error (``ret_msg``).
- Tickers: the category is the URL's last path part (``/v5/public/spot``, ``linear``,
  ``inverse``): spot ``BTCUSDT`` → ``BTC-USDT@BYBIT``, perpetuals ``BTC-USDT-SWAP@BYBIT``,
  dated futures ``BTCUSDT-26DEC25`` → ``BTC-USDT-26DEC25@BYBIT``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from engine.venues._base import EMPTY_SIDE, Adapter, ms_ns, split_pair, top_level

#: Topics per subscribe message (Bybit's limit for spot).
TOPICS_PER_MESSAGE = 10


class Bybit(Adapter):
    format = "bybit"
    venue = "BYBIT"
    docs = "bybit-exchange.github.io/docs/v5/websocket/public/orderbook"
    heartbeat = 20.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        path = urlsplit(self.url).path.rstrip("/")
        self.spot = path.endswith("/spot")
        # The top of each book: symbol -> [(bid px, bid size), (ask px, ask size)], as texts.
        self._books: dict[str, list[tuple[Any, Any]]] = {}
        self._pings = 0

    def connected(self) -> list[str]:
        self._books.clear()  # a new connection starts with snapshots
        topics = [f"orderbook.1.{s}" for s in self.instruments]
        step = TOPICS_PER_MESSAGE
        return [
            json.dumps({"op": "subscribe", "req_id": str(self._request_id()),
                        "args": topics[i : i + step]})
            for i in range(0, len(topics), step)
        ]  # fmt: skip

    def heartbeat_message(self) -> str:
        self._pings += 1
        return json.dumps({"op": "ping", "req_id": f"hb-{self._pings}"})

    def _message(self, doc: Any) -> None:
        if type(doc) is not dict:
            self._not_a_message(doc)
            return
        topic = doc.get("topic")
        if topic is not None:
            if type(topic) is str and topic.startswith("orderbook.1."):
                self._book(doc)
            else:
                self._unknown(f"topic={str(topic).split('.')[0]}", doc)
            return
        op = doc.get("op")
        if op == "pong" or (op == "ping" and doc.get("ret_msg") == "pong"):
            self._heartbeat()
        elif doc.get("success") is False:
            self._venue_error(op=op, text=doc.get("ret_msg"), req_id=doc.get("req_id"))
        elif op in ("subscribe", "unsubscribe") and doc.get("success") is True:
            self._control(op, f"{op}d", req_id=doc.get("req_id"))
        else:
            self._unknown(f"op={op}" if op is not None else "no type", doc)

    def _book(self, doc: dict[str, Any]) -> None:
        data, kind = doc.get("data"), doc.get("type")
        if type(data) is not dict or type(data.get("s")) is not str:
            self._reject("orderbook message without data.s", doc)
            return
        symbol = data["s"]
        book = self._books.get(symbol)
        if kind == "snapshot" or data.get("u") == 1:
            book = self._books[symbol] = [top_level(data.get("b")), top_level(data.get("a"))]
        elif kind == "delta":
            if book is None:
                self.counts["delta_before_snapshot"] += 1
                self._reject("delta before a snapshot of this book", doc)
                return
            for i, key in ((0, "b"), (1, "a")):
                for level in data.get(key) or ():
                    if type(level) is not list or len(level) < 2:
                        self._reject(f"malformed level in {key}", doc)
                        return
                    if level[1] == "0" or _is_zero(level[1]):
                        if _same_price(book[i][0], level[0]):
                            book[i] = EMPTY_SIDE
                    else:
                        book[i] = (level[0], level[1])
        else:
            self._unknown(f"type={kind}", doc)
            return
        t = doc.get("cts")
        ns = ms_ns(t if t is not None else doc.get("ts"), "cts")
        (bid, bid_size), (ask, ask_size) = book
        self._quote(symbol, ns, bid, ask, bid_size, ask_size, doc)

    def instrument_name(self, symbol: str) -> str:
        base, dash, delivery = symbol.partition("-")
        if self.spot:
            return split_pair(symbol)
        if dash:
            return f"{split_pair(base)}-{delivery}"
        return f"{split_pair(symbol)}-SWAP"


def _same_price(a: Any, b: Any) -> bool:
    """The same price level, written alike or not (``"16493.5"``, ``"16493.50"``)."""
    if a == b:
        return True
    try:
        return a is not None and float(a) == float(b)
    except (TypeError, ValueError):
        return False


def _is_zero(size: Any) -> bool:
    try:
        return type(size) is str and float(size) == 0.0
    except ValueError:
        return False
