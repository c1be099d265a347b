"""The two books the venue's core is measured against, with the same rules (contract section 6).

- :class:`SortedBook`: a book as the Python peers write it: ``sortedcontainers.SortedDict`` of
  price -> list of orders per side, one dataclass per order, ``list.pop(0)`` for FIFO and
  ``list.remove`` for a cancel. ``as_written=True`` is the peers' book as published: prices and
  quantities as ``Decimal`` (their exact arithmetic; the stream is converted before the clock
  starts), a dict per trade. ``as_written=False`` keeps the same structures but takes the core's
  own choices, integers (ticks and lots) and tuples, so that comparison is of the data
  structures alone.
- :class:`RedisBook`: the seeds' design: the book in Redis sorted sets (one per symbol side,
  score = price, negated for bids, member = the zero-padded order id so ties go oldest first) and
  every order a hash, one round trip per operation, no pipelining.

Both return the trades of each command as ``(trade_id, price, quantity, maker, taker)`` tuples,
which the benchmark asserts equal to the core's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sortedcontainers import SortedDict

from exchange import Cancel, Command, Place

TradeRow = tuple[int, int, int, int, int]


def as_decimals(stream: list[tuple[Command, int]], tick: Decimal, lot: Decimal) -> list[Any]:
    """The stream with prices and quantities as the peers keep them: Decimal."""
    out: list[Any] = []
    for command, at in stream:
        if type(command) is Place:
            price = None if command.price is None else command.price * tick
            command = command._replace(price=price, quantity=command.quantity * lot)  # type: ignore[arg-type]
        out.append((command, at))
    return out


def trade_rows(trades: list[Any], tick: Decimal, lot: Decimal) -> list[TradeRow]:
    """Trades of either kind of :class:`SortedBook` as the core's integer rows."""
    rows = []
    for t in trades:
        if isinstance(t, dict):
            t = (t["trade_id"], int(t["price"] / tick), int(t["quantity"] / lot), t["maker"],
                 t["taker"])  # fmt: skip
        rows.append(t)
    return rows


def _time_in_force(command: Place) -> str:
    """A MARKET order is IOC unless FOK (contract section 6)."""
    if command.type == "MARKET" and command.time_in_force == "GTC":
        return "IOC"
    return command.time_in_force


@dataclass
class PeerOrder:
    id: int
    side: str
    price: int | None
    quantity: int
    remaining: int
    tif: str
    status: str = "NEW"
    fills: list[Any] = field(default_factory=list)


class SortedBook:
    """One symbol, as a typical Python matching engine keeps it."""

    def __init__(self, *, as_written: bool = False) -> None:
        self.as_written = as_written
        self.bids: SortedDict = SortedDict()  # price -> list[PeerOrder]
        self.asks: SortedDict = SortedDict()
        self.orders: dict[int, PeerOrder] = {}
        self.next_id = 1
        self.next_trade = 1

    def apply(self, command: Command, time: int) -> list[Any]:
        if isinstance(command, Cancel):
            order = self.orders.get(command.order_id)
            if order is None or order.status not in ("NEW", "PARTIALLY_FILLED"):
                return []
            book = self.bids if order.side == "BUY" else self.asks
            level = book[order.price]
            level.remove(order)
            if not level:
                del book[order.price]
            order.status = "CANCELED"
            return []
        assert isinstance(command, Place)
        tif = _time_in_force(command)
        order = PeerOrder(
            self.next_id, command.side, command.price, command.quantity, command.quantity, tif
        )
        self.next_id += 1
        self.orders[order.id] = order
        buying = order.side == "BUY"
        opposite = self.asks if buying else self.bids

        def crosses(price: int) -> bool:
            return order.price is None or (price <= order.price if buying else price >= order.price)

        if tif == "FOK":
            prices = opposite.keys() if buying else reversed(opposite.keys())
            available = 0
            for price in prices:
                if not crosses(price) or available >= order.quantity:
                    break
                available += sum(o.remaining for o in opposite[price])
            if available < order.quantity:
                order.status = "EXPIRED"
                return []
        trades: list[Any] = []
        while order.remaining and opposite:
            price = opposite.peekitem(0 if buying else -1)[0]
            if not crosses(price):
                break
            level = opposite[price]
            while order.remaining and level:
                maker = level[0]
                qty = min(maker.remaining, order.remaining)
                trade: Any
                if self.as_written:
                    trade = {"trade_id": self.next_trade, "symbol": "BTC-USDT", "price": price,
                             "quantity": qty, "maker": maker.id, "taker": order.id,
                             "aggressor": order.side, "time": time}  # fmt: skip
                else:
                    trade = (self.next_trade, price, qty, maker.id, order.id)
                self.next_trade += 1
                trades.append(trade)
                maker.fills.append(trade)
                order.fills.append(trade)
                maker.remaining -= qty
                order.remaining -= qty
                if maker.remaining == 0:
                    maker.status = "FILLED"
                    level.pop(0)
                else:
                    maker.status = "PARTIALLY_FILLED"
            if not level:
                del opposite[price]
        if order.remaining == 0:
            order.status = "FILLED"
        elif tif == "GTC":
            order.status = "NEW" if order.remaining == order.quantity else "PARTIALLY_FILLED"
            own = self.bids if buying else self.asks
            own.setdefault(order.price, []).append(order)
        else:
            order.status = "EXPIRED"
        return trades

    def depth(self) -> dict[str, list[tuple[int, int]]]:
        return {
            "bid": [
                (p, sum(o.remaining for o in self.bids[p])) for p in reversed(self.bids.keys())
            ],
            "ask": [(p, sum(o.remaining for o in self.asks[p])) for p in self.asks],
        }


class RedisBook:
    """One symbol in Redis, one round trip per operation (the seeds' design)."""

    def __init__(self, client: Any, symbol: str = "BTC-USDT") -> None:
        self.r = client
        self.key = {"BUY": f"book:{symbol}:bid", "SELL": f"book:{symbol}:ask"}
        self.r.flushdb()

    @staticmethod
    def _member(order_id: int) -> str:
        return f"{order_id:012d}"

    def apply(self, command: Command, time: int) -> list[TradeRow]:
        r = self.r
        if isinstance(command, Cancel):
            order = r.hgetall(f"order:{command.order_id}")
            if not order or order[b"status"] not in (b"NEW", b"PARTIALLY_FILLED"):
                return []
            r.zrem(self.key[order[b"side"].decode()], self._member(command.order_id))
            r.hset(f"order:{command.order_id}", "status", "CANCELED")
            return []
        assert isinstance(command, Place)
        tif = _time_in_force(command)
        order_id = int(r.incr("next_order_id"))
        remaining = command.quantity
        r.hset(
            f"order:{order_id}",
            mapping={"side": command.side, "price": command.price or 0, "remaining": remaining,
                     "status": "NEW", "time": time},
        )  # fmt: skip
        buying = command.side == "BUY"
        opposite = self.key["SELL" if buying else "BUY"]
        limit = command.price
        if tif == "FOK":
            bound = "+inf" if limit is None else (limit if buying else -limit)
            available = 0
            for member in r.zrangebyscore(opposite, "-inf", bound):
                available += int(r.hget(f"order:{int(member)}", "remaining"))
                if available >= remaining:
                    break
            if available < remaining:
                r.hset(f"order:{order_id}", "status", "EXPIRED")
                return []
        trades: list[TradeRow] = []
        while remaining:
            best = r.zrange(opposite, 0, 0, withscores=True)
            if not best:
                break
            member, score = best[0]
            price = int(score) if buying else -int(score)
            if limit is not None and (price > limit if buying else price < limit):
                break
            maker = int(member)
            maker_remaining = int(r.hget(f"order:{maker}", "remaining"))
            qty = min(maker_remaining, remaining)
            trade_id = int(r.incr("next_trade_id"))
            r.hset(f"trade:{trade_id}", mapping={"price": price, "quantity": qty, "maker": maker,
                                                 "taker": order_id, "time": time})  # fmt: skip
            trades.append((trade_id, price, qty, maker, order_id))
            remaining -= qty
            left = int(r.hincrby(f"order:{maker}", "remaining", -qty))
            if left == 0:
                r.zrem(opposite, member)
                r.hset(f"order:{maker}", "status", "FILLED")
            else:
                r.hset(f"order:{maker}", "status", "PARTIALLY_FILLED")
        r.hset(f"order:{order_id}", "remaining", remaining)
        if remaining == 0:
            r.hset(f"order:{order_id}", "status", "FILLED")
        elif tif == "GTC":
            status = "NEW" if remaining == command.quantity else "PARTIALLY_FILLED"
            r.hset(f"order:{order_id}", "status", status)
            assert command.price is not None  # a GTC remainder is a LIMIT order's
            score = -command.price if buying else command.price  # best first, ascending
            r.zadd(self.key[command.side], {self._member(order_id): score})
        else:
            r.hset(f"order:{order_id}", "status", "EXPIRED")
        return trades
