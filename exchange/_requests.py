"""An order request as it arrives (JSON values) -> a :class:`Place` command, or why not.

Every interface (REST, the Wood protocol, tests) goes through :func:`parse_order`, so an off-tick
price or a wrong type is refused the same way everywhere, before it reaches the book: nothing
changes and no id is used.

>>> from exchange._symbols import parse_symbols
>>> symbols = parse_symbols("BTC-USDT:0.01:0.0001")
>>> parse_order({"symbol": "BTC-USDT", "side": "BUY", "price": "100.5", "quantity": 1}, symbols)
Place(symbol='BTC-USDT', side='BUY', type='LIMIT', time_in_force='GTC', price=10050, \
quantity=10000, client_order_id=None)
>>> parse_order({"symbol": "BTC-USDT", "side": "BUY", "quantity": 1}, symbols)
Rejected(code='invalid', reason='a LIMIT order needs a price', order_id=None)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exchange._model import ORDER_TYPES, SIDES, TIMES_IN_FORCE, Place, Rejected
from exchange._symbols import NumberError, Symbol

FIELDS = frozenset(
    {"symbol", "side", "quantity", "type", "time_in_force", "price", "client_order_id"}
)
MAX_CLIENT_ORDER_ID = 64


def _choice(
    request: Mapping[str, Any], key: str, allowed: tuple[str, ...], default: str | None
) -> str:
    value = request.get(key, default)
    if value is None:
        raise NumberError(f"{key} is required")
    if value not in allowed:
        raise NumberError(f"{key} must be {' or '.join(allowed)}, not {value!r}")
    return str(value)


def parse_order(request: Mapping[str, Any], symbols: Mapping[str, Symbol]) -> Place | Rejected:
    """The command ``request`` asks for, or the reason it is refused."""
    unknown = sorted(set(request) - FIELDS)
    if unknown:
        return Rejected("invalid", f"unknown field {unknown[0]!r}")
    name = request.get("symbol")
    if not isinstance(name, str):
        return Rejected("invalid", "symbol must be a string")
    symbol = symbols.get(name)
    if symbol is None:
        return Rejected("unknown", f"unknown symbol {name!r}")
    client_order_id = request.get("client_order_id")
    if client_order_id is not None and (
        not isinstance(client_order_id, str)
        or not 0 < len(client_order_id) <= MAX_CLIENT_ORDER_ID
        or not client_order_id.isprintable()
    ):
        return Rejected(
            "invalid",
            f"client_order_id must be a printable string of 1 to {MAX_CLIENT_ORDER_ID} characters",
        )
    try:
        side = _choice(request, "side", SIDES, None)
        type_ = _choice(request, "type", ORDER_TYPES, "LIMIT")
        tif = _choice(request, "time_in_force", TIMES_IN_FORCE, "GTC")
        quantity = symbol.lots(request.get("quantity")) if "quantity" in request else None
        if quantity is None:
            raise NumberError("quantity is required")
        price: int | None = None
        if type_ == "LIMIT":
            if request.get("price") is None:
                raise NumberError("a LIMIT order needs a price")
            price = symbol.ticks(request["price"])
        elif request.get("price") is not None:
            raise NumberError("a MARKET order takes no price")
    except NumberError as e:
        return Rejected("invalid", str(e))
    if type_ == "MARKET" and tif == "GTC":
        tif = "IOC"
    return Place(name, side, type_, tif, price, quantity, client_order_id)  # type: ignore[arg-type]
