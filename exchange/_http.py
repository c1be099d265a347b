"""The venue's HTTP port: the REST API (contract section 6), its OpenAPI documents, the websocket
feeds and the order-book page.

FastAPI generates OpenAPI 3 from the typed models below (``/api/schema``) and serves Swagger UI
(``/api/docs``) and ReDoc (``/api/redoc``) with their scripts and styles from the installed
``fastapi_offline`` package (``/api/static``): no CDN, nothing copied into the repository, so the
pages work with the network off.

The models document the shapes; the bodies are parsed and written by the venue itself, because
exactness needs it: a request's numbers are read as ``Decimal`` (a float would round
``0.1 + 0.2``), and prices and quantities leave as exact decimal JSON numbers
(:mod:`exchange._views`). Errors are ``{"error": "<reason>"}`` with 400 (malformed or invalid),
404 (unknown id or symbol) or 409 (the order is not open); a request body is at most
:data:`MAX_BODY` bytes.

Reads (``GET``) see the book as matched, which may run a group commit ahead of the disk; every
answer to a command (``POST``) waits for the commit that makes it durable.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import fastapi_offline
from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from exchange._feeds import Feeds
from exchange._journal import JournalWriteError
from exchange._model import Accepted, Cancel, OrderStatus, Rejected
from exchange._requests import parse_order
from exchange._sequencer import Sequencer, VenueStopped
from exchange._views import Views, dumps

MAX_BODY = 64 * 1024
MAX_TRADES = 1000
STATUS = {"invalid": 400, "unknown": 404, "not_open": 409}
PAGE = Path(__file__).with_name("page")

Number = float | str
Status = Literal["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED"]


class OrderRequest(BaseModel):
    """A new order. Numbers as JSON numbers or decimal strings; ``price`` for LIMIT only."""

    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(examples=["BTC-USDT"])
    side: Literal["BUY", "SELL"]
    quantity: Number = Field(examples=["0.0100"])
    type: Literal["LIMIT", "MARKET"] = "LIMIT"
    time_in_force: Literal["GTC", "IOC", "FOK"] = "GTC"
    price: Number | None = Field(default=None, examples=["100.25"])
    client_order_id: str | None = Field(default=None, min_length=1, max_length=64)


class FillOut(BaseModel):
    trade_id: int
    price: float
    quantity: float
    liquidity: Literal["TAKER", "MAKER"]


class OrderOut(BaseModel):
    id: int
    client_order_id: str | None
    symbol: str
    side: Literal["BUY", "SELL"]
    type: Literal["LIMIT", "MARKET"]
    time_in_force: Literal["GTC", "IOC", "FOK"]
    price: float | None
    quantity: float
    remaining: float
    status: Status
    created_at: str = Field(examples=["2026-11-28T21:07:35.123456Z"])
    fills: list[FillOut]


class TradeOut(BaseModel):
    trade_id: int
    symbol: str
    price: float
    quantity: float
    maker_order_id: int
    taker_order_id: int
    aggressor_side: Literal["BUY", "SELL"]
    time: str


Level = Annotated[list[float], Field(min_length=2, max_length=2, description="[price, quantity]")]


class BookOut(BaseModel):
    symbol: str
    bids: list[Level]
    asks: list[Level]


class StateOut(BaseModel):
    orders: list[OrderOut]
    trades: list[TradeOut]


class ErrorOut(BaseModel):
    error: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in codes}


def _json(value: Any, status: int = 200) -> Response:
    return Response(dumps(value), status, media_type="application/json")


def _error(reason: str, status: int) -> Response:
    return _json({"error": reason}, status)


def create_app(sequencer: Sequencer, views: Views, feeds: Feeds) -> FastAPI:
    """The HTTP application over one running venue."""
    app = FastAPI(
        title="quote-replay venue",
        version="1",
        summary="A price-time matching venue (contract section 6)",
        openapi_url="/api/schema",
        docs_url=None,
        redoc_url=None,
    )
    static = Path(fastapi_offline.__file__).with_name("static")
    app.mount("/api/static", StaticFiles(directory=static), name="static")
    if PAGE.is_dir():
        app.mount("/page", StaticFiles(directory=PAGE), name="page")

    def matcher() -> Any:
        return sequencer.venue.matcher

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        response = _error(str(exc.detail), exc.status_code)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # Allow: every method of every route on this path
            path = request.url.path
            methods = {
                method
                for route in app.routes
                if isinstance(route, APIRoute) and route.path_regex.match(path)
                for method in route.methods or ()
            }
            response.headers["Allow"] = ", ".join(sorted(methods))
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(f"{where}: {first.get('msg', 'invalid')}", 400)

    @app.get("/api/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api/schema",
            title="venue: API",
            swagger_js_url="/api/static/swagger-ui-bundle.js",
            swagger_css_url="/api/static/swagger-ui.css",
            swagger_favicon_url="/api/static/favicon.png",
        )

    @app.get("/api/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/api/schema",
            title="venue: API",
            redoc_js_url="/api/static/redoc.standalone.js",
            redoc_favicon_url="/api/static/favicon.png",
            with_google_fonts=False,
        )

    @app.post(
        "/api/orders",
        status_code=201,
        response_model=OrderOut,
        responses=_errors(400, 404),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": OrderRequest.model_json_schema()}},
            }
        },
        summary="Place an order; the answer is the order after matching, once durable",
    )
    async def place(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(f"request body over {MAX_BODY} bytes", 400)
        try:
            data = json.loads(body, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            return _error("the body is not JSON", 400)
        if not isinstance(data, dict):
            return _error("the body must be a JSON object", 400)
        command = parse_order(data, views.symbols)
        if isinstance(command, Rejected):
            return _error(command.reason, STATUS[command.code])
        return await _run(command, 201)

    async def _run(command: Any, status: int) -> Response:
        try:
            events, durable = sequencer.submit(command)
        except VenueStopped as e:
            return _error(str(e), 503)
        first = events[0]
        if isinstance(first, Rejected):
            return _error(first.reason, STATUS[first.code])
        assert isinstance(first, Accepted | OrderStatus)  # a place, or a cancel
        order_id = first.order_id
        answer = views.order(matcher().orders[order_id])  # the order right after its command
        try:
            await durable
        except (JournalWriteError, VenueStopped) as e:
            return _error(f"not accepted: {e}", 503)
        return _json(answer, status)

    @app.post(
        "/api/orders/{order_id}/cancel",
        response_model=OrderOut,
        responses=_errors(400, 404, 409),
        summary="Cancel an open order",
    )
    async def cancel(order_id: int) -> Response:
        return await _run(Cancel(order_id), 200)

    @app.get("/api/orders/{order_id}", response_model=OrderOut, responses=_errors(400, 404))
    async def get_order(order_id: int) -> Response:
        order = matcher().orders.get(order_id)
        if order is None:
            return _error(f"unknown order {order_id}", 404)
        return _json(views.order(order))

    @app.get("/api/orders", response_model=list[OrderOut], responses=_errors(400, 404))
    async def list_orders(
        symbol: str | None = None, status: Literal["open", "all"] = "open"
    ) -> Response:
        if symbol is not None and symbol not in views.symbols:
            return _error(f"unknown symbol {symbol!r}", 404)
        orders = matcher().orders.values()
        chosen = [
            o
            for o in orders
            if (symbol is None or o.symbol == symbol) and (status == "all" or o.is_open)
        ]
        return _json([views.order(o) for o in chosen])

    @app.get("/api/book/{symbol}", response_model=BookOut, responses=_errors(400, 404))
    async def book(symbol: str, depth: int = Query(10, ge=1, le=1000)) -> Response:
        if symbol not in views.symbols:
            return _error(f"unknown symbol {symbol!r}", 404)
        b = matcher().books[symbol]
        return _json({
            "symbol": symbol,
            "bids": views.levels(symbol, b.bids.depth(depth)),
            "asks": views.levels(symbol, b.asks.depth(depth)),
        })  # fmt: skip

    @app.get("/api/trades", response_model=list[TradeOut], responses=_errors(400, 404))
    async def trades(
        symbol: str | None = None,
        after: int = Query(0, ge=0),
        limit: int = Query(100, ge=1, le=MAX_TRADES),
    ) -> Response:
        if symbol is not None and symbol not in views.symbols:
            return _error(f"unknown symbol {symbol!r}", 404)
        out = []
        for t in matcher().trades[after:]:  # trade ids are 1, 2, 3...: id n sits at n - 1
            if symbol is None or t.symbol == symbol:
                out.append(views.trade(t))
                if len(out) == limit:
                    break
        return _json(out)

    @app.get("/api/debug/state", response_model=StateOut)
    async def debug_state() -> Response:
        m = matcher()
        return _json({
            "orders": [views.order(o) for o in m.orders.values()],
            "trades": [views.trade(t) for t in m.trades],
        })  # fmt: skip

    @app.websocket("/ws/quotes")
    async def ws_quotes(ws: WebSocket) -> None:
        await feeds.quotes.serve(ws)

    @app.websocket("/ws/market")
    async def ws_market(ws: WebSocket) -> None:
        await feeds.market.serve(ws)

    @app.get("/", include_in_schema=False, response_model=None)
    async def page() -> Response:
        index = PAGE / "index.html"
        if not index.exists():
            return HTMLResponse("<p>The order-book page is not built yet: see /api/docs</p>")
        return FileResponse(index)

    return app
