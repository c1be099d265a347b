"""The matching core: one book per symbol, commands in, events out (sans-I/O).

``Matcher.apply(command, time)`` applies one command and returns its events. It has no clock, no
sockets and no files: the caller gives each command its receive time, so the same commands with the
same times give the same events, byte for byte (the journal relies on it to rebuild the state).

Data structures and what each guarantees (n orders in a level, L levels on a side):

- ``Matcher.orders``: dict id -> :class:`Order`, every order ever accepted. Lookup O(1), so a
  cancel finds its order in O(1).
- ``Level``: the orders resting at one price, a ``deque`` in time priority (FIFO: appended at the
  back, matched from the front) with the price's ``total`` and its count of ``live`` orders kept
  up to date. A cancel is O(1): the order is marked CANCELED and subtracted from ``total`` and
  ``live``; it stays in the deque as a tombstone until it reaches the front, where matching drops
  it (each order is removed once: amortised O(1)). A level whose ``live`` count reaches 0 is
  removed at once.
- ``SideBook``: dict price -> Level (O(1) lookup), plus a binary heap of the prices (negated for
  bids, so the best price is the heap's root on both sides) and the set of prices in the heap.
  Best price: O(1) (the root; prices of removed levels are popped lazily when they surface,
  amortised O(log L) each, once). A new level: O(log L). The heap never holds a price twice and
  is rebuilt when stale prices outnumber live ones, so it stays O(L) in size. Levels in price
  order (depth, FOK checks, snapshots) are walked lazily from the heap: k levels cost
  O(k log k), not a sort of the side.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator

from exchange._model import (
    OPEN,
    ORDER_TYPES,
    SIDES,
    TIMES_IN_FORCE,
    Accepted,
    BookSide,
    Cancel,
    Command,
    Event,
    Fill,
    LevelChanged,
    Order,
    OrderStatus,
    Place,
    Rejected,
    Side,
    TopChanged,
    Trade,
)

_new = tuple.__new__
"""Builds an event straight from its fields: the named tuples' own ``__new__`` is a Python
function, and skipping it makes the matching path about a fifth faster."""


class Level:
    """The orders resting at one price, oldest first (see the module's notes)."""

    __slots__ = ("live", "orders", "price", "total")

    def __init__(self, price: int) -> None:
        self.price = price
        self.orders: deque[Order] = deque()
        self.total = 0
        self.live = 0


class SideBook:
    """One side of one symbol's book: levels by price, best price first."""

    __slots__ = ("_in_heap", "_sign", "heap", "levels", "name")

    def __init__(self, name: BookSide) -> None:
        self.name: BookSide = name
        self._sign = -1 if name == "bid" else 1
        self.levels: dict[int, Level] = {}
        self.heap: list[int] = []  # price * sign: the root is the best price
        self._in_heap: set[int] = set()

    def best(self) -> Level | None:
        """The best level, or None for an empty side. O(1) but for stale roots, popped once."""
        heap, levels = self.heap, self.levels
        while heap:
            level = levels.get(heap[0] * self._sign)
            if level is not None:
                return level
            self._in_heap.discard(heapq.heappop(heap))
        return None

    def level_for(self, price: int) -> Level:
        """The level at ``price``, created (O(log L)) if the side has none there."""
        level = self.levels.get(price)
        if level is None:
            level = self.levels[price] = Level(price)
            key = price * self._sign
            if key not in self._in_heap:
                self._in_heap.add(key)
                heapq.heappush(self.heap, key)
                if len(self.heap) > 2 * len(self.levels) + 64:
                    self._compact()
        return level

    def remove(self, level: Level) -> None:
        """Drop an emptied level; its price leaves the heap lazily."""
        del self.levels[level.price]

    def _compact(self) -> None:
        self.heap = [price * self._sign for price in self.levels]
        heapq.heapify(self.heap)
        self._in_heap = set(self.heap)

    def in_order(self) -> Iterator[Level]:
        """Levels best first, walked lazily: the first k cost O(k log k)."""
        heap, levels, sign = self.heap, self.levels, self._sign
        if not heap:
            return
        frontier = [(heap[0], 0)]
        size = len(heap)
        while frontier:
            key, index = heapq.heappop(frontier)
            level = levels.get(key * sign)
            if level is not None:
                yield level
            for child in (2 * index + 1, 2 * index + 2):
                if child < size:
                    heapq.heappush(frontier, (heap[child], child))

    def depth(self, n: int) -> list[tuple[int, int]]:
        """The best ``n`` levels as (price, total)."""
        out: list[tuple[int, int]] = []
        for level in self.in_order():
            if len(out) == n:
                break
            out.append((level.price, level.total))
        return out


class SymbolBook:
    """Both sides of one symbol."""

    __slots__ = ("asks", "bids", "symbol")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids = SideBook("bid")
        self.asks = SideBook("ask")

    def top(self) -> tuple[int, int, int, int]:
        """(bid price, bid total, ask price, ask total), 0s for an empty side."""
        bid, ask = self.bids.best(), self.asks.best()
        return (
            bid.price if bid else 0,
            bid.total if bid else 0,
            ask.price if ask else 0,
            ask.total if ask else 0,
        )


class Matcher:
    """Every symbol's book, the orders, the trades and the next ids; applies commands.

    >>> m = Matcher(["BTC-USDT"])
    >>> m.apply(Place("BTC-USDT", "SELL", "LIMIT", "GTC", 100, 5), 1)[0]
    Accepted(order_id=1, symbol='BTC-USDT', side='SELL', type='LIMIT', time_in_force='GTC', \
price=100, quantity=5, client_order_id=None, time=1)
    >>> [e for e in m.apply(Place("BTC-USDT", "BUY", "MARKET", "IOC", None, 2), 2)
    ...  if type(e).__name__ == "Trade"]
    [Trade(trade_id=1, symbol='BTC-USDT', price=100, quantity=2, maker_order_id=1, \
taker_order_id=2, aggressor_side='BUY', time=2)]
    """

    def __init__(self, symbols: list[str]) -> None:
        self.books: dict[str, SymbolBook] = {s: SymbolBook(s) for s in symbols}
        self.orders: dict[int, Order] = {}
        self.trades: list[Trade] = []
        self.next_order_id = 1
        self.next_trade_id = 1

    # -- commands -----------------------------------------------------------------------------

    def apply(self, command: Command, time: int) -> list[Event]:
        """Apply one command received at ``time``; its events, in the order they happened.

        A refused command gives one :class:`Rejected` and changes nothing.
        """
        if type(command) is Place:
            return self._place(command, time)
        if type(command) is Cancel:
            return self._cancel(command.order_id)
        return [Rejected("invalid", f"unknown command {type(command).__name__}")]

    def check(self, command: Place) -> Rejected | None:
        """Why ``command`` would be refused, or None; changes nothing."""
        if command.symbol not in self.books:
            return Rejected("unknown", f"unknown symbol {command.symbol!r}")
        if command.side not in SIDES:
            return Rejected("invalid", f"side must be BUY or SELL, not {command.side!r}")
        if command.type not in ORDER_TYPES:
            return Rejected("invalid", f"type must be LIMIT or MARKET, not {command.type!r}")
        if command.time_in_force not in TIMES_IN_FORCE:
            return Rejected(
                "invalid", f"time_in_force must be GTC, IOC or FOK, not {command.time_in_force!r}"
            )
        qty = command.quantity
        if type(qty) is not int or qty <= 0:
            return Rejected("invalid", "quantity must be a positive number of lots")
        price = command.price
        if command.type == "LIMIT":
            if type(price) is not int or price <= 0:
                return Rejected("invalid", "a LIMIT order needs a positive price")
        elif price is not None:
            return Rejected("invalid", "a MARKET order takes no price")
        return None

    def _place(self, cmd: Place, time: int) -> list[Event]:
        refused = self.check(cmd)
        if refused is not None:
            return [refused]
        symbol, side, type_, price, quantity = (
            cmd.symbol,
            cmd.side,
            cmd.type,
            cmd.price,
            cmd.quantity,
        )
        tif = cmd.time_in_force
        if type_ == "MARKET" and tif == "GTC":
            tif = "IOC"  # a MARKET order never rests
        order_id = self.next_order_id
        self.next_order_id = order_id + 1
        order = Order(
            order_id, symbol, side, type_, tif, price, quantity, cmd.client_order_id, time
        )
        self.orders[order_id] = order
        events: list[Event] = [
            _new(
                Accepted,
                (order_id, symbol, side, type_, tif, price, quantity, cmd.client_order_id, time),
            )
        ]
        book = self.books[symbol]
        if side == "BUY":
            own, opposite = book.bids, book.asks
        else:
            own, opposite = book.asks, book.bids
        # Does the order cross? Only then can it trade (the common passive order skips _match).
        best = opposite.best()
        crosses = best is not None and (
            price is None or (best.price <= price if side == "BUY" else best.price >= price)
        )
        changed: dict[int, Level] | None = None
        if crosses and (tif != "FOK" or self._can_fill(opposite, side, price, quantity)):
            changed = {}
            self._match(order, opposite, changed, events, time)
        remaining = order.remaining
        top_moved = changed is not None  # a trade changed the opposite touch
        rested: Level | None = None
        if remaining == 0:
            order.status = "FILLED"
        elif tif == "GTC":
            own_best = own.best()
            rested = own.level_for(price)  # type: ignore[arg-type]  # LIMIT: checked
            rested.orders.append(order)
            rested.total += remaining
            rested.live += 1
            if (
                own_best is None
                or own_best is rested
                or (
                    price > own_best.price if side == "BUY" else price < own_best.price  # type: ignore[operator]
                )
            ):
                top_moved = True
            if remaining != quantity:
                order.status = "PARTIALLY_FILLED"
        else:
            order.status = "EXPIRED"
        events.append(_new(OrderStatus, (order_id, order.status, remaining)))
        if changed:
            name = opposite.name
            for level in changed.values():
                events.append(_new(LevelChanged, (symbol, name, level.price, level.total)))
        if rested is not None:
            events.append(_new(LevelChanged, (symbol, own.name, rested.price, rested.total)))
        if top_moved:
            events.append(_new(TopChanged, (symbol, *book.top())))
        return events

    def _match(
        self,
        taker: Order,
        opposite: SideBook,
        changed: dict[int, Level],
        events: list[Event],
        time: int,
    ) -> None:
        """Trade ``taker`` against the best opposite orders while prices cross."""
        limit = taker.price
        buying = taker.side == "BUY"
        symbol = taker.symbol
        side: Side = taker.side
        taker_id = taker.id
        remaining = taker.remaining
        trades = self.trades
        taker_fills = taker.fills = []
        while remaining:
            level = opposite.best()
            if level is None:
                break
            price = level.price
            if limit is not None and (price > limit if buying else price < limit):
                break
            changed[price] = level
            queue = level.orders
            while remaining and queue:
                maker = queue[0]
                if maker.status not in OPEN:  # a cancelled order's tombstone
                    queue.popleft()
                    continue
                qty = maker.remaining if maker.remaining < remaining else remaining
                trade_id = self.next_trade_id
                self.next_trade_id = trade_id + 1
                trade = _new(Trade, (trade_id, symbol, price, qty, maker.id, taker_id, side, time))
                trades.append(trade)
                events.append(trade)
                remaining -= qty
                maker.remaining -= qty
                level.total -= qty
                if maker.fills is None:
                    maker.fills = []
                maker.fills.append(_new(Fill, (trade_id, price, qty, "MAKER")))
                taker_fills.append(_new(Fill, (trade_id, price, qty, "TAKER")))
                if maker.remaining == 0:
                    maker.status = "FILLED"
                    queue.popleft()
                    level.live -= 1
                else:
                    maker.status = "PARTIALLY_FILLED"
                events.append(_new(OrderStatus, (maker.id, maker.status, maker.remaining)))
            if level.live == 0:
                opposite.remove(level)
        taker.remaining = remaining

    @staticmethod
    def _can_fill(opposite: SideBook, side: Side, limit: int | None, quantity: int) -> bool:
        """Whether the crossing levels hold ``quantity`` (a FOK order's test)."""
        buying = side == "BUY"
        for level in opposite.in_order():
            if limit is not None and (level.price > limit if buying else level.price < limit):
                return False
            quantity -= level.total
            if quantity <= 0:
                return True
        return False

    def _cancel(self, order_id: int) -> list[Event]:
        order = self.orders.get(order_id)
        if order is None:
            return [Rejected("unknown", f"unknown order {order_id}", order_id)]
        if order.status not in OPEN:
            return [Rejected("not_open", f"order {order_id} is {order.status}", order_id)]
        book = self.books[order.symbol]
        own = book.bids if order.side == "BUY" else book.asks
        level = own.levels[order.price]  # type: ignore[index]  # resting: a LIMIT price
        top_moved = own.best() is level
        order.status = "CANCELED"
        level.total -= order.remaining
        level.live -= 1
        if level.live == 0:
            own.remove(level)
        events: list[Event] = [
            _new(OrderStatus, (order_id, "CANCELED", order.remaining)),
            _new(LevelChanged, (order.symbol, own.name, level.price, level.total)),
        ]
        if top_moved:
            events.append(_new(TopChanged, (book.symbol, *book.top())))
        return events
