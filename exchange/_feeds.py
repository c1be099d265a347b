"""The websocket feeds on the HTTP port: ``/ws/quotes`` and ``/ws/market``.

``/ws/quotes``: the top of book in the live layout of contract section 1 (the replay engine's
``--live-url`` takes it as it is): first the current quote of every symbol, then, for each
durable command that changed a symbol's best bid or ask, one quote with the new top, in order;
the quotes of one group commit travel as one array frame (one object when there is one).

``/ws/market`` (the order-book page's feed, the project's own format): first
``{"type": "snapshot", ...}`` with each symbol's tick, lot, book (:data:`DEPTH` levels a side),
last trades and top-of-book history, then one ``{"type": "events", "events": [...]}`` frame per
group commit holding its trades, changed levels and new tops in execution order. The snapshot's
``"history"`` is the page's chart since the venue started, at most :data:`HISTORY_POINTS` points
a series (:class:`History`): ``"mids"``, ``[time, bid_price, ask_price]`` of the tops since this
process started, and ``"trades"``, ``[time, price, quantity, aggressor_side]`` of every trade
since the venue's first start (recovered ones included).

Slow readers: each subscriber has its own queue of at most :data:`MAX_QUEUED_BYTES` (4 MiB) of
frames beyond what the kernel's socket buffers hold, drained by a sender task of its own; a
subscriber whose queue is full is disconnected (close code 1008) with a logged reason.
Publishing never waits for a subscriber, and memory per subscriber is bounded.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from exchange._book import Matcher
from exchange._model import LevelChanged, TopChanged, Trade
from exchange._sequencer import Published, Sequencer
from exchange._views import Views, dumps, iso_time

MAX_QUEUED_BYTES = 4 * 1024 * 1024
DEPTH = 20
RECENT_TRADES = 50
TOP_HISTORY = 2000
HISTORY_POINTS = 1000
log = logging.getLogger("exchange.feeds")


class History:
    """A series since the start at most ``cap`` points long: every ``step``-th point is kept,
    and when the series fills up every other point is dropped and ``step`` doubles, so it stays
    evenly spaced over its whole life in bounded memory.

    >>> h = History(4)
    >>> for i in range(10):
    ...     h.add(i)
    >>> h.points, h.step
    ([0, 4, 8], 4)
    """

    def __init__(self, cap: int = HISTORY_POINTS) -> None:
        self.cap = cap
        self.points: list[Any] = []
        self.step = 1
        self._seen = 0

    def add(self, point: Any) -> None:
        seen, self._seen = self._seen, self._seen + 1
        if seen % self.step:
            return
        self.points.append(point)
        if len(self.points) >= self.cap:
            del self.points[1::2]
            self.step *= 2


class Subscriber:
    """One websocket client: a bounded queue of frames and the task that sends them."""

    def __init__(self, ws: WebSocket, feed: str) -> None:
        self.ws = ws
        self.feed = feed
        self.frames: collections.deque[str] = collections.deque()
        self.queued_bytes = 0
        self._ready = asyncio.Event()
        self._closing = False
        client = ws.client
        self.peer = f"{client.host}:{client.port}" if client else "?"
        self.dropped = False

    def put(self, frame: str) -> None:
        if self._closing:
            return
        if self.queued_bytes + len(frame) > MAX_QUEUED_BYTES:
            self.dropped = True
            log.warning(
                "subscriber not keeping up: disconnected",
                extra={"fields": {"feed": self.feed, "peer": self.peer,
                                  "queued_bytes": self.queued_bytes}},
            )  # fmt: skip
            self.stop()
            return
        self.frames.append(frame)
        self.queued_bytes += len(frame)
        self._ready.set()

    def stop(self) -> None:
        """Drop what is queued and make the sender close the connection."""
        self._closing = True
        self.frames.clear()
        self.queued_bytes = 0
        self._ready.set()

    async def run(self) -> None:
        """Send frames until the client goes, is dropped, or the venue stops."""
        receiver = asyncio.ensure_future(self._drain_input())
        try:
            while True:
                waiter = asyncio.ensure_future(self._ready.wait())
                done, _ = await asyncio.wait(
                    {waiter, receiver}, return_when=asyncio.FIRST_COMPLETED
                )
                if receiver in done:
                    waiter.cancel()
                    return
                self._ready.clear()
                while self.frames:
                    frame = self.frames.popleft()
                    self.queued_bytes -= len(frame)
                    await self.ws.send_text(frame)
                if self._closing:
                    await self.ws.close(1008 if self.dropped else 1001)
                    return
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        finally:
            receiver.cancel()

    async def _drain_input(self) -> None:
        """Read (and ignore) what the client sends, to see it go."""
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
        except (WebSocketDisconnect, RuntimeError):
            return


class Feed:
    """The subscribers of one feed path and what they are sent."""

    def __init__(self, name: str, greeting: Callable[[], list[str]]) -> None:
        self.name = name
        self.greeting = greeting
        self.subscribers: set[Subscriber] = set()

    async def serve(self, ws: WebSocket) -> None:
        await ws.accept()
        sub = Subscriber(ws, self.name)
        for frame in self.greeting():
            sub.put(frame)
        self.subscribers.add(sub)
        try:
            await sub.run()
        finally:
            self.subscribers.discard(sub)

    def broadcast(self, frame: str) -> None:
        for sub in list(self.subscribers):
            sub.put(frame)

    def close_all(self) -> None:
        for sub in list(self.subscribers):
            sub.stop()


class Feeds:
    """``/ws/quotes`` and ``/ws/market`` fed from the sequencer's durable batches."""

    def __init__(self, sequencer: Sequencer, views: Views) -> None:
        self.matcher: Matcher = sequencer.venue.matcher
        self._sequencer = sequencer
        self.views = views
        self.quotes = Feed("quotes", self._quote_greeting)
        self.market = Feed("market", self._market_greeting)
        self.tops: dict[str, collections.deque[dict[str, Any]]] = {
            s: collections.deque(maxlen=TOP_HISTORY) for s in views.symbols
        }
        self.mids = {s: History() for s in views.symbols}
        self.trades = {s: History() for s in views.symbols}
        for trade in self.matcher.trades:
            self._add_trade(trade)
        now = iso_time(time.time_ns())
        for s in views.symbols:
            quote = views.quote(self._top(s), 0)
            self.mids[s].add([now, quote["bid_price"], quote["ask_price"]])
        sequencer.listeners.append(self.publish)

    def _add_trade(self, t: Trade) -> None:
        self.trades[t.symbol].add([iso_time(t.time), self.views.price(t.symbol, t.price),
                                   self.views.quantity(t.symbol, t.quantity), t.aggressor_side])

    def _top(self, symbol: str) -> TopChanged:
        return TopChanged(symbol, *self._sequencer.venue.matcher.books[symbol].top())

    def _quote_greeting(self) -> list[str]:
        now = time.time_ns()
        quotes = [self.views.quote(self._top(s), now) for s in self.views.symbols]
        return [dumps(quotes)]

    def _market_greeting(self) -> list[str]:
        matcher = self._sequencer.venue.matcher
        views = self.views
        symbols: dict[str, Any] = {}
        for name, spec in views.symbols.items():
            book = matcher.books[name]
            trades = [t for t in reversed(matcher.trades[-RECENT_TRADES * 4 :]) if t.symbol == name]
            symbols[name] = {
                "tick": spec.spec.split(":")[1],
                "lot": spec.spec.split(":")[2],
                "bids": views.levels(name, book.bids.depth(DEPTH)),
                "asks": views.levels(name, book.asks.depth(DEPTH)),
                "trades": [views.trade(t) for t in reversed(trades[:RECENT_TRADES])],
                "tops": list(self.tops[name]),
                "history": {"mids": self.mids[name].points, "trades": self.trades[name].points},
            }
        return [dumps({"type": "snapshot", "venue": views.venue_name, "symbols": symbols})]

    def publish(self, batch: list[Published]) -> None:
        """Frames for the subscribers; the history a later snapshot needs is kept either way,
        and nothing else is built while nobody listens on ``/ws/market``."""
        views = self.views
        market = bool(self.market.subscribers)
        quotes: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for pub in batch:
            for event in pub.events:
                if isinstance(event, Trade):
                    if market:
                        events.append({"type": "trade", **views.trade(event)})
                    self._add_trade(event)
                elif market and isinstance(event, LevelChanged):
                    events.append({
                        "type": "level", "symbol": event.symbol, "side": event.side,
                        "price": views.price(event.symbol, event.price),
                        "quantity": views.quantity(event.symbol, event.quantity),
                    })  # fmt: skip
                elif isinstance(event, TopChanged):
                    quote = views.quote(event, pub.time)
                    quotes.append(quote)
                    top = {"type": "top", "symbol": event.symbol, "time": iso_time(pub.time),
                           **{k: quote[k] for k in ("bid_price", "ask_price", "bid_amount",
                                                     "ask_amount")}}  # fmt: skip
                    self.tops[event.symbol].append(top)
                    self.mids[event.symbol].add([top["time"], quote["bid_price"],
                                                 quote["ask_price"]])
                    events.append(top)
        if quotes and self.quotes.subscribers:
            self.quotes.broadcast(dumps(quotes[0] if len(quotes) == 1 else quotes))
        if events and self.market.subscribers:
            self.market.broadcast(dumps({"type": "events", "events": events}))
