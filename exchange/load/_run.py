"""The run: settings, the reference mid, the traders on their connections until the end."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common.cli import UsageError
from exchange.load._rest import HttpConnection, RestClient
from exchange.load._stats import Stats
from exchange.load._traders import DEFAULT_MID, Market, Trader, log
from exchange.load._wood import WoodClient, send_scheduled


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
