"""The venues' protocols from the server's side: quotes encoded as each venue sends them, and
its answers to what a client sends (subscriptions, heartbeats). ``python -m engine.feed --as
FORMAT`` plays a CSV through one of these, so every ``--live-format`` can be tried end to end
without a network. Sans-I/O, like the adapters it mirrors.

What each sends, one message a quote (the instrument is the ticker's part before ``@``):

- ``binance``: a USD-M futures ``bookTicker`` (``T`` and ``E`` in ms) for ``SOLUSDT`` (the
  instrument without ``-SWAP`` and dashes); it answers ``SUBSCRIBE`` with ``{"result": null}``.
- ``okx``, ``okx-tickers``: ``bbo-tbt`` or ``tickers`` data for the instrument id, ``ts`` in ms;
  ``ping`` → ``pong``, a subscription → one ``event: subscribe`` a channel.
- ``bybit``: an ``orderbook.1`` snapshot a quote (``cts`` in ms); ``ping`` and ``subscribe``
  answered as Bybit does.
- ``coinbase``: a ``ticker`` update (RFC 3339 ``timestamp`` with ns, ``sequence_num`` counting
  the feed's messages); a subscription → ``subscriptions``.
- ``kraken``: a v2 ``ticker`` update (JSON numbers, RFC 3339 ``timestamp``) for ``BASE/QUOTE``;
  a subscription → one ``success`` answer a symbol, ``ping`` → ``pong``.

Times in milliseconds lose what the CSV had below the millisecond, as on the real venue.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

#: One quote's fields as texts: instrument, ns, bid, ask, bid amount, ask amount (``""``:
#: none), and the floats for venues that send JSON numbers.
Quote = tuple[str, int, str, str, str, str]


def _texts(values: np.ndarray) -> list[str]:
    return ["" if math.isnan(v) else repr(v) for v in values.tolist()]


def quotes_of(table: pa.Table) -> list[Quote]:
    """The rows of a ``TABLE_SCHEMA`` table as :data:`Quote` texts."""
    inst = [t.partition("@")[0] for t in table.column("ticker").to_pylist()]
    stamps = table.column("timestamp").to_numpy().tolist()
    cols = [_texts(table.column(c).to_numpy())
            for c in ("bid_price", "ask_price", "bid_amount", "ask_amount")]  # fmt: skip
    return list(zip(inst, stamps, *cols, strict=True))


def _rfc3339(ns: int) -> str:
    return str(np.datetime64(ns, "ns")) + "Z"


def _num(text: str) -> float | None:
    return float(text) if text else None


class Emulation:
    """A venue's server side: :meth:`encode` quotes, :meth:`answer` a client's message."""

    def __init__(self, format: str) -> None:
        if format not in _ENCODERS:
            raise ValueError(f"no emulation of {format!r}")
        self.format = format
        self._encode: Callable[[Emulation, Quote], Any] = _ENCODERS[format]
        self.sent = 0

    def encode(self, table: pa.Table) -> list[tuple[int, bytes]]:
        """``(timestamp ns, frame)`` a quote, in order."""
        frames = []
        for q in quotes_of(table):
            self.sent += 1
            frames.append((q[1], json.dumps(self._encode(self, q)).encode()))
        return frames

    def answer(self, text: str | bytes) -> list[str]:
        """What the venue answers to a client's message (nothing for what it ignores)."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if text == "ping":
            return ["pong"] if self.format.startswith("okx") else []
        try:
            msg = json.loads(text)
        except ValueError:
            return []
        if type(msg) is not dict:
            return []
        return [json.dumps(a) for a in _ANSWERS[self.format](msg)]


def _binance(e: Emulation, q: Quote) -> Any:
    inst, ns, bid, ask, bq, aq = q
    ms = ns // 1_000_000
    sym = inst.removesuffix("-SWAP").replace("-", "")
    return {"e": "bookTicker", "u": e.sent, "E": ms, "T": ms, "s": sym, "b": bid, "B": bq,
            "a": ask, "A": aq}  # fmt: skip


def _okx(e: Emulation, q: Quote) -> Any:
    inst, ns, bid, ask, bq, aq = q
    data = {"asks": [[ask, aq or "0", "0", "1"]], "bids": [[bid, bq or "0", "0", "1"]],
            "ts": str(ns // 1_000_000), "seqId": e.sent}  # fmt: skip
    return {"arg": {"channel": "bbo-tbt", "instId": inst}, "data": [data]}


def _okx_tickers(e: Emulation, q: Quote) -> Any:
    inst, ns, bid, ask, bq, aq = q
    data = {"instType": "SWAP" if inst.endswith("-SWAP") else "SPOT", "instId": inst,
            "bidPx": bid, "bidSz": bq, "askPx": ask, "askSz": aq,
            "ts": str(ns // 1_000_000)}  # fmt: skip
    return {"arg": {"channel": "tickers", "instId": inst}, "data": [data]}


def _bybit(e: Emulation, q: Quote) -> Any:
    inst, ns, bid, ask, bq, aq = q
    ms = ns // 1_000_000
    sym = inst.removesuffix("-SWAP").replace("-", "")
    data = {"s": sym, "b": [[bid, bq or "0"]], "a": [[ask, aq or "0"]], "u": e.sent,
            "seq": e.sent}  # fmt: skip
    return {"topic": f"orderbook.1.{sym}", "type": "snapshot", "ts": ms, "data": data, "cts": ms}


def _coinbase(e: Emulation, q: Quote) -> Any:
    inst, ns, bid, ask, bq, aq = q
    ticker = {"type": "ticker", "product_id": inst, "best_bid": bid, "best_bid_quantity": bq,
              "best_ask": ask, "best_ask_quantity": aq}  # fmt: skip
    events = [{"type": "update", "tickers": [ticker]}]
    return {"channel": "ticker", "client_id": "", "timestamp": _rfc3339(ns),
            "sequence_num": e.sent, "events": events}  # fmt: skip


def _kraken(e: Emulation, q: Quote) -> Any:
    inst, ns, bid, ask, bq, aq = q
    symbol = inst.replace("-", "/", 1)
    item = {"symbol": symbol, "bid": _num(bid), "bid_qty": _num(bq), "ask": _num(ask),
            "ask_qty": _num(aq), "timestamp": _rfc3339(ns)}  # fmt: skip
    return {"channel": "ticker", "type": "update", "data": [item]}


_ENCODERS: dict[str, Callable[[Emulation, Quote], Any]] = {
    "binance": _binance, "okx": _okx, "okx-tickers": _okx_tickers, "bybit": _bybit,
    "coinbase": _coinbase, "kraken": _kraken,
}  # fmt: skip


def _answer_binance(msg: dict[str, Any]) -> list[Any]:
    return [{"result": None, "id": msg.get("id")}] if "method" in msg else []


def _answer_okx(msg: dict[str, Any]) -> list[Any]:
    if msg.get("op") != "subscribe" or type(msg.get("args")) is not list:
        return []
    return [{"event": "subscribe", "arg": arg, "connId": "feed"} for arg in msg["args"]]


def _answer_bybit(msg: dict[str, Any]) -> list[Any]:
    op = msg.get("op")
    if op == "ping":
        return [{"success": True, "ret_msg": "pong", "conn_id": "feed", "op": "ping",
                 "req_id": msg.get("req_id")}]  # fmt: skip
    if op == "subscribe":
        return [{"success": True, "ret_msg": "", "conn_id": "feed", "op": "subscribe",
                 "req_id": msg.get("req_id")}]  # fmt: skip
    return []


def _answer_coinbase(msg: dict[str, Any]) -> list[Any]:
    if msg.get("type") != "subscribe":
        return []
    channel = msg.get("channel")
    ids = msg.get("product_ids") or [channel]
    return [{"channel": "subscriptions", "client_id": "",
             "events": [{"subscriptions": {channel: ids}}]}]  # fmt: skip


def _answer_kraken(msg: dict[str, Any]) -> list[Any]:
    method, req = msg.get("method"), msg.get("req_id")
    if method == "ping":
        return [{"method": "pong", "req_id": req}]
    if method != "subscribe":
        return []
    params = msg.get("params") or {}
    return [{"method": "subscribe", "success": True, "req_id": req,
             "result": {"channel": params.get("channel"), "symbol": s}}
            for s in params.get("symbol") or []]  # fmt: skip


_ANSWERS: dict[str, Callable[[dict[str, Any]], list[Any]]] = {
    "binance": _answer_binance, "okx": _answer_okx, "okx-tickers": _answer_okx,
    "bybit": _answer_bybit, "coinbase": _answer_coinbase, "kraken": _answer_kraken,
}  # fmt: skip

#: The formats ``engine.feed --as`` can speak (every venue format).
EMULATED = tuple(_ENCODERS)
