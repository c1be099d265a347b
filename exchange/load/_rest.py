"""The minimal HTTP/1.1 keep-alive client and the REST trader client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from exchange.load._stats import Stats
from exchange.load._traders import TICK, Trader


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
