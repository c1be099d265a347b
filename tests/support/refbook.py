"""A reference venue, deliberately plain: lists, dicts and Decimal, no cleverness, no speed.

It reads the same order requests as the venue (JSON values: decimal strings, ints, floats) and
follows contract section 6 as literally as it can be written: to match, it lists the crossing
resting orders and sorts them by price, then by id. The tests hold :class:`exchange.Matcher` to
it step by step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

OPEN = ("NEW", "PARTIALLY_FILLED")


@dataclass
class RefOrder:
    id: int
    symbol: str
    side: str
    type: str
    tif: str
    price: Decimal | None
    quantity: Decimal
    remaining: Decimal
    status: str = "NEW"
    fills: list[tuple[int, Decimal, Decimal, str]] = field(default_factory=list)


@dataclass
class RefTrade:
    id: int
    symbol: str
    price: Decimal
    quantity: Decimal
    maker: int
    taker: int
    aggressor: str


class RefVenue:
    def __init__(self, symbols: dict[str, tuple[Decimal, Decimal]]) -> None:
        self.symbols = symbols  # name -> (tick, lot)
        self.orders: list[RefOrder] = []
        self.resting: list[RefOrder] = []  # in the order they came to rest
        self.trades: list[RefTrade] = []

    @staticmethod
    def _number(value: Any) -> Decimal | None:
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            return None
        try:
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except InvalidOperation:
            return None
        return number if number.is_finite() else None

    def place(self, request: dict[str, Any]) -> str | RefOrder:
        """The accepted order, or the word for why not: "invalid" or "unknown"."""
        known = {"symbol", "side", "type", "time_in_force", "price", "quantity", "client_order_id"}
        if set(request) - known:  # a misspelt field is refused, never ignored
            return "invalid"
        symbol = request.get("symbol")
        if not isinstance(symbol, str):
            return "invalid"
        if symbol not in self.symbols:
            return "unknown"
        tick, lot = self.symbols[symbol]
        side = request.get("side")
        type_ = request.get("type", "LIMIT")
        tif = request.get("time_in_force", "GTC")
        if side not in ("BUY", "SELL") or type_ not in ("LIMIT", "MARKET"):
            return "invalid"
        if tif not in ("GTC", "IOC", "FOK"):
            return "invalid"
        quantity = self._number(request.get("quantity"))
        if quantity is None or quantity <= 0 or quantity % lot != 0:
            return "invalid"
        price = None
        if type_ == "LIMIT":
            price = self._number(request.get("price"))
            if price is None or price <= 0 or price % tick != 0:
                return "invalid"
        elif request.get("price") is not None:
            return "invalid"
        if type_ == "MARKET" and tif == "GTC":
            tif = "IOC"
        order = RefOrder(len(self.orders) + 1, symbol, side, type_, tif, price, quantity, quantity)
        self.orders.append(order)
        crossing = [
            o
            for o in self.resting
            if o.symbol == symbol
            and o.side != side
            and (price is None or (o.price <= price if side == "BUY" else o.price >= price))  # type: ignore[operator]
        ]
        crossing.sort(key=lambda o: (o.price if side == "BUY" else -o.price, o.id))  # type: ignore[operator]
        if tif == "FOK" and sum(o.remaining for o in crossing) < quantity:
            order.status = "EXPIRED"
            return order
        for maker in crossing:
            if order.remaining == 0:
                break
            qty = min(maker.remaining, order.remaining)
            assert maker.price is not None  # resting orders are LIMIT orders
            n = len(self.trades) + 1
            trade = RefTrade(n, symbol, maker.price, qty, maker.id, order.id, side)
            self.trades.append(trade)
            maker.remaining -= qty
            order.remaining -= qty
            maker.fills.append((trade.id, trade.price, qty, "MAKER"))
            order.fills.append((trade.id, trade.price, qty, "TAKER"))
            maker.status = "FILLED" if maker.remaining == 0 else "PARTIALLY_FILLED"
            if maker.remaining == 0:
                self.resting.remove(maker)
        if order.remaining == 0:
            order.status = "FILLED"
        elif tif == "GTC":
            order.status = "NEW" if order.remaining == quantity else "PARTIALLY_FILLED"
            self.resting.append(order)
        else:
            order.status = "EXPIRED"
        return order

    def cancel(self, order_id: int) -> str | RefOrder:
        """The cancelled order, or "unknown" / "not_open"."""
        if not 1 <= order_id <= len(self.orders):
            return "unknown"
        order = self.orders[order_id - 1]
        if order.status not in OPEN:
            return "not_open"
        order.status = "CANCELED"
        self.resting.remove(order)
        return order

    def book(self, symbol: str) -> dict[str, list[tuple[Decimal, Decimal]]]:
        """Each side's levels, best first, as (price, total)."""
        out: dict[str, list[tuple[Decimal, Decimal]]] = {}
        for side, name, best_first in (("BUY", "bid", True), ("SELL", "ask", False)):
            totals: dict[Decimal, Decimal] = {}
            for o in self.resting:
                if o.symbol == symbol and o.side == side:
                    assert o.price is not None
                    totals[o.price] = totals.get(o.price, Decimal(0)) + o.remaining
            out[name] = sorted(totals.items(), reverse=best_first)
        return out
