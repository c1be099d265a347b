"""``python -m exchange.load``: simulated traders against a running venue (contract section 6).

Each connection is one trader on one symbol with its own seeded random stream. Its mix is
realistic for a busy book: mostly passive limit orders a few ticks from a reference mid (they
rest), some aggressive orders that cross it (Wood: ``marketOrder`` or a crossing
``createOrder``; REST: ``MARKET`` or a crossing ``IOC`` limit), and cancels of its own open
orders. The reference mid is read from ``GET /api/book/{symbol}`` at start (100.00 when the book
is empty or there is no ``--url``); prices are multiples of the symbol's tick, quantities of its
lot (the venue's default symbols, or ``--tick``/``--lot``).

Protocols:

- ``wood`` (default): one TCP connection per trader to the private port, newline JSON, orders
  pipelined (many in flight). Each connection numbers its own ``orderId`` 1, 2, 3... A new
  order is acknowledged by its ``executionReport`` ``NEW`` (or an ``error`` naming its
  ``orderId``), a cancel by ``CANCELED`` (or an error: the order filled meanwhile).
- ``rest``: one HTTP/1.1 keep-alive connection per trader, one request in flight each:
  ``POST /api/orders`` (201, or a 4xx refusal) and ``POST /api/orders/{id}/cancel``. The client
  is a minimal HTTP/1.1 client on asyncio streams, not httpx: httpx spends a few hundred
  microseconds of Python per request, and on a shared machine that CPU is taken from the venue
  being measured; this one writes a prebuilt request and reads ``Content-Length`` bytes.

Rate control: ``--rate N`` is an open-loop schedule: command ``k`` is due at ``start + k / N``
(on connection ``k % connections``), whatever happened to the ones before, and its latency is
measured from that due time, not from when it was actually written. The schedule is kept to the
event loop's timer resolution (1 ms): a command may leave up to about 1 ms after its due time,
and that lateness is part of its latency (the figures err high, never low). A venue that stalls
therefore shows the stall in every command that queued behind it (no coordinated omission).
``--rate max`` is closed-loop: each connection keeps ``--window`` commands in flight (Wood; REST
keeps one) and latency is measured from the actual write. Over REST each connection has one
request in flight, so a venue slower than the schedule makes it fall behind: the commands due
and never sent by the end are reported as behind schedule.

At the end it prints the acknowledged commands per second (new orders and cancels), a latency
histogram and p50/p90/p99/p99.9/max; ``--json PATH`` writes the same as JSON. SIGINT/SIGTERM stop
the sending; what is in flight is awaited (up to ``--drain`` seconds) and counted. Exit 0, 2 on a
usage error, 1 when the venue cannot be reached, drops a connection or leaves commands
unacknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import math
import random
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common.cli import Parser, UsageError, loop_factory, run_program
from common.log import get_logger

PROG = "python -m exchange.load"
log = get_logger("exchange.load")

#: The venue's default symbols (contract section 6): symbol -> (tick, lot).
KNOWN = {
    "BTC-USDT": (Decimal("0.01"), Decimal("0.0001")),
    "ETH-USDT": (Decimal("0.01"), Decimal("0.001")),
    "SOL-USDT": (Decimal("0.001"), Decimal("0.01")),
}
DEFAULT_MID = Decimal("100.00")

#: The traders' mix: shares of cancels (when the trader has open orders) and aggressive orders;
#: the rest are passive limits. Passive prices are 1 + a geometric number of ticks from the mid.
CANCEL_SHARE = 0.25
AGGRESSIVE_SHARE = 0.15
MAX_LOTS = 100
#: The shortest sleep of the open-loop schedule: the event loop's timer resolution (libuv counts
#: milliseconds; a shorter sleep returns at once and the sender would spin).
TICK = 0.001


# ------------------------------------------------------------------------------------------------
# What to send


@dataclass
class Market:
    """The symbol's grid and the reference mid, in integer ticks and lots."""

    symbol: str
    tick: Decimal
    lot: Decimal
    mid: int  # ticks
    _prices: dict[int, str] = field(default_factory=dict, repr=False)
    _quantities: dict[int, str] = field(default_factory=dict, repr=False)

    def price(self, ticks: int) -> str:
        """A price as an exact JSON number.

        >>> Market("X", Decimal("0.01"), Decimal("0.0001"), 10000).price(10001)
        '100.01'
        """
        text = self._prices.get(ticks)
        if text is None:
            text = self._prices[ticks] = format(ticks * self.tick, "f")
        return text

    def quantity(self, lots: int) -> str:
        text = self._quantities.get(lots)
        if text is None:
            text = self._quantities[lots] = format(lots * self.lot, "f")
        return text

    def lots(self, quantity: object) -> int:
        """A quantity from the venue (a JSON number) in lots.

        >>> Market("X", Decimal("0.01"), Decimal("0.0001"), 1).lots(0.0003)
        3
        """
        return round(Decimal(str(quantity)) / self.lot)


class Trader:
    """One connection's decisions: its random stream and its open orders."""

    def __init__(self, market: Market, rng: random.Random, protocol: str) -> None:
        self.market = market
        self.rng = rng
        self.protocol = protocol
        self.open: list[Any] = []  # open order keys, for a random pick
        self.where: dict[Any, int] = {}  # key -> index in self.open

    def add_open(self, key: Any) -> None:
        if key not in self.where:
            self.where[key] = len(self.open)
            self.open.append(key)

    def drop_open(self, key: Any) -> None:
        i = self.where.pop(key, None)
        if i is None:
            return
        last = self.open.pop()
        if i < len(self.open):
            self.open[i] = last
            self.where[last] = i

    def next(self) -> tuple[str, Any]:
        """``("cancel", key)`` or ``("order", (side, type, tif, price_ticks|None, lots))``."""
        rng = self.rng
        u = rng.random()
        if u < CANCEL_SHARE and self.open:
            key = self.open[int(rng.random() * len(self.open))]
            self.drop_open(key)  # at most one cancel per order
            return "cancel", key
        side = "BUY" if rng.random() < 0.5 else "SELL"
        lots = 1 + min(int(rng.expovariate(1 / 10)), MAX_LOTS - 1)
        mid = self.market.mid
        if u < CANCEL_SHARE + AGGRESSIVE_SHARE:
            if rng.random() < 0.5:
                return "order", (side, "MARKET", "IOC", None, lots)
            away = 1 + int(rng.random() * 5)
            price = mid + away if side == "BUY" else mid - away
            tif = "IOC" if self.protocol == "rest" else "GTC"  # Wood has no IOC limit
            return "order", (side, "LIMIT", tif, price, lots)
        away = 1 + min(int(rng.expovariate(1 / 3)), 50)
        price = mid - away if side == "BUY" else mid + away
        return "order", (side, "LIMIT", "GTC", max(price, 1), lots)


# ------------------------------------------------------------------------------------------------
# Counting


@dataclass
class Stats:
    """Everything measured, shared by the connections (one event loop: no locks)."""

    latencies: list[float] = field(default_factory=list)  # seconds, every acknowledged command
    orders_sent: int = 0
    cancels_sent: int = 0
    orders_acked: int = 0  # accepted: NEW / 201
    orders_rejected: int = 0  # refused with an error / 4xx
    cancels_acked: int = 0  # CANCELED / 200
    cancels_refused: int = 0  # the order had filled or gone meanwhile
    fills: int = 0
    behind: int = 0  # open loop: commands due by the end that were never sent (REST)
    errors: list[str] = field(default_factory=list)
    first_send: float | None = None
    last_ack: float | None = None

    def ack(self, due: float, now: float) -> None:
        self.latencies.append(now - due)
        self.last_ack = now

    @property
    def sent(self) -> int:
        return self.orders_sent + self.cancels_sent

    @property
    def acked(self) -> int:
        return self.orders_acked + self.orders_rejected + self.cancels_acked + self.cancels_refused


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, nearest rank.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5), percentile([1.0, 2.0, 3.0, 4.0], 0.99)
    (2.0, 4.0)
    """
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


#: Histogram bucket upper bounds, milliseconds.
BUCKETS_MS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, math.inf)


def histogram(ordered: Sequence[float]) -> list[tuple[float, int]]:
    """(upper bound ms, count) for each bucket, from sorted latencies in seconds.

    >>> histogram([0.00005, 0.0015, 0.0016])[:5]
    [(0.1, 1), (0.2, 0), (0.5, 0), (1, 0), (2, 2)]
    """
    out = []
    start = 0
    for bound in BUCKETS_MS:
        end = bisect.bisect_right(ordered, bound / 1000)
        out.append((bound, end - start))
        start = end
    return out


# ------------------------------------------------------------------------------------------------
# The Wood protocol


class WoodClient:
    """One trader on the private port: a writer that follows the schedule and a reader."""

    def __init__(self, index: int, trader: Trader, stats: Stats, budget: int | None) -> None:
        self.index = index
        self.trader = trader
        self.stats = stats
        self.budget = budget
        self.next_id = 1
        self.pending: dict[int, float] = {}  # orderId -> due time, new orders
        self.cancelling: dict[int, float] = {}  # orderId -> due time, cancels
        self.remaining: dict[int, int] = {}  # open limit orders: orderId -> lots left
        self.limits: set[int] = set()  # orderIds of limit orders awaiting NEW
        self.lots: dict[int, int] = {}  # orderId -> lots, awaiting NEW
        self.room = asyncio.Event()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.symbol_field = ""

    @property
    def in_flight(self) -> int:
        return len(self.pending) + len(self.cancelling)

    async def connect(self, host: str, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port)
        self.symbol_field = f',"symbol":"{self.trader.market.symbol}"'

    def line(self, now: float, due: float) -> bytes:
        """The next command's line, registered as in flight (due at ``due``)."""
        stats = self.stats
        kind, what = self.trader.next()
        if stats.first_send is None:
            stats.first_send = now
        if kind == "cancel":
            self.cancelling[what] = due
            stats.cancels_sent += 1
            return b'{"message":"cancelOrder","orderId":%d}\n' % what
        side, type_, _tif, price, lots = what
        oid = self.next_id
        self.next_id += 1
        self.pending[oid] = due
        self.lots[oid] = lots
        stats.orders_sent += 1
        market = self.trader.market
        qty = market.quantity(lots)
        if type_ == "MARKET":
            text = (
                f'{{"message":"marketOrder","orderId":{oid},"side":"{side}",'
                f'"quantity":{qty}{self.symbol_field}}}\n'
            )
        else:
            self.limits.add(oid)
            text = (
                f'{{"message":"createOrder","orderId":{oid},"side":"{side}",'
                f'"price":{market.price(price)},"quantity":{qty}{self.symbol_field}}}\n'
            )
        return text.encode()

    def _spent(self) -> bool:
        return self.budget is not None and self.budget <= 0

    async def send_window(self, window: int, stop: asyncio.Event) -> None:
        """Closed loop: keep ``window`` commands in flight; latency from the actual write."""
        assert self.writer is not None
        writer = self.writer
        clock = time.perf_counter
        low = max(1, window // 2)
        while not stop.is_set() and not self._spent():
            if self.in_flight >= low:
                self.room.clear()
                stop_wait = asyncio.ensure_future(stop.wait())
                room_wait = asyncio.ensure_future(self.room.wait())
                await asyncio.wait((stop_wait, room_wait), return_when=asyncio.FIRST_COMPLETED)
                stop_wait.cancel()
                room_wait.cancel()
                continue
            now = clock()
            chunk = []
            while self.in_flight < window and not self._spent():
                chunk.append(self.line(now, now))
                if self.budget is not None:
                    self.budget -= 1
            writer.write(b"".join(chunk))
            await writer.drain()

    async def read(self) -> None:
        """Match every report and error to its command, until the venue closes."""
        assert self.reader is not None
        reader = self.reader
        tail = b""
        while True:
            data = await reader.read(1 << 16)
            if not data:
                if self.in_flight:
                    self.stats.errors.append(f"connection {self.index}: closed by the venue")
                return
            lines = (tail + data).split(b"\n")
            tail = lines.pop()
            now = time.perf_counter()
            for raw in lines:
                if raw:
                    self.on_message(json.loads(raw), now)
            self.room.set()

    def on_message(self, message: dict[str, Any], now: float) -> None:
        stats = self.stats
        oid: int = message.get("orderId", -1)
        report = message.get("report")
        if report == "NEW":
            due = self.pending.pop(oid, None)
            if due is None:
                stats.errors.append(f"connection {self.index}: NEW for unknown orderId {oid}")
                return
            stats.orders_acked += 1
            stats.ack(due, now)
            lots = self.lots.pop(oid)
            if oid in self.limits:
                self.limits.discard(oid)
                self.remaining[oid] = lots
                self.trader.add_open(oid)
        elif report == "FILL":
            stats.fills += 1
            left = self.remaining.get(oid)
            if left is not None:
                left -= self.trader.market.lots(message["quantity"])
                if left <= 0:
                    del self.remaining[oid]
                    self.trader.drop_open(oid)
                else:
                    self.remaining[oid] = left
        elif report == "CANCELED":
            self.remaining.pop(oid, None)
            self.trader.drop_open(oid)
            due = self.cancelling.pop(oid, None)
            if due is not None:
                stats.cancels_acked += 1
                stats.ack(due, now)
        elif "error" in message:
            if oid in self.cancelling:
                stats.cancels_refused += 1
                stats.ack(self.cancelling.pop(oid), now)
            elif oid in self.pending:
                stats.orders_rejected += 1
                stats.ack(self.pending.pop(oid), now)
                self.lots.pop(oid, None)
                self.limits.discard(oid)
                if len(stats.errors) < 20:
                    stats.errors.append(f"order refused: {message['error']}")
            else:
                stats.errors.append(f"connection {self.index}: {message['error']}")
        else:
            stats.errors.append(f"connection {self.index}: unexpected {message!r}"[:200])


async def send_scheduled(
    clients: list[WoodClient], rate: float, start: float, stop: asyncio.Event
) -> None:
    """Open loop over all connections: command k is due at ``start + k / rate`` and goes to
    connection ``k % n`` (so with ``--orders`` each connection sends its budget). One task wakes
    at most once per :data:`TICK`, writes everything due (one write per connection) and sleeps
    until the next due time."""
    clock = time.perf_counter
    n = len(clients)
    budgets = [c.budget for c in clients]
    total = None if None in budgets else sum(b for b in budgets if b is not None)
    k = 0
    while not stop.is_set() and (total is None or k < total):
        now = clock()
        chunks: dict[int, list[bytes]] = {}
        while (due := start + k / rate) <= now and (total is None or k < total):
            chunks.setdefault(k % n, []).append(clients[k % n].line(now, due))
            k += 1
        for index, chunk in chunks.items():
            writer = clients[index].writer
            assert writer is not None
            writer.write(b"".join(chunk))
            if writer.transport.get_write_buffer_size() > 1 << 20:
                await writer.drain()
        await asyncio.sleep(max(start + k / rate - clock(), TICK))


# ------------------------------------------------------------------------------------------------
# REST


class HttpConnection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams (see the module's notes)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        """(status, parsed JSON body or None)."""
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        elif method == "POST":
            head += "Content-Length: 0\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        return await self.response()

    async def response(self) -> tuple[int, Any]:
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        lower = raw.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lower.index(b"\r\n", at + 2)
            size = int(lower[at + 17 : end])
            data = await self.reader.readexactly(size)
        elif b"transfer-encoding: chunked" in lower:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            data = b"".join(p[:-2] for p in parts)
        else:
            raise ConnectionError(f"an HTTP response without a length: {raw[:200]!r}")
        return status, (json.loads(data) if data else None)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()


class RestClient:
    """One trader over REST: one request in flight on one keep-alive connection."""

    def __init__(
        self, index: int, trader: Trader, stats: Stats, budget: int | None, http: HttpConnection
    ) -> None:
        self.index = index
        self.trader = trader
        self.stats = stats
        self.budget = budget
        self.http = http
        self.n = 0
        self.prefix = f"load-{index}-"

    async def one(self, due: float) -> None:
        stats = self.stats
        trader = self.trader
        kind, what = trader.next()
        if stats.first_send is None:
            stats.first_send = time.perf_counter()
        if kind == "cancel":
            stats.cancels_sent += 1
            status, _ = await self.http.request("POST", f"/api/orders/{what}/cancel")
            now = time.perf_counter()
            stats.ack(due, now)
            if status == 200:
                stats.cancels_acked += 1
            elif status in (404, 409):
                stats.cancels_refused += 1
            else:
                raise ConnectionError(f"cancel answered {status}")
            return
        side, type_, tif, price, lots = what
        market = trader.market
        self.n += 1
        body = (
            f'{{"symbol":"{market.symbol}","side":"{side}","type":"{type_}",'
            f'"time_in_force":"{tif}","quantity":"{market.quantity(lots)}",'
            f'"client_order_id":"{self.prefix}{self.n}"'
            + ("" if price is None else f',"price":"{market.price(price)}"')
            + "}"
        )
        stats.orders_sent += 1
        status, order = await self.http.request("POST", "/api/orders", body.encode())
        now = time.perf_counter()
        stats.ack(due, now)
        if status == 201:
            stats.orders_acked += 1
            stats.fills += len(order.get("fills", ()))
            if order["status"] in ("NEW", "PARTIALLY_FILLED") and order["time_in_force"] == "GTC":
                trader.add_open(order["id"])
        elif 400 <= status < 500:
            stats.orders_rejected += 1
            if len(stats.errors) < 20:
                stats.errors.append(f"order refused: {status} {order}")
        else:
            raise ConnectionError(f"order answered {status}: {order}")

    def _spent(self) -> bool:
        return self.budget is not None and self.budget <= 0

    async def run(self, interval: float | None, start: float, stop: asyncio.Event) -> None:
        clock = time.perf_counter
        due = start
        while not stop.is_set() and not self._spent():
            if interval is None:
                due = clock()
            else:
                now = clock()
                if due > now:
                    await asyncio.sleep(max(due - now, TICK))
                    continue
            if self.budget is not None:
                self.budget -= 1
            await self.one(due)
            if interval is not None:
                due += interval
        if interval is not None and self.budget is None:
            self.stats.behind += max(0, int((clock() - due) / interval))


# ------------------------------------------------------------------------------------------------
# The run


@dataclass
class Settings:
    url: str | None
    private: tuple[str, int] | None
    protocol: str
    connections: int
    rate: float | None  # None: max
    duration: float | None
    orders: int | None
    symbol: str
    tick: Decimal
    lot: Decimal
    seed: int
    window: int
    drain: float
    json_path: Path | None


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def reference_mid(settings: Settings) -> Decimal:
    """The mid of the symbol's book (one side: that side's best), else 100.00."""
    if settings.url is None:
        return DEFAULT_MID
    http = HttpConnection(*_host_port(settings.url))
    try:
        await asyncio.wait_for(http.connect(), 10)
        status, book = await asyncio.wait_for(
            http.request("GET", f"/api/book/{settings.symbol}?depth=1"), 10
        )
    except (OSError, TimeoutError) as e:
        raise ConnectionError(f"cannot reach the venue at {settings.url}: {e}") from None
    finally:
        await http.close()
    if status == 404:
        raise UsageError(f"--symbol {settings.symbol}: the venue does not list it")
    if status != 200:
        raise ConnectionError(f"GET /api/book/{settings.symbol} answered {status}")
    bids, asks = book["bids"], book["asks"]
    best = [Decimal(str(side[0][0])) for side in (bids, asks) if side]
    if not best:
        return DEFAULT_MID
    return sum(best, Decimal(0)) / len(best)


async def run_load(settings: Settings) -> Stats:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    mid = await reference_mid(settings)
    market = Market(settings.symbol, settings.tick, settings.lot, int(mid / settings.tick))
    stats = Stats()
    n = settings.connections
    budgets: list[int | None] = [None] * n
    if settings.orders is not None:
        budgets = [settings.orders // n + (1 if i < settings.orders % n else 0) for i in range(n)]
    traders = [
        Trader(market, random.Random(settings.seed * 1_000_003 + i), settings.protocol)
        for i in range(n)
    ]
    interval = None if settings.rate is None else n / settings.rate
    log.info(
        "starting", protocol=settings.protocol, connections=n,
        rate="max" if settings.rate is None else settings.rate, symbol=settings.symbol,
        mid=str(market.price(market.mid)),
    )  # fmt: skip
    if settings.protocol == "wood":
        assert settings.private is not None
        wood = [WoodClient(i, traders[i], stats, budgets[i]) for i in range(n)]
        try:
            await asyncio.wait_for(
                asyncio.gather(*(c.connect(*settings.private) for c in wood)), 10
            )
        except (OSError, TimeoutError) as e:
            raise ConnectionError(f"cannot connect to --private {settings.private}: {e}") from None
        readers = [asyncio.create_task(c.read()) for c in wood]
        start = time.perf_counter() + 0.01
        if interval is None:
            senders = [asyncio.create_task(c.send_window(settings.window, stop)) for c in wood]
        else:
            assert settings.rate is not None
            senders = [asyncio.create_task(send_scheduled(wood, settings.rate, start, stop))]
        await _until(senders, settings.duration, stop, settings.drain)
        deadline = time.perf_counter() + settings.drain
        while any(c.in_flight for c in wood) and time.perf_counter() < deadline:
            if all(r.done() for r in readers):
                break
            await asyncio.sleep(0.01)
        for c in wood:
            assert c.writer is not None
            c.writer.close()
        for r in readers:
            r.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    else:
        assert settings.url is not None
        host, port = _host_port(settings.url)
        https = [HttpConnection(host, port) for _ in range(n)]
        try:
            await asyncio.wait_for(asyncio.gather(*(h.connect() for h in https)), 10)
        except (OSError, TimeoutError) as e:
            raise ConnectionError(f"cannot connect to --url {settings.url}: {e}") from None
        rest = [RestClient(i, traders[i], stats, budgets[i], https[i]) for i in range(n)]
        start = time.perf_counter() + 0.01
        senders = [
            asyncio.create_task(
                c.run(interval, start + (i * interval / n if interval else 0), stop)
            )
            for i, c in enumerate(rest)
        ]
        await _until(senders, settings.duration, stop, settings.drain)
        for task in senders:
            if not task.cancelled() and task.exception() is not None:
                stats.errors.append(f"REST: {task.exception()!r}")
        for h in https:
            await h.close()
    return stats


async def _until(
    senders: list[asyncio.Task[None]], duration: float | None, stop: asyncio.Event, drain: float
) -> None:
    """Until the senders are done (``--orders``), ``duration`` passed or a stop is asked."""
    stopper = asyncio.ensure_future(stop.wait())
    waiting: set[asyncio.Future[Any]] = {stopper, *senders}
    deadline = None if duration is None else time.perf_counter() + duration
    while not all(s.done() for s in senders) and not stop.is_set():
        timeout = None if deadline is None else max(0.0, deadline - time.perf_counter())
        if timeout == 0.0:
            break
        await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiting = {w for w in waiting if not w.done()}
        for s in senders:
            if s.done() and not s.cancelled() and s.exception() is not None:
                stop.set()
                raise s.exception()  # type: ignore[misc]
    stop.set()
    stopper.cancel()
    _, late = await asyncio.wait(senders, timeout=drain)
    for task in late:
        task.cancel()
    await asyncio.gather(*senders, return_exceptions=True)


QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0))


def summary(settings: Settings, stats: Stats) -> dict[str, Any]:
    ordered = sorted(stats.latencies)
    elapsed = (
        (stats.last_ack - stats.first_send)
        if stats.last_ack is not None and stats.first_send is not None
        else 0.0
    )
    rate = lambda count: round(count / elapsed, 1) if elapsed > 0 else 0.0  # noqa: E731
    return {
        "protocol": settings.protocol,
        "connections": settings.connections,
        "rate": "max" if settings.rate is None else settings.rate,
        "window": settings.window if settings.rate is None and settings.protocol == "wood" else 1,
        "symbol": settings.symbol,
        "seconds": round(elapsed, 3),
        "sent": stats.sent,
        "acknowledged": stats.acked,
        "unacknowledged": stats.sent - stats.acked,
        "orders_sent": stats.orders_sent,
        "orders_accepted": stats.orders_acked,
        "orders_rejected": stats.orders_rejected,
        "cancels_sent": stats.cancels_sent,
        "cancels_done": stats.cancels_acked,
        "cancels_refused": stats.cancels_refused,
        "fill_reports": stats.fills,
        "behind_schedule": stats.behind,
        "acknowledged_per_s": rate(stats.acked),
        "orders_per_s": rate(stats.orders_acked + stats.orders_rejected),
        "latency_ms": (
            {name: round(percentile(ordered, q) * 1000, 3) for name, q in QUANTILES}
            if ordered
            else {}
        ),
        "latency_from": "the due time (open loop)" if settings.rate else "the write (closed loop)",
        "histogram_ms": [[b if b != math.inf else "inf", c] for b, c in histogram(ordered)],
        "errors": stats.errors[:20],
    }


def render(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    lines = [
        f"protocol {result['protocol']}, {result['connections']} connections, rate "
        f"{result['rate']}, {result['seconds']} s, symbol {result['symbol']}",
        f"sent {result['sent']} commands ({result['orders_sent']} orders, "
        f"{result['cancels_sent']} cancels); acknowledged {result['acknowledged']} "
        f"(orders accepted {result['orders_accepted']}, rejected {result['orders_rejected']}; "
        f"cancels done {result['cancels_done']}, refused {result['cancels_refused']}); "
        f"unacknowledged {result['unacknowledged']}",
        f"throughput: {result['acknowledged_per_s']:,.0f} acknowledged commands/s "
        f"({result['orders_per_s']:,.0f} new orders/s)",
    ]
    if result["behind_schedule"]:
        lines.append(
            f"behind schedule: {result['behind_schedule']} commands were due and never sent "
            "(every connection had one in flight): the target rate was not reached"
        )
    if lat:
        lines.append(
            f"latency ms (from {result['latency_from']}): "
            + " ".join(f"{k} {v:.3f}" for k, v in lat.items())
        )
        counts = [c for _, c in result["histogram_ms"]]
        top = max(counts) or 1
        total = sum(counts) or 1
        lines.append("histogram:")
        for bound, count in result["histogram_ms"]:
            if count:
                label = f"<= {bound} ms" if bound != "inf" else "> 5000 ms"
                bar = "#" * max(1, round(40 * count / top))
                lines.append(f"  {label:>12} {count:>9} {100 * count / total:6.2f}% {bar}")
    for error in result["errors"]:
        lines.append(f"error: {error}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Command line


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def _rate(text: str) -> float | None:
    return None if text == "max" else _positive_float(text)


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive decimal")
    return value


def _http_url(text: str) -> str:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - ValueError for a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(f"must be http://host:port, not {text!r}")
    return text.rstrip("/")


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def parse_args(argv: Sequence[str] | None) -> Settings:
    p = Parser(
        prog=PROG,
        component="exchange.load",
        description="Simulated traders against a running venue (Wood TCP or REST).",
    )
    p.add_argument("--url", type=_http_url, help="the venue's HTTP port: REST, and the start mid")
    p.add_argument("--private", type=_address, help="the venue's Wood order-entry port HOST:PORT")
    p.add_argument("--protocol", choices=("wood", "rest"), default="wood")
    p.add_argument("--connections", type=_positive_int, default=8, help="traders (%(default)s)")
    p.add_argument(
        "--rate", type=_rate, default=1000.0,
        help="commands per second over all connections, or max (%(default)s)",
    )  # fmt: skip
    end = p.add_mutually_exclusive_group()
    end.add_argument("--duration", type=_positive_float, help="seconds to send (default 10)")
    end.add_argument("--orders", type=_positive_int, help="commands to send in all")
    p.add_argument("--symbol", default="BTC-USDT", help="(%(default)s)")
    p.add_argument("--tick", type=_decimal, help="the symbol's tick (known for default symbols)")
    p.add_argument("--lot", type=_decimal, help="the symbol's lot (known for default symbols)")
    p.add_argument("--seed", type=int, default=1, help="(%(default)s)")
    p.add_argument(
        "--window", type=_positive_int, default=128,
        help="Wood, --rate max: commands in flight per connection (%(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--drain", type=_positive_float, default=10.0,
        help="seconds to wait for what is in flight at the end (%(default)s)",
    )  # fmt: skip
    p.add_argument("--json", type=Path, help="write the result as JSON here too")
    a = p.parse_args(argv)
    if a.protocol == "wood" and a.private is None:
        p.error("--protocol wood needs --private HOST:PORT")
    if a.protocol == "rest" and a.url is None:
        p.error("--protocol rest needs --url http://HOST:PORT")
    tick, lot = KNOWN.get(a.symbol, (None, None))
    tick, lot = a.tick or tick, a.lot or lot
    if tick is None or lot is None:
        p.error(f"--symbol {a.symbol} is not a default symbol: give --tick and --lot")
    if a.duration is None and a.orders is None:
        a.duration = 10.0
    return Settings(
        url=a.url, private=a.private, protocol=a.protocol, connections=a.connections,
        rate=a.rate, duration=a.duration, orders=a.orders, symbol=a.symbol, tick=tick, lot=lot,
        seed=a.seed, window=a.window, drain=a.drain, json_path=a.json,
    )  # fmt: skip


def run(settings: Settings) -> int:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        stats = runner.run(run_load(settings))
    result = summary(settings, stats)
    print(render(result), flush=True)
    if settings.json_path is not None:
        settings.json_path.write_text(json.dumps(result, indent=2) + "\n")
    lost = result["unacknowledged"]
    if lost or any("closed by the venue" in e or "REST:" in e for e in stats.errors):
        log.error("failed", unacknowledged=lost, errors=len(stats.errors))
        return 1
    log.info("done", acknowledged=result["acknowledged"], per_s=result["acknowledged_per_s"])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    return run_program("exchange.load", lambda: run(settings))


if __name__ == "__main__":
    sys.exit(main())
