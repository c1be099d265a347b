"""The traders: a market of tick and lot, and each trader's seeded mix of commands."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

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
