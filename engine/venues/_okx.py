"""OKX public channels ``bbo-tbt`` (the default) and ``tickers``.

Follows the OKX API v5 documentation, "WebSocket Public Channel" ("Order book channel" for
``bbo-tbt``, "Tickers channel"), and "Overview / WebSocket / Connect" for the heartbeat
(www.okx.com/docs-v5/en/). Those pages were not reachable from the machine this was written
on; the shapes were checked on 2026-11-28 against public code that quotes them (see the
fixtures, ``tests/engine/venues/okx*.json``).

- Sends ``{"op": "subscribe", "args": [{"channel": "bbo-tbt", "instId": "BTC-USDT"}, ...]}``
  on connect, and the text ``ping`` every 20 s (OKX drops a connection silent for 30 s); the
  server's ``pong`` is a heartbeat.
- Reads ``{"arg": {"channel", "instId"}, "data": [{"asks": [[px, sz, "0", n]], "bids":
  [...], "ts": ms, "seqId"}]}`` (``bbo-tbt``: the timestamp is ``ts``) and ``{"arg": ...,
  "data": [{"instId", "bidPx", "bidSz", "askPx", "askSz", "ts", ...}]}`` (``tickers``); an empty
  ``bidPx`` or ``bids`` list is an empty side.
- Control: ``{"event": "subscribe" | "unsubscribe" | "channel-conn-count" | "notice", ...}``
  (a notice, such as 64008 "the connection will soon be closed for a service upgrade", is
  logged); ``{"event": "error", "code", "msg"}`` is a venue error.
- Tickers: the instrument id as OKX writes it, at ``OKEX`` (as in the project's real samples):
  ``BTC-USDT-SWAP@OKEX``.
"""

from __future__ import annotations

import json
from typing import Any

from engine.venues._base import Adapter, ms_ns, top_level


class Okx(Adapter):
    format = "okx"
    venue = "OKEX"
    docs = "www.okx.com/docs-v5/en/: WebSocket public channels bbo-tbt and tickers"
    heartbeat = 20.0
    channel = "bbo-tbt"

    def connected(self) -> list[str]:
        args = [{"channel": self.channel, "instId": s} for s in self.instruments]
        return [json.dumps({"op": "subscribe", "args": args})] if args else []

    def heartbeat_message(self) -> str:
        return "ping"

    def _plain(self, text: str) -> bool:
        if text == "pong":
            self._heartbeat()
            return True
        return False

    def _message(self, doc: Any) -> None:
        if type(doc) is not dict:
            self._not_a_message(doc)
            return
        arg, data = doc.get("arg"), doc.get("data")
        if type(data) is list and type(arg) is dict:
            channel = arg.get("channel")
            if channel == "bbo-tbt":
                for item in self._objects(data, "data", doc):
                    self._bbo(arg.get("instId"), item)
            elif channel == "tickers":
                for item in self._objects(data, "data", doc):
                    self._ticker(item)
            else:
                self._unknown(f"channel={channel}", doc)
            return
        event = doc.get("event")
        if event == "error":
            self._venue_error(code=doc.get("code"), text=doc.get("msg"))
        elif event in ("subscribe", "unsubscribe"):
            self._control(event, f"{event}d", arg=doc.get("arg"))
        elif event == "notice":
            self._control(event, "venue notice", code=doc.get("code"), text=doc.get("msg"))
        elif event == "channel-conn-count":
            self._control(event)
        else:
            self._unknown(f"event={event}" if event is not None else "no type", doc)

    def _bbo(self, inst: Any, item: dict[str, Any]) -> None:
        bid, bid_size = top_level(item.get("bids"))
        ask, ask_size = top_level(item.get("asks"))
        self._quote(inst, ms_ns(item.get("ts"), "ts"), bid, ask, bid_size, ask_size, item)

    def _ticker(self, item: dict[str, Any]) -> None:
        self._quote(item.get("instId"), ms_ns(item.get("ts"), "ts"), item.get("bidPx"),
                    item.get("askPx"), item.get("bidSz"), item.get("askSz"), item)  # fmt: skip


class OkxTickers(Okx):
    format = "okx-tickers"
    channel = "tickers"
