"""A seeded command stream shaped like a busy book (after exchange-core's test generator).

The book is first filled to about ``depth`` resting orders a side around a mid of ``mid`` ticks;
then each command is drawn from this mix:

======================  =======  =================================================================
command                 share    what it does
======================  =======  =================================================================
LIMIT GTC near touch     45 %    a passive order 0-20 ticks behind the touch (rests)
cancel                   35 %    an open order picked at random (more while a side is over depth)
LIMIT IOC crossing        8 %    up to 3 ticks through the touch, 1-3 orders' worth (trades)
MARKET                    5 %    1-3 orders' worth (trades, walks levels)
LIMIT FOK crossing        4 %    through the touch; fills or expires whole
LIMIT GTC crossing        2 %    through the touch; trades, then the rest becomes the new touch
cancel of a closed id     1 %    refused ("is FILLED" / "is CANCELED")
======================  =======  =================================================================

The stream is drawn while a :class:`~exchange._book.Matcher` applies it, so cancels name orders
that are really open and the book stays near ``depth``; applying the same stream to a new matcher
repeats it exactly. Times advance 1 µs a command.
"""

from __future__ import annotations

import random

from exchange._book import Matcher
from exchange._model import Accepted, Cancel, Command, Place, Side

CommandAt = tuple[Command, int]
START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def _passive(rng: random.Random, side: Side, bid: int, ask: int) -> int:
    return max(1, (bid - rng.randrange(21)) if side == "BUY" else (ask + rng.randrange(21)))


def generate(
    n: int, *, seed: int = 1, symbol: str = "BTC-USDT", depth: int = 1000, mid: int = 1_000_000
) -> list[CommandAt]:
    """``n`` commands (after a warm-up of ``2 * depth`` resting orders), with their times."""
    rng = random.Random(seed)
    matcher = Matcher([symbol])
    book = matcher.books[symbol]
    out: list[CommandAt] = []
    open_ids: list[int] = []
    closed: list[int] = []
    now = START_NS

    def emit(cmd: Command) -> None:
        nonlocal now
        now += 1000
        events = matcher.apply(cmd, now)
        out.append((cmd, now))
        first = events[0]
        if type(first) is Accepted and first.time_in_force == "GTC":
            open_ids.append(first.order_id)

    for i in range(2 * depth):
        side: Side = "BUY" if i % 2 == 0 else "SELL"
        price = mid - 1 - rng.randrange(200) if side == "BUY" else mid + 1 + rng.randrange(200)
        emit(Place(symbol, side, "LIMIT", "GTC", price, 1 + rng.randrange(20)))
    resting = {"BUY": depth, "SELL": depth}
    while len(out) < n + 2 * depth:
        if len(out) % 64 == 0:  # the count of resting orders a side, now and then
            resting = {
                "BUY": sum(level.live for level in book.bids.levels.values()),
                "SELL": sum(level.live for level in book.asks.levels.values()),
            }
        bid, _, ask, _ = book.top()
        bid, ask = bid or mid - 1, ask or mid + 1
        side = "BUY" if rng.random() < 0.5 else "SELL"
        r = rng.random()
        if resting[side] < 0.9 * depth and r < 0.80:
            r = 0.50  # a thin side: place instead of cancelling
        elif resting[side] > 1.1 * depth and 0.35 <= r < 0.80:
            r = 0.0  # a thick side: cancel instead of placing
        if r < 0.35:
            victim = _pick_open(rng, matcher, open_ids, closed)
            if victim is not None:
                emit(Cancel(victim))
        elif r < 0.80:
            price = _passive(rng, side, bid, ask)
            emit(Place(symbol, side, "LIMIT", "GTC", price, 1 + rng.randrange(20)))
        elif r < 0.88:
            emit(Place(symbol, side, "LIMIT", "IOC", _through(rng, side, bid, ask, 4), _big(rng)))
        elif r < 0.93:
            emit(Place(symbol, side, "MARKET", "IOC", None, _big(rng)))
        elif r < 0.97:
            emit(Place(symbol, side, "LIMIT", "FOK", _through(rng, side, bid, ask, 4), _big(rng)))
        elif r < 0.99:
            price = _through(rng, side, bid, ask, 2)
            emit(Place(symbol, side, "LIMIT", "GTC", price, 1 + rng.randrange(30)))
        elif closed:
            emit(Cancel(closed[rng.randrange(len(closed))]))
    return out


def _through(rng: random.Random, side: Side, bid: int, ask: int, ticks: int) -> int:
    return (ask + rng.randrange(ticks)) if side == "BUY" else max(1, bid - rng.randrange(ticks))


def _big(rng: random.Random) -> int:
    return 1 + rng.randrange(30)


def _pick_open(
    rng: random.Random, matcher: Matcher, open_ids: list[int], closed: list[int]
) -> int | None:
    """An order still open, drawn at random; ids found closed move to ``closed``."""
    while open_ids:
        j = rng.randrange(len(open_ids))
        open_ids[j], open_ids[-1] = open_ids[-1], open_ids[j]
        order_id = open_ids.pop()
        if matcher.orders[order_id].is_open:
            return order_id
        closed.append(order_id)
    return None
