"""The venue's vocabulary: commands in, events out, and the order they act on.

Everything here is a value in exact integers: a price is a count of the symbol's ticks, a quantity
a count of its lots, a time nanoseconds since the epoch (the receive time the caller recorded;
the book has no clock). Decimals exist only at the edges (:mod:`exchange._symbols`).

Commands and events are named tuples: cheap to build on the matching path, compared and printed
field by field, so "the same commands give the same events, byte for byte" is checked with
``repr``.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Side = Literal["BUY", "SELL"]
OrderType = Literal["LIMIT", "MARKET"]
TimeInForce = Literal["GTC", "IOC", "FOK"]
Status = Literal["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED"]
Liquidity = Literal["MAKER", "TAKER"]
BookSide = Literal["bid", "ask"]

SIDES: tuple[Side, ...] = ("BUY", "SELL")
ORDER_TYPES: tuple[OrderType, ...] = ("LIMIT", "MARKET")
TIMES_IN_FORCE: tuple[TimeInForce, ...] = ("GTC", "IOC", "FOK")
OPEN: frozenset[str] = frozenset({"NEW", "PARTIALLY_FILLED"})
"""The statuses of an order that rests in the book; only these can be cancelled."""


# -- commands ---------------------------------------------------------------------------------


class Place(NamedTuple):
    """Place an order. ``price`` in ticks (None for MARKET), ``quantity`` in lots."""

    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    price: int | None
    quantity: int
    client_order_id: str | None = None


class Cancel(NamedTuple):
    """Cancel the open order ``order_id``."""

    order_id: int


Command = Place | Cancel


# -- events -----------------------------------------------------------------------------------

RejectCode = Literal["invalid", "unknown", "not_open"]
"""Why a command was refused: malformed or invalid (HTTP 400), an unknown order or symbol (404),
an order that is no longer open (409)."""


class Rejected(NamedTuple):
    """The command changed nothing and used no id."""

    code: RejectCode
    reason: str
    order_id: int | None = None


class Accepted(NamedTuple):
    """An order was accepted and numbered; it is matched next."""

    order_id: int
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    price: int | None
    quantity: int
    client_order_id: str | None
    time: int


class Trade(NamedTuple):
    """One execution, at the maker's price."""

    trade_id: int
    symbol: str
    price: int
    quantity: int
    maker_order_id: int
    taker_order_id: int
    aggressor_side: Side
    time: int


class OrderStatus(NamedTuple):
    """An order's new status and what is left of it (``quantity`` minus its fills)."""

    order_id: int
    status: Status
    remaining: int


class LevelChanged(NamedTuple):
    """The total resting at one price after the command (0: the level is gone)."""

    symbol: str
    side: BookSide
    price: int
    quantity: int


class TopChanged(NamedTuple):
    """A symbol's best bid or best ask changed in price or quantity (0 for an empty side)."""

    symbol: str
    bid_price: int
    bid_quantity: int
    ask_price: int
    ask_quantity: int


Event = Rejected | Accepted | Trade | OrderStatus | LevelChanged | TopChanged


class Fill(NamedTuple):
    """One trade as one of its orders sees it."""

    trade_id: int
    price: int
    quantity: int
    liquidity: Liquidity


class Order:
    """An order as the venue keeps it, for as long as the venue runs (closed ones included).

    ``remaining`` is always ``quantity`` minus the fills; ``fills`` is None until the first.
    """

    __slots__ = (
        "client_order_id",
        "created_at",
        "fills",
        "id",
        "price",
        "quantity",
        "remaining",
        "side",
        "status",
        "symbol",
        "time_in_force",
        "type",
    )

    def __init__(
        self,
        order_id: int,
        symbol: str,
        side: Side,
        type_: OrderType,
        time_in_force: TimeInForce,
        price: int | None,
        quantity: int,
        client_order_id: str | None,
        created_at: int,
    ) -> None:
        self.id = order_id
        self.symbol = symbol
        self.side = side
        self.type = type_
        self.time_in_force = time_in_force
        self.price = price
        self.quantity = quantity
        self.remaining = quantity
        self.status: Status = "NEW"
        self.client_order_id = client_order_id
        self.created_at = created_at
        self.fills: list[Fill] | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def __repr__(self) -> str:
        return (
            f"Order(id={self.id}, {self.symbol} {self.side} {self.type} {self.time_in_force}"
            f" price={self.price} quantity={self.quantity} remaining={self.remaining}"
            f" status={self.status})"
        )
