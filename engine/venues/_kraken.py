"""Kraken Spot WebSocket v2, channel ``ticker`` (level 1).

Follows "Spot WebSocket v2 / Market Data / Ticker (Level 1)", "Heartbeat", "Status" and
"Ping" (docs.kraken.com/api/docs/websocket-v2/ticker and its neighbours), as read on
2026-11-28.

- Sends ``{"method": "subscribe", "params": {"channel": "ticker", "symbol": [...],
  "event_trigger": "bbo"}, "req_id": N}`` on connect: an update on every change of the best
  bid or offer (the default, ``trades``, would only send one on a trade).
- Reads ``{"channel": "ticker", "type": "snapshot" | "update", "data": [{"symbol", "bid",
  "bid_qty", "ask", "ask_qty", ..., "timestamp"}]}``; prices are JSON numbers (read as the
  nearest float64, exact for their decimal text). The timestamp is the item's ``timestamp``
  (RFC 3339); an item without one (older servers) is stamped with the receive time and counted
  in ``no_exchange_time``.
- Heartbeat: Kraken sends ``{"channel": "heartbeat"}`` every second while subscribed; websocket
  pings do the client's side. Control: ``{"channel": "status", ...}``, ``{"method":
  "subscribe", "success": true, ...}``, ``{"method": "pong"}``; ``"success": false`` is a venue
  error (``error``).
- Tickers: ``BTC/USD`` → ``BTC-USD@KRAKEN``.
"""

from __future__ import annotations

import json
from typing import Any

from engine.venues._base import Adapter, rfc3339_ns


class Kraken(Adapter):
    format = "kraken"
    venue = "KRAKEN"
    docs = "docs.kraken.com/api/docs/websocket-v2/ticker"

    def connected(self) -> list[str]:
        if not self.instruments:
            return []
        params = {"channel": "ticker", "symbol": self.instruments, "event_trigger": "bbo"}
        return [json.dumps({"method": "subscribe", "params": params,
                            "req_id": self._request_id()})]  # fmt: skip

    def _message(self, doc: Any) -> None:
        if type(doc) is not dict:
            self._not_a_message(doc)
            return
        channel = doc.get("channel")
        if channel == "ticker":
            for item in self._objects(doc.get("data"), "data", doc):
                stamp = item.get("timestamp")
                ns = self._stamp() if stamp is None else rfc3339_ns(stamp, "timestamp")
                self._quote(item.get("symbol"), ns, item.get("bid"), item.get("ask"),
                            item.get("bid_qty"), item.get("ask_qty"), item)  # fmt: skip
            return
        if channel == "heartbeat":
            self._heartbeat()
            return
        if channel == "status":
            self._control("status", "venue status", data=doc.get("data"))
            return
        method = doc.get("method")
        if method is not None and doc.get("success") is False:
            self._venue_error(method=method, text=doc.get("error"), req_id=doc.get("req_id"))
        elif method == "pong":
            self._heartbeat()
        elif method in ("subscribe", "unsubscribe"):
            self._control(method, f"{method}d", result=doc.get("result"))
        else:
            kind = f"channel={channel}" if channel is not None else f"method={method}"
            self._unknown(kind, doc)

    def instrument_name(self, symbol: str) -> str:
        return symbol.replace("/", "-")
