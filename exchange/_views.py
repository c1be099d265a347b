"""What the interfaces send: orders, trades, books and quotes as JSON text with exact numbers.

Prices and quantities leave as JSON numbers written as the exact shortest decimal (``100``,
``100.5``, ``0.0001``; never an exponent, never float noise): :class:`Num` marks such a text and
:func:`dumps` writes it as it is. Times are the exchange's: UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``
in the REST API, epoch seconds on the Wood public port, ``YYYY-MM-DD HH:MM:SS.ffffff`` in quotes.

>>> dumps({"price": Num("100.5"), "ids": [1, None], "side": "BUY"})
'{"price":100.5,"ids":[1,null],"side":"BUY"}'
>>> iso_time(1_767_225_600_123_456_789), quote_time(1_767_225_600_123_456_789)
('2026-01-01T00:00:00.123456Z', '2026-01-01 00:00:00.123456')
>>> epoch_seconds(1_767_225_600_123_456_789)
Num('1767225600.123456789')
"""

from __future__ import annotations

import datetime as dt
from json.encoder import encode_basestring_ascii
from typing import Any

from exchange._model import Order, TopChanged, Trade
from exchange._symbols import Symbol, scaled_text


class Num(str):
    """A number's exact JSON text."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Num({str.__repr__(self)})"


def dumps(value: Any) -> str:
    """Compact JSON of dicts, lists, str, int, bool, None and :class:`Num` (written raw)."""
    parts: list[str] = []
    _write(value, parts.append)
    return "".join(parts)


def _write(value: Any, out: Any) -> None:
    if type(value) is Num:
        out(value)
    elif isinstance(value, str):
        out(encode_basestring_ascii(value))
    elif value is None:
        out("null")
    elif value is True:
        out("true")
    elif value is False:
        out("false")
    elif type(value) is int:
        out(str(value))
    elif isinstance(value, dict):
        out("{")
        first = True
        for key, item in value.items():
            if not first:
                out(",")
            first = False
            out(encode_basestring_ascii(key))
            out(":")
            _write(item, out)
        out("}")
    elif isinstance(value, list | tuple):
        out("[")
        for i, item in enumerate(value):
            if i:
                out(",")
            _write(item, out)
        out("]")
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _utc(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


def iso_time(ns: int) -> str:
    return _utc(ns).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def quote_time(ns: int) -> str:
    return _utc(ns).strftime("%Y-%m-%d %H:%M:%S.%f")


def epoch_seconds(ns: int) -> Num:
    return Num(scaled_text(ns, 1, -9))


class Views:
    """Renders the venue's objects for one set of symbols."""

    def __init__(self, symbols: dict[str, Symbol], venue_name: str) -> None:
        self.symbols = symbols
        self.venue_name = venue_name

    def price(self, symbol: str, ticks: int | None) -> Num | None:
        return None if ticks is None else Num(self.symbols[symbol].price_text(ticks))

    def quantity(self, symbol: str, lots: int) -> Num:
        return Num(self.symbols[symbol].quantity_text(lots))

    def order(self, o: Order) -> dict[str, Any]:
        s = o.symbol
        return {
            "id": o.id,
            "client_order_id": o.client_order_id,
            "symbol": s,
            "side": o.side,
            "type": o.type,
            "time_in_force": o.time_in_force,
            "price": self.price(s, o.price),
            "quantity": self.quantity(s, o.quantity),
            "remaining": self.quantity(s, o.remaining),
            "status": o.status,
            "created_at": iso_time(o.created_at),
            "fills": [
                {
                    "trade_id": f.trade_id,
                    "price": self.price(s, f.price),
                    "quantity": self.quantity(s, f.quantity),
                    "liquidity": f.liquidity,
                }
                for f in o.fills or ()
            ],
        }

    def trade(self, t: Trade) -> dict[str, Any]:
        return {
            "trade_id": t.trade_id,
            "symbol": t.symbol,
            "price": self.price(t.symbol, t.price),
            "quantity": self.quantity(t.symbol, t.quantity),
            "maker_order_id": t.maker_order_id,
            "taker_order_id": t.taker_order_id,
            "aggressor_side": t.aggressor_side,
            "time": iso_time(t.time),
        }

    def levels(self, symbol: str, levels: list[tuple[int, int]]) -> list[list[Num | None]]:
        return [[self.price(symbol, p), self.quantity(symbol, q)] for p, q in levels]

    def quote(self, top: TopChanged, time: int) -> dict[str, Any]:
        """The top of book in the live layout of contract section 1 (0 for an empty side)."""
        s = top.symbol
        return {
            "timestamp": quote_time(time),
            "ticker": f"{s}@{self.venue_name}",
            "bid_price": self.price(s, top.bid_price) if top.bid_price else Num("0"),
            "ask_price": self.price(s, top.ask_price) if top.ask_price else Num("0"),
            "bid_amount": self.quantity(s, top.bid_quantity),
            "ask_amount": self.quantity(s, top.ask_quantity),
        }
