"""``python -m exchange.check [--url http://127.0.0.1:8000]``: the venue's end-to-end invariants.

Reads ``/api/debug/state`` (every order, every trade) and checks, with exact decimals:

- ids: orders numbered 1..n and trades 1..m, no gap, no repeat;
- each order: 0 <= remaining <= quantity; quantity = remaining + the sum of its fills; FILLED
  means remaining 0; an open order (NEW, PARTIALLY_FILLED) has a price (it rests);
- each trade: its maker and taker exist, trade the same symbol on opposite sides, and both list
  the trade among their fills; the price is the maker's price and within both orders' limits;
  the aggressor is the taker's side;
- no crossed book: each symbol's best open bid is below its best open ask;
- FIFO: an order at a price never traded as maker while an older order of the same side and
  price that still rests (or rested after that trade) waited.

Exit 0 when all hold; 1 listing each violation (one line each); 2 when the venue cannot be read.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from common.cli import Parser, UsageError, run_program
from common.log import get_logger

PROG = "python -m exchange.check"
OPEN = ("NEW", "PARTIALLY_FILLED")
log = get_logger("check")


def violations(state: dict[str, Any]) -> list[str]:
    """Every broken invariant of a ``/api/debug/state`` document, as one line each."""
    orders = {o["id"]: o for o in state["orders"]}
    trades = state["trades"]
    out: list[str] = []
    if sorted(orders) != list(range(1, len(orders) + 1)):
        out.append("order ids are not 1..n without gaps")
    if [t["trade_id"] for t in trades] != list(range(1, len(trades) + 1)):
        out.append("trade ids are not 1..m in order without gaps")
    fills_of: dict[int, dict[int, Decimal]] = {}
    for o in orders.values():
        qty, rem = o["quantity"], o["remaining"]
        fills = {f["trade_id"]: f["quantity"] for f in o["fills"]}
        fills_of[o["id"]] = fills
        if not 0 <= rem <= qty:
            out.append(f"order {o['id']}: remaining {rem} outside [0, {qty}]")
        if qty != rem + sum(fills.values(), Decimal(0)):
            out.append(f"order {o['id']}: quantity {qty} != remaining {rem} + filled")
        if o["status"] == "FILLED" and rem != 0:
            out.append(f"order {o['id']}: FILLED with remaining {rem}")
        if o["status"] in OPEN and o["price"] is None:
            out.append(f"order {o['id']}: open without a price")
    for t in trades:
        tid, maker, taker = (
            t["trade_id"],
            orders.get(t["maker_order_id"]),
            orders.get(t["taker_order_id"]),
        )
        if maker is None or taker is None:
            out.append(f"trade {tid}: maker or taker order does not exist")
            continue
        if maker["symbol"] != t["symbol"] or taker["symbol"] != t["symbol"]:
            out.append(f"trade {tid}: orders of another symbol")
        if maker["side"] == taker["side"]:
            out.append(f"trade {tid}: maker and taker on the same side")
        if t["aggressor_side"] != taker["side"]:
            out.append(f"trade {tid}: aggressor {t['aggressor_side']} is not the taker's side")
        if (
            fills_of[maker["id"]].get(tid) != t["quantity"]
            or fills_of[taker["id"]].get(tid) != t["quantity"]
        ):
            out.append(f"trade {tid}: not among both orders' fills with its quantity")
        price = t["price"]
        if price != maker["price"]:
            out.append(f"trade {tid}: price {price} is not the maker's {maker['price']}")
        limit = taker["price"]
        if limit is not None and (price > limit if taker["side"] == "BUY" else price < limit):
            out.append(f"trade {tid}: price {price} beyond the taker's limit {limit}")
    best: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for o in orders.values():
        if o["status"] in OPEN and o["price"] is not None:
            side = best[o["symbol"]]
            key = "bid" if o["side"] == "BUY" else "ask"
            better = max if key == "bid" else min
            side[key] = better(side.get(key, o["price"]), o["price"])
    for symbol, sides in best.items():
        if "bid" in sides and "ask" in sides and sides["bid"] >= sides["ask"]:
            out.append(f"{symbol}: crossed book, bid {sides['bid']} >= ask {sides['ask']}")
    out += _fifo(orders)
    return out


def _fifo(orders: dict[int, dict[str, Any]]) -> list[str]:
    out = []
    at_price: dict[tuple[str, str, Decimal], list[dict[str, Any]]] = defaultdict(list)
    for o in sorted(orders.values(), key=lambda o: o["id"]):
        if o["price"] is not None and o["type"] == "LIMIT" and o["time_in_force"] == "GTC":
            at_price[(o["symbol"], o["side"], o["price"])].append(o)
    for group in at_price.values():
        for i, newer in enumerate(group):
            maker_trades = [f["trade_id"] for f in newer["fills"] if f["liquidity"] == "MAKER"]
            if not maker_trades:
                continue
            first = min(maker_trades)
            for older in group[:i]:
                later = [f["trade_id"] for f in older["fills"]
                         if f["liquidity"] == "MAKER" and f["trade_id"] > first]  # fmt: skip
                if older["status"] in OPEN or later:
                    out.append(
                        f"FIFO: order {newer['id']} traded as maker (trade {first}) while the "
                        f"older order {older['id']} at the same price waited"
                    )
                    break
    return out


def fetch_state(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/api/debug/state", timeout=60) as r:
            state: dict[str, Any] = json.loads(r.read(), parse_float=Decimal, parse_int=Decimal)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise UsageError(f"--url {url}: cannot read /api/debug/state: {e}") from None
    for o in state["orders"]:
        o["id"] = int(o["id"])
        for f in o["fills"]:
            f["trade_id"] = int(f["trade_id"])
    for t in state["trades"]:
        for key in ("trade_id", "maker_order_id", "taker_order_id"):
            t[key] = int(t[key])
    return state


def main(argv: Sequence[str] | None = None) -> int:
    p = Parser(prog=PROG, component="check", description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the venue (%(default)s)")
    args = p.parse_args(argv)

    def body() -> int:
        state = fetch_state(args.url)
        found = violations(state)
        for line in found:
            print(line)
        log.info("checked", orders=len(state["orders"]), trades=len(state["trades"]),
                 violations=len(found))  # fmt: skip
        return 1 if found else 0

    return run_program("check", body)


if __name__ == "__main__":
    sys.exit(main())
