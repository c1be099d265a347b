"""Coinbase Advanced Trade market data, channel ``ticker`` (and ``heartbeats``).

Follows "Advanced Trade WebSocket Channels" (docs.cdp.coinbase.com/coinbase-app/
advanced-trade-apis/websocket/websocket-channels) and the Advanced Trade AsyncAPI, as read on
2026-11-28.

- Sends ``{"type": "subscribe", "product_ids": [...], "channel": "ticker"}`` and ``{"type":
  "subscribe", "channel": "heartbeats"}`` on connect (within the 5 s Coinbase allows; the
  heartbeats keep a quiet subscription open).
- Reads ``{"channel": "ticker", "timestamp": RFC 3339, "sequence_num", "events": [{"type":
  "snapshot" | "update", "tickers": [{"product_id", "best_bid", "best_bid_quantity",
  "best_ask", "best_ask_quantity", ...}]}]}``; the timestamp is the message's ``timestamp``
  (ns precision). ``sequence_num`` counts every message of a connection: a gap is logged and
  counted (``sequence_gaps``, messages missed).
- Control: ``subscriptions`` (acknowledged), ``heartbeats`` (a heartbeat); ``{"type": "error",
  "message"}`` is a venue error.
- Tickers: the product id, ``BTC-USD@COINBASE``.
"""

from __future__ import annotations

import json
from typing import Any

from engine.venues._base import Adapter, Note, rfc3339_ns


class Coinbase(Adapter):
    format = "coinbase"
    venue = "COINBASE"
    docs = "docs.cdp.coinbase.com/advanced-trade/docs/ws-channels: ticker, heartbeats"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_seq: int | None = None

    def connected(self) -> list[str]:
        self._next_seq = None  # sequence numbers are per connection
        if not self.instruments:
            return []
        return [
            json.dumps({"type": "subscribe", "product_ids": self.instruments,
                        "channel": "ticker"}),
            json.dumps({"type": "subscribe", "channel": "heartbeats"}),
        ]  # fmt: skip

    def _message(self, doc: Any) -> None:
        if type(doc) is not dict:
            self._not_a_message(doc)
            return
        seq = doc.get("sequence_num")
        if type(seq) is int:
            expected = self._next_seq
            if expected is not None and seq > expected:
                self.counts["sequence_gaps"] += 1
                self.counts["messages_missed"] += seq - expected
                self._notes.append(self._gap(expected, seq))
            self._next_seq = seq + 1
        channel = doc.get("channel")
        if channel == "ticker":
            ns = rfc3339_ns(doc.get("timestamp"), "timestamp")
            for event in self._objects(doc.get("events"), "events", doc):
                for t in self._objects(event.get("tickers"), "tickers", event):
                    self._quote(t.get("product_id"), ns, t.get("best_bid"), t.get("best_ask"),
                                t.get("best_bid_quantity"), t.get("best_ask_quantity"),
                                t)  # fmt: skip
        elif channel == "heartbeats":
            self._heartbeat()
        elif channel == "subscriptions":
            self._control("subscriptions", "subscribed", events=doc.get("events"))
        elif doc.get("type") == "error":
            self._venue_error(text=doc.get("message"), reason=doc.get("reason"))
        else:
            self._unknown(f"channel={channel}" if channel is not None else "no type", doc)

    def _gap(self, expected: int, seq: int) -> Note:
        return Note("warning", "sequence gap", {"venue": self.venue, "expected": expected,
                                                "got": seq, "missed": seq - expected})  # fmt: skip
