"""Binance ``bookTicker``: spot and USD-M futures (and COIN-M, whose messages are the same).

Follows "WebSocket Streams", Individual Symbol Book Ticker Streams, of the spot API
(developers.binance.com/docs/binance-spot-api-docs/web-socket-streams) and "Individual Symbol
Book Ticker Streams" of USD-M futures (developers.binance.com/docs/derivatives/
usds-margined-futures/websocket-market-streams), checked on 2026-11-28 against client libraries
quoting them.

- Sends, when instruments are given: ``{"method": "SUBSCRIBE", "params":
  ["btcusdt@bookTicker", ...], "id": N}`` (200 streams a message). Without instruments the URL
  names the streams (``/ws/btcusdt@bookTicker``, ``/stream?streams=...``), as Binance allows.
- Reads a raw payload or a combined-stream one (``{"stream": ..., "data": {...}}``). Spot:
  ``{"u", "s", "b", "B", "a", "A"}``, which carries no time: the quote is stamped with the
  receive time and counted in ``no_exchange_time`` (its latency in a recording is 0). Futures:
  ``{"e": "bookTicker", "u", "E", "T", "s", "b", "B", "a", "A"}``: the timestamp is ``T``, the
  transaction time of the matching engine (when the top changed; ``E``, when the message was
  pushed, only when ``T`` is missing).
- Heartbeat: Binance pings at the websocket level and the client library answers; nothing else.
- Control: ``{"result": null, "id": N}`` (a subscription answered); errors ``{"code": C,
  "msg": M}`` and ``{"error": {"code", "msg"}, "id": N}`` are logged as venue errors; other
  events (``"e"``) are of unknown type.
- Tickers: ``BTCUSDT`` → ``BTC-USDT@BINANCE`` (spot), ``BTC-USDT-SWAP@BINANCE`` (perpetual
  futures: a futures message; ``BTCUSD_PERP`` → ``BTC-USD-SWAP``), ``BTCUSDT_250926`` →
  ``BTC-USDT-250926@BINANCE``; the pair is split at the longest known quote asset.
"""

from __future__ import annotations

import json
from typing import Any

from engine.venues._base import Adapter, ms_ns, split_pair

#: Streams per SUBSCRIBE message.
STREAMS_PER_MESSAGE = 200


class Binance(Adapter):
    format = "binance"
    venue = "BINANCE"
    docs = "developers.binance.com: spot WebSocket Streams and USD-M futures bookTicker"
    needs_instruments = False

    def connected(self) -> list[str]:
        streams = [f"{s.lower()}@bookTicker" for s in self.instruments]
        step = STREAMS_PER_MESSAGE
        return [
            json.dumps({"method": "SUBSCRIBE", "params": streams[i : i + step],
                        "id": self._request_id()})
            for i in range(0, len(streams), step)
        ]  # fmt: skip

    def _message(self, doc: Any) -> None:
        if type(doc) is not dict:
            self._not_a_message(doc)
            return
        data = doc.get("data")
        if type(data) is dict and "stream" in doc:
            doc = data
        if "s" in doc and "b" in doc:
            kind = doc.get("e", "bookTicker")
            if kind != "bookTicker":
                self._unknown(f"e={kind}", doc)
                return
            futures = "T" in doc or "E" in doc
            if futures:
                t = doc.get("T")
                ns = ms_ns(t if t is not None else doc.get("E"), "T")
                symbol = "F:" + doc["s"] if type(doc["s"]) is str else doc["s"]
            else:
                ns, symbol = self._stamp(), doc["s"]
            self._quote(symbol, ns, doc.get("b"), doc.get("a"), doc.get("B"), doc.get("A"), doc)
        elif "result" in doc and "id" in doc:
            self._control("subscribed", "subscription answered", id=doc["id"],
                          result=doc["result"])  # fmt: skip
        elif "code" in doc and "msg" in doc:
            self._venue_error(code=doc["code"], text=doc["msg"], id=doc.get("id"))
        elif type(doc.get("error")) is dict:
            err = doc["error"]
            self._venue_error(code=err.get("code"), text=err.get("msg"), id=doc.get("id"))
        else:
            self._unknown(f"e={doc.get('e')}" if "e" in doc else "no type", doc)

    def instrument_name(self, symbol: str) -> str:
        if not symbol.startswith("F:"):
            return split_pair(symbol)
        symbol = symbol[2:]
        base, _, delivery = symbol.partition("_")
        if delivery in ("", "PERP"):
            return f"{split_pair(base)}-SWAP"
        return f"{split_pair(base)}-{delivery}"
