"""The Wood protocol (contract section 6): TCP, UTF-8, one JSON object per line.

Private port (order entry): ``createOrder``, ``marketOrder``, ``cancelOrder`` in; execution
reports (``NEW``, ``FILL``, ``CANCELED``) and ``{"error": ...}`` lines out. ``orderId`` is the
client's own, unique among its connection's orders; the venue numbers orders its own way and
keeps the mapping. Orders of a closed connection stay in the book (their reports go nowhere).

Public port (market data): for every command, its trades, then each price level it changed.

Limits and hostile clients: a line longer than :data:`MAX_LINE` (64 KiB) is answered with an
error and the connection is closed; a line that is not JSON, a message of the wrong shape or an
unknown message gets an error and the connection goes on. A client that does not read what the
venue writes is closed once :data:`MAX_BUFFERED` (8 MiB) waits in its send buffer: matching
never waits for it, and its buffer never grows beyond that. An idle connection costs its socket
and a small object.

:func:`parse_private` is the protocol's parsing, pure (tested without sockets); the classes are
the I/O around it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

from exchange._model import (
    Accepted,
    Cancel,
    LevelChanged,
    OrderStatus,
    Place,
    Rejected,
    Trade,
)
from exchange._requests import parse_order
from exchange._sequencer import Published, Sequencer, VenueStopped
from exchange._symbols import Symbol
from exchange._views import Views, dumps, epoch_seconds

MAX_LINE = 64 * 1024
MAX_BUFFERED = 8 * 1024 * 1024
log = logging.getLogger("exchange.wood")
_ids = itertools.count(1)


def parse_private(line: bytes, default_symbol: str) -> tuple[str, int | None, Any]:
    """One private-port line -> ``("order", orderId, request)``, ``("cancel", orderId, None)``
    or ``("error", orderId or None, reason)``.

    >>> parse_private(b'{"message":"cancelOrder","orderId":7}', "BTC-USDT")
    ('cancel', 7, None)
    >>> parse_private(b'{"message":"marketOrder","orderId":1,"side":"BUY","quantity":0.5}', "X")
    ... # doctest: +NORMALIZE_WHITESPACE
    ('order', 1, {'symbol': 'X', 'side': 'BUY', 'type': 'MARKET', 'quantity': Decimal('0.5'),
                  'client_order_id': '1'})
    >>> parse_private(b'{"message":"hello"}', "X")
    ('error', None, "unknown message 'hello'")
    """
    try:
        message = json.loads(line, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        return "error", None, "not a JSON object"
    if not isinstance(message, dict):
        return "error", None, "not a JSON object"
    kind = message.get("message")
    order_id = message.get("orderId")
    if kind not in ("createOrder", "marketOrder", "cancelOrder"):
        return "error", None, f"unknown message {kind!r}" if kind else "no message field"
    if type(order_id) is not int:
        return "error", None, "orderId must be an integer"
    known = {"message", "orderId"}
    if kind == "cancelOrder":
        extra = set(message) - known
        if extra:
            return "error", order_id, f"unknown field {sorted(extra)[0]!r}"
        return "cancel", order_id, None
    allowed = (
        known | {"side", "quantity", "symbol"} | ({"price"} if kind == "createOrder" else set())
    )
    extra = set(message) - allowed
    if extra:
        return "error", order_id, f"unknown field {sorted(extra)[0]!r}"
    request: dict[str, Any] = {
        "symbol": message.get("symbol", default_symbol),
        "side": message.get("side"),
        "type": "LIMIT" if kind == "createOrder" else "MARKET",
    }
    if kind == "createOrder":
        request["price"] = message.get("price")
    request["quantity"] = message.get("quantity")
    request["client_order_id"] = str(order_id)
    return "order", order_id, request


class _Connection:
    """One TCP client: its writer and, on the private port, its orders."""

    __slots__ = ("closed", "id", "orders", "peer", "used", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.id = next(_ids)
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.orders: dict[int, int] = {}  # the client's orderId -> the venue's id, while open
        self.used: set[int] = set()  # every orderId of an accepted order
        self.closed = False

    def send(self, line: str) -> None:
        """Queue one line; a client that stopped reading is closed (see the module's notes)."""
        if self.closed:
            return
        transport = self.writer.transport
        if transport.is_closing():
            self.closed = True
            return
        self.writer.write(line.encode() + b"\n")
        if transport.get_write_buffer_size() > MAX_BUFFERED:
            log.warning(
                "client not reading: disconnected",
                extra={"fields": {"peer": self.peer, "buffered_bytes": MAX_BUFFERED}},
            )
            self.closed = True
            transport.abort()


async def _lines(reader: asyncio.StreamReader, conn: _Connection) -> AsyncIterator[bytes]:
    """The lines a client sends, until it goes or sends one over :data:`MAX_LINE`."""
    while not conn.closed:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as e:
            if e.partial.strip():
                yield e.partial
            return
        except asyncio.LimitOverrunError:
            log.warning("line too long: disconnected", extra={"fields": {"peer": conn.peer}})
            conn.send(dumps({"error": f"line longer than {MAX_LINE} bytes"}))
            return
        except ConnectionError:
            return
        if line.strip():
            yield line


class _Port:
    """A Wood port: its connections, each read line by line; durable batches published."""

    def __init__(self, sequencer: Sequencer, views: Views) -> None:
        self.sequencer = sequencer
        self.views = views
        self.connections: set[_Connection] = set()
        sequencer.listeners.append(self.publish)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(writer)
        self.connections.add(conn)
        try:
            async for line in _lines(reader, conn):
                self._line(conn, line)
        finally:
            self.connections.discard(conn)
            conn.closed = True
            writer.close()

    def _line(self, conn: _Connection, line: bytes) -> None:
        """One line from a client (the public port ignores what clients send)."""

    def publish(self, batch: list[Published]) -> None:
        raise NotImplementedError


class WoodPrivate(_Port):
    """The order-entry port."""

    def __init__(self, sequencer: Sequencer, symbols: Mapping[str, Symbol], views: Views) -> None:
        super().__init__(sequencer, views)
        self.symbols = symbols
        self.default_symbol = next(iter(symbols))
        self.owners: dict[int, tuple[_Connection, int]] = {}  # venue id -> (connection, orderId)

    def _line(self, conn: _Connection, line: bytes) -> None:
        kind, order_id, detail = parse_private(line, self.default_symbol)
        if kind == "error":
            conn.send(dumps({"error": detail} if order_id is None else
                            {"error": detail, "orderId": order_id}))  # fmt: skip
            return
        assert order_id is not None
        if kind == "cancel":
            venue_id = conn.orders.get(order_id)
            if venue_id is None:
                why = "is not open" if order_id in conn.used else "is unknown"
                conn.send(dumps({"error": f"order {order_id} {why}", "orderId": order_id}))
                return
            self._submit(conn, order_id, Cancel(venue_id))
            return
        if order_id in conn.used:
            conn.send(dumps({"error": f"orderId {order_id} is already used", "orderId": order_id}))
            return
        command = parse_order(detail, self.symbols)
        if type(command) is Rejected:
            conn.send(dumps({"error": command.reason, "orderId": order_id}))
            return
        assert type(command) is Place
        events = self._submit(conn, order_id, command)
        if events and type(events[0]) is Accepted:
            conn.orders[order_id] = events[0].order_id
            conn.used.add(order_id)

    def _submit(self, conn: _Connection, order_id: int, command: Any) -> list[Any]:
        try:
            events, durable = self.sequencer.submit(command, conn)
        except VenueStopped as e:
            conn.send(dumps({"error": str(e), "orderId": order_id}))
            return []
        if type(events[0]) is Rejected:
            conn.send(dumps({"error": events[0].reason, "orderId": order_id}))
            return events
        durable.add_done_callback(lambda f: self._failed(conn, order_id, f))
        return events

    @staticmethod
    def _failed(conn: _Connection, order_id: int, future: asyncio.Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            conn.send(dumps({"error": f"not accepted: {error}", "orderId": order_id}))

    def publish(self, batch: list[Published]) -> None:
        """Execution reports for the durable commands, to the connection of each order: the
        lines of one group commit leave each connection in one write."""
        owners, views = self.owners, self.views
        out: dict[_Connection, list[str]] = {}
        for pub in batch:
            for event in pub.events:
                if isinstance(event, Accepted):
                    origin = pub.origin
                    if isinstance(origin, _Connection) and event.client_order_id is not None:
                        client_id = int(event.client_order_id)
                        owners[event.order_id] = (origin, client_id)
                        out.setdefault(origin, []).append(_report(client_id, "NEW"))
                elif isinstance(event, Trade):
                    for venue_id in (event.maker_order_id, event.taker_order_id):
                        owner = owners.get(venue_id)
                        if owner is not None:
                            price = views.price(event.symbol, event.price)
                            quantity = views.quantity(event.symbol, event.quantity)
                            out.setdefault(owner[0], []).append(
                                _report(owner[1], "FILL", price, quantity)
                            )
                elif isinstance(event, OrderStatus) and event.status in _CLOSED:
                    owner = owners.pop(event.order_id, None)
                    if owner is not None:
                        conn, client_id = owner
                        conn.orders.pop(client_id, None)
                        if event.status != "FILLED":  # cancelled, or an expired remainder
                            out.setdefault(conn, []).append(_report(client_id, "CANCELED"))
        for conn, lines in out.items():
            conn.send("\n".join(lines))


_CLOSED = frozenset({"FILLED", "CANCELED", "EXPIRED"})


def _report(order_id: int, report: str, price: Any = None, quantity: Any = None) -> str:
    """An execution report line (built directly: it is the hottest text the venue writes).

    >>> _report(7, "FILL", "100.5", "0.003")
    '{"message":"executionReport","orderId":7,"report":"FILL","price":100.5,"quantity":0.003}'
    """
    head = f'{{"message":"executionReport","orderId":{order_id},"report":"{report}"'
    if price is None:
        return head + "}"
    return f'{head},"price":{price},"quantity":{quantity}}}'



class WoodPublic(_Port):
    """The market-data port: every command's trades, then its changed levels."""

    def publish(self, batch: list[Published]) -> None:
        if not self.connections:
            return
        views = self.views
        lines: list[str] = []
        for pub in batch:
            levels = []
            for event in pub.events:
                if isinstance(event, Trade):
                    s = event.symbol
                    lines.append(dumps({
                        "type": "trade", "symbol": s, "time": epoch_seconds(event.time),
                        "price": views.price(s, event.price),
                        "quantity": views.quantity(s, event.quantity),
                    }))  # fmt: skip
                elif isinstance(event, LevelChanged):
                    levels.append(event)
            for level in levels:
                s = level.symbol
                lines.append(dumps({
                    "type": "orderbook", "symbol": s, "side": level.side,
                    "price": views.price(s, level.price),
                    "quantity": views.quantity(s, level.quantity),
                }))  # fmt: skip
        if not lines:
            return
        text = "\n".join(lines)
        for conn in list(self.connections):
            conn.send(text)
