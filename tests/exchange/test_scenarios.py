"""Scenario tables a reader can check by eye: commands -> trades, book, statuses.

The symbol is ``T`` with tick 1 and lot 1, so prices and quantities read as they are. Commands:
``BUY|SELL LIMIT GTC|IOC|FOK <price> x <qty>``, ``BUY|SELL MARKET [FOK] x <qty>``,
``CANCEL <id>``; a command expected to be refused ends with ``-> <code>``. Expected:
trades ``#<trade id> <price> x <qty> maker <id> taker <id>``, the book after all commands
(``bid|ask <price> x <total>``, best first), and the final ``<id> <STATUS> <remaining>``
of the orders listed.
"""

from __future__ import annotations

import pytest

from exchange import Cancel, Matcher, Place, Rejected, Trade

SCENARIOS: list[tuple[str, str, str, str, str]] = [
    # name, commands, trades, book, statuses
    (
        "a resting order, nothing crosses",
        "BUY LIMIT GTC 99 x 5 | SELL LIMIT GTC 101 x 3",
        "",
        "bid 99 x 5 | ask 101 x 3",
        "1 NEW 5 | 2 NEW 3",
    ),
    (
        "oldest first at one price, partial fill of the second",
        "SELL LIMIT GTC 101 x 5 | SELL LIMIT GTC 101 x 3 | BUY LIMIT GTC 101 x 6",
        "#1 101 x 5 maker 1 taker 3 | #2 101 x 1 maker 2 taker 3",
        "ask 101 x 2",
        "1 FILLED 0 | 2 PARTIALLY_FILLED 2 | 3 FILLED 0",
    ),
    (
        "better price first, each trade at the maker's price",
        "SELL LIMIT GTC 102 x 2 | SELL LIMIT GTC 100 x 2 | BUY LIMIT GTC 105 x 3",
        "#1 100 x 2 maker 2 taker 3 | #2 102 x 1 maker 1 taker 3",
        "ask 102 x 1",
        "1 PARTIALLY_FILLED 1 | 3 FILLED 0",
    ),
    (
        "a GTC remainder rests and becomes the best bid",
        "SELL LIMIT GTC 100 x 2 | BUY LIMIT GTC 101 x 5",
        "#1 100 x 2 maker 1 taker 2",
        "bid 101 x 3",
        "2 PARTIALLY_FILLED 3",
    ),
    (
        "IOC: fills what it can, the rest expires",
        "SELL LIMIT GTC 100 x 2 | SELL LIMIT GTC 103 x 2 | BUY LIMIT IOC 101 x 5",
        "#1 100 x 2 maker 1 taker 3",
        "ask 103 x 2",
        "3 EXPIRED 3",
    ),
    (
        "FOK that cannot fill: no trade, book unchanged",
        "SELL LIMIT GTC 100 x 2 | SELL LIMIT GTC 101 x 2 | BUY LIMIT FOK 101 x 5",
        "",
        "ask 100 x 2 | ask 101 x 2",
        "3 EXPIRED 5 | 1 NEW 2",
    ),
    (
        "FOK that can fill walks two levels",
        "SELL LIMIT GTC 100 x 2 | SELL LIMIT GTC 101 x 3 | BUY LIMIT FOK 101 x 5",
        "#1 100 x 2 maker 1 taker 3 | #2 101 x 3 maker 2 taker 3",
        "",
        "3 FILLED 0",
    ),
    (
        "MARKET crosses any price; an empty side expires the rest",
        "BUY LIMIT GTC 90 x 1 | BUY LIMIT GTC 50 x 1 | SELL MARKET x 3",
        "#1 90 x 1 maker 1 taker 3 | #2 50 x 1 maker 2 taker 3",
        "",
        "3 EXPIRED 1",
    ),
    (
        "MARKET FOK on a thin book expires whole",
        "BUY LIMIT GTC 90 x 1 | SELL MARKET FOK x 3",
        "",
        "bid 90 x 1",
        "2 EXPIRED 3",
    ),
    (
        "a cancelled order is skipped; FIFO of the rest holds",
        "SELL LIMIT GTC 100 x 1 | SELL LIMIT GTC 100 x 2 | SELL LIMIT GTC 100 x 3 | CANCEL 2"
        " | BUY LIMIT IOC 100 x 3",
        "#1 100 x 1 maker 1 taker 4 | #2 100 x 2 maker 3 taker 4",
        "ask 100 x 1",
        "2 CANCELED 2 | 3 PARTIALLY_FILLED 1 | 4 FILLED 0",
    ),
    (
        "cancel of a filled order, of an unknown one, of a cancelled one: refused, no id used",
        "SELL LIMIT GTC 100 x 1 | BUY LIMIT GTC 100 x 1 | CANCEL 1 -> not_open"
        " | CANCEL 9 -> unknown | BUY LIMIT GTC 98 x 1 | CANCEL 3 | CANCEL 3 -> not_open"
        " | BUY LIMIT GTC 97 x 1",
        "#1 100 x 1 maker 1 taker 2",
        "bid 97 x 1",
        "1 FILLED 0 | 3 CANCELED 1 | 4 NEW 1",
    ),
    (
        "a partly filled resting order cancelled: the rest leaves the book",
        "BUY LIMIT GTC 100 x 5 | SELL LIMIT IOC 100 x 2 | CANCEL 1",
        "#1 100 x 2 maker 1 taker 2",
        "",
        "1 CANCELED 3 | 2 FILLED 0",
    ),
    (
        "a sell walks the bids down to its limit and rests above the rest",
        "BUY LIMIT GTC 103 x 1 | BUY LIMIT GTC 102 x 1 | BUY LIMIT GTC 101 x 1"
        " | SELL LIMIT GTC 102 x 5",
        "#1 103 x 1 maker 1 taker 4 | #2 102 x 1 maker 2 taker 4",
        "bid 101 x 1 | ask 102 x 3",
        "4 PARTIALLY_FILLED 3",
    ),
]


def _parse(line: str) -> tuple[Place | Cancel, str | None]:
    words, _, refused = line.partition("->")
    w = words.split()
    expect = refused.strip() or None
    if w[0] == "CANCEL":
        return Cancel(int(w[1])), expect
    side, type_ = w[0], w[1]
    if type_ == "MARKET":
        tif = w[2] if w[2] != "x" else "IOC"
        return Place("T", side, "MARKET", tif, None, int(w[-1])), expect  # type: ignore[arg-type]
    return Place("T", side, "LIMIT", w[2], int(w[3]), int(w[5])), expect  # type: ignore[arg-type]


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split("|") if item.strip()]


@pytest.mark.parametrize(
    ("commands", "trades", "book", "statuses"),
    [pytest.param(*row[1:], id=row[0]) for row in SCENARIOS],
)
def test_scenario(commands: str, trades: str, book: str, statuses: str) -> None:
    matcher = Matcher(["T"])
    got_trades = []
    for n, line in enumerate(_items(commands), 1):
        command, refusal = _parse(line)
        events = matcher.apply(command, n)
        if refusal:
            assert type(events[0]) is Rejected and events[0].code == refusal, (line, events)
        else:
            assert type(events[0]) is not Rejected, (line, events)
        got_trades += [
            f"#{e.trade_id} {e.price} x {e.quantity} maker {e.maker_order_id} taker "
            f"{e.taker_order_id}"
            for e in events
            if type(e) is Trade
        ]
    assert got_trades == _items(trades)
    side_books = (matcher.books["T"].bids, matcher.books["T"].asks)
    got_book = [f"{s.name} {p} x {q}" for s in side_books for p, q in s.depth(100)]
    assert got_book == _items(book)
    for item in _items(statuses):
        order_id, status, remaining = item.split()
        order = matcher.orders[int(order_id)]
        assert (order.status, order.remaining) == (status, int(remaining)), item
