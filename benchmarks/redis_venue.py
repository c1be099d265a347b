"""The seeds' design for the order path, as a service: one HTTP request per order to a small
FastAPI/uvicorn app whose book lives in Redis (:class:`benchmarks.peer_books.RedisBook`: sorted
sets per side, a hash per order, one round trip per step).

``python -m benchmarks.redis_venue --redis-url redis://127.0.0.1:PORT/0 [--port 0]`` logs
``listening http=<port>`` and serves the slice of the REST API that ``exchange.load --protocol
rest`` uses: ``POST /api/orders`` (201 with ``id``, ``status``, ``time_in_force``, ``fills``),
``POST /api/orders/{id}/cancel`` (200, or 409 when the order is not open, 404 unknown) and
``GET /api/book/{symbol}`` (empty: the load generator then starts from 100.00). Requests are
parsed exactly as the venue parses them (``exchange._requests.parse_order``) and the handlers call
the synchronous Redis client on the event loop, so matching is one command at a time, as the book
needs. Only BTC-USDT (tick 0.01, lot 0.0001). A benchmark contender, not a product.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from decimal import Decimal
from typing import Any

import redis
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from benchmarks.peer_books import RedisBook
from common.cli import loop_factory
from common.log import get_logger
from exchange import Cancel, Rejected, parse_order, parse_symbols

SYMBOLS = parse_symbols("BTC-USDT:0.01:0.0001")
log = get_logger("redis_venue")


def create_app(client: Any) -> FastAPI:
    book = RedisBook(client)
    app = FastAPI()

    @app.post("/api/orders", status_code=201)
    async def place(request: Request) -> Response:
        try:
            data = json.loads(await request.body(), parse_float=Decimal)
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, 400)
        command = parse_order(data, SYMBOLS) if isinstance(data, dict) else None
        if command is None or isinstance(command, Rejected):
            reason = command.reason if command else "the body must be a JSON object"
            return JSONResponse({"error": reason}, 400)
        trades = book.apply(command, time.time_ns())
        order_id = int(client.get("next_order_id"))
        status = client.hget(f"order:{order_id}", "status").decode()
        fills = [{"trade_id": t[0], "price": t[1], "quantity": t[2]} for t in trades]
        return JSONResponse(
            {"id": order_id, "client_order_id": command.client_order_id, "status": status,
             "time_in_force": command.time_in_force, "fills": fills},
            201,
        )  # fmt: skip

    @app.post("/api/orders/{order_id}/cancel")
    async def cancel(order_id: int) -> Response:
        before = client.hget(f"order:{order_id}", "status")
        if before is None:
            return JSONResponse({"error": f"unknown order {order_id}"}, 404)
        if before not in (b"NEW", b"PARTIALLY_FILLED"):
            return JSONResponse({"error": f"order {order_id} is not open"}, 409)
        book.apply(Cancel(order_id), time.time_ns())
        return JSONResponse({"id": order_id, "status": "CANCELED"})

    @app.get("/api/book/{symbol}")
    async def depth(symbol: str) -> Response:
        return JSONResponse({"symbol": symbol, "bids": [], "asks": []})

    return app


async def serve(port: int, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    config = uvicorn.Config(create_app(client), log_level="warning", access_log=False,
                            lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    log.info("listening", http=sock.getsockname()[1])
    await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(args.port, args.redis_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
