"""The Wood TCP client (pipelined orders, reports) and the open-loop sender."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from exchange.load._stats import Stats
from exchange.load._traders import TICK, Trader


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
