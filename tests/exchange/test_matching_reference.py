"""The matching core against a plain reference venue, step by step, on random command streams.

A hypothesis state machine sends every kind of request (LIMIT GTC/IOC/FOK, MARKET, cancels of
open, closed and unknown ids, malformed requests) to :class:`exchange.Matcher` (through
:func:`exchange.parse_order`, as every interface does) and to :class:`RefVenue`. After every step
the trades, every order's status, remaining and fills, and both books must be the same, the
events must describe exactly what changed, and the invariants hold: no crossed book, quantity
conserved, FIFO within a level, trades at the maker's price, FOK all or nothing with the book
unchanged, ids gapless.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from exchange import (
    Accepted,
    Cancel,
    LevelChanged,
    Matcher,
    OrderStatus,
    Place,
    Rejected,
    TopChanged,
    Trade,
    parse_order,
    parse_symbols,
)
from tests.support.refbook import RefOrder, RefVenue

SYMBOLS = parse_symbols("BTC-USDT:0.01:0.0001,XYZ:5:10")
MIDS = {"BTC-USDT": Decimal("100.00"), "XYZ": Decimal("1000")}


@st.composite
def number_text(draw: st.DrawFn, value: Decimal) -> Any:
    """The same number as a JSON value would carry it: string, int or float."""
    form = draw(st.sampled_from(["str", "str", "num"]))
    if form == "str":
        return str(value)
    if value == value.to_integral_value():
        return int(value)
    return float(value)  # its repr is the decimal written: exact on the way in


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    symbol = draw(st.sampled_from(sorted(SYMBOLS)))
    spec = SYMBOLS[symbol]
    request: dict[str, Any] = {"symbol": symbol, "side": draw(st.sampled_from(["BUY", "SELL"]))}
    type_ = draw(st.sampled_from(["LIMIT", "LIMIT", "LIMIT", "MARKET", None]))
    if type_:
        request["type"] = type_
    tif = draw(st.sampled_from(["GTC", "GTC", "IOC", "FOK", None]))
    if tif:
        request["time_in_force"] = tif
    lots = draw(st.integers(1, 12))
    request["quantity"] = draw(number_text(spec.lot * lots))
    if type_ != "MARKET":
        ticks = draw(st.integers(-6, 6))
        request["price"] = draw(number_text(MIDS[symbol] + spec.tick * ticks))
    flaw = draw(st.sampled_from([None] * 12 + ["tick", "lot", "zero", "type", "symbol", "field"]))
    if flaw == "tick" and "price" in request:
        request["price"] = str(Decimal(str(request["price"])) + spec.tick / 2)
    elif flaw == "lot":
        request["quantity"] = str(spec.lot * lots + spec.lot / 4)
    elif flaw == "zero":
        request["quantity"] = 0
    elif flaw == "type":
        request["quantity"] = [1]
    elif flaw == "symbol":
        request["symbol"] = "NOPE"
    elif flaw == "field":
        request["colour"] = "red"
    return request


def _dec_book(matcher: Matcher, symbol: str) -> dict[str, list[tuple[Decimal, Decimal]]]:
    spec, book = SYMBOLS[symbol], matcher.books[symbol]
    return {
        side.name: [(spec.tick * p, spec.lot * q) for p, q in side.depth(10**9)]
        for side in (book.bids, book.asks)
    }


class VenueMachine(RuleBasedStateMachine):
    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.matcher = Matcher(list(SYMBOLS))
        self.ref = RefVenue({name: (s.tick, s.lot) for name, s in SYMBOLS.items()})
        self.time = 1_700_000_000_000_000_000

    def _events(self, command: Place | Any) -> list[Any]:
        self.time += 1000
        return self.matcher.apply(command, self.time)

    @rule(target=ids, request=requests())
    def place(self, request: dict[str, Any]) -> int:
        books_before = {s: _dec_book(self.matcher, s) for s in SYMBOLS}
        trades_before = len(self.ref.trades)
        expected = self.ref.place(dict(request))
        parsed = parse_order(request, SYMBOLS)
        if isinstance(expected, str):
            assert isinstance(parsed, Rejected), (request, parsed)
            assert parsed.code == expected, (request, parsed)
            assert self._books() == books_before
            return 0
        assert isinstance(parsed, Place), (request, parsed)
        events = self._events(parsed)
        assert type(events[0]) is Accepted and events[0].order_id == expected.id
        trades = [e for e in events if type(e) is Trade]
        assert [self._trade(t) for t in trades] == [
            (t.id, t.price, t.quantity, t.maker, t.taker, t.aggressor)
            for t in self.ref.trades[trades_before:]
        ]
        final = [e for e in events if type(e) is OrderStatus and e.order_id == expected.id]
        assert len(final) == 1 and final[0].status == expected.status
        if expected.tif == "FOK" and expected.status == "EXPIRED":
            assert not trades and self._books() == books_before, "FOK: all or nothing"
        self._check_levels_and_top(events, parsed.symbol, books_before[parsed.symbol])
        return expected.id

    @rule(order_id=ids)
    def cancel_known(self, order_id: int) -> None:
        self._cancel(order_id)

    @rule(order_id=st.integers(-3, 10**6))
    def cancel_any(self, order_id: int) -> None:
        self._cancel(order_id)

    def _cancel(self, order_id: int) -> None:
        books_before = {s: _dec_book(self.matcher, s) for s in SYMBOLS}
        expected = self.ref.cancel(order_id)
        events = self._events(Cancel(order_id))
        if isinstance(expected, str):
            assert [type(e) for e in events] == [Rejected] and events[0].code == expected
            assert self._books() == books_before
            return
        remaining = self._lots(expected, expected.remaining)
        assert events[0] == OrderStatus(order_id, "CANCELED", remaining)
        self._check_levels_and_top(events, expected.symbol, books_before[expected.symbol])

    # -- comparisons -------------------------------------------------------------------------

    def _books(self) -> dict[str, dict[str, list[tuple[Decimal, Decimal]]]]:
        return {s: _dec_book(self.matcher, s) for s in SYMBOLS}

    @staticmethod
    def _lots(order: RefOrder, quantity: Decimal) -> int:
        return int(quantity / SYMBOLS[order.symbol].lot)

    @staticmethod
    def _trade(t: Trade) -> tuple[Any, ...]:
        spec = SYMBOLS[t.symbol]
        return (
            t.trade_id, spec.tick * t.price, spec.lot * t.quantity, t.maker_order_id,
            t.taker_order_id, t.aggressor_side,
        )  # fmt: skip

    def _check_levels_and_top(
        self, events: list[Any], symbol: str, before: dict[str, list[tuple[Decimal, Decimal]]]
    ) -> None:
        """LevelChanged events name exactly the changed levels with their new totals; a
        TopChanged comes exactly when the best bid or ask changed, with the new top."""
        spec = SYMBOLS[symbol]
        after = self.ref.book(symbol)
        totals_before = {(side, p): q for side in before for p, q in before[side]}
        totals_after = {(side, p): q for side in after for p, q in after[side]}
        got = {
            (e.side, spec.tick * e.price): spec.lot * e.quantity
            for e in events
            if type(e) is LevelChanged
        }
        for key, total in got.items():
            assert total == totals_after.get(key, 0), f"level {key}: {total}"
        changed = {
            key
            for key in totals_before.keys() | totals_after.keys()
            if totals_before.get(key) != totals_after.get(key)
        }
        assert changed <= got.keys(), f"levels changed without an event: {changed - got.keys()}"
        tops = [e for e in events if type(e) is TopChanged]

        def top(book: dict[str, list[tuple[Decimal, Decimal]]]) -> tuple[Decimal, ...]:
            bid = book["bid"][0] if book["bid"] else (Decimal(0), Decimal(0))
            ask = book["ask"][0] if book["ask"] else (Decimal(0), Decimal(0))
            return (*bid, *ask)

        if top(after) != top(before):
            assert len(tops) == 1
            t = tops[0]
            assert (
                spec.tick * t.bid_price, spec.lot * t.bid_quantity,
                spec.tick * t.ask_price, spec.lot * t.ask_quantity,
            ) == top(after)  # fmt: skip
        else:
            assert not tops, f"no change of the top, yet {tops}"

    @invariant()
    def same_state_as_reference(self) -> None:
        for symbol in SYMBOLS:
            assert _dec_book(self.matcher, symbol) == self.ref.book(symbol)
        assert len(self.matcher.orders) == len(self.ref.orders)
        for ref in self.ref.orders:
            order = self.matcher.orders[ref.id]
            spec = SYMBOLS[ref.symbol]
            assert order.status == ref.status, (ref, order)
            assert spec.lot * order.remaining == ref.remaining
            fills = [(f.trade_id, spec.tick * f.price, spec.lot * f.quantity, f.liquidity)
                     for f in order.fills or []]  # fmt: skip
            assert fills == ref.fills

    @invariant()
    def invariants_hold(self) -> None:
        m = self.matcher
        assert list(m.orders) == list(range(1, m.next_order_id)), "order ids gapless"
        assert [t.trade_id for t in m.trades] == list(range(1, m.next_trade_id)), "trade ids"
        for order in m.orders.values():
            filled = sum(f.quantity for f in order.fills or [])
            assert order.quantity == order.remaining + filled, f"quantity conserved: {order}"
            assert order.remaining > 0 or order.status == "FILLED"
        for trade in m.trades:
            assert trade.price == m.orders[trade.maker_order_id].price, "at the maker's price"
        for book in m.books.values():
            bid, ask = book.bids.best(), book.asks.best()
            assert bid is None or ask is None or bid.price < ask.price, "crossed book"
            for side in (book.bids, book.asks):
                for level in side.levels.values():
                    live = [o for o in level.orders if o.is_open]
                    assert [o.id for o in live] == sorted(o.id for o in live), "FIFO"
                    assert level.live == len(live) > 0
                    assert level.total == sum(o.remaining for o in live)
                    assert all(o.price == level.price for o in live)


VenueMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
TestVenueAgainstReference = VenueMachine.TestCase
