"""Venue adapters for live mode: a real venue's top-of-book channel read as quotes.

Each adapter is a sans-I/O protocol object (``engine.venues._base.Adapter``): the messages to
send on connect (subscriptions) and as heartbeats, and a frame in → quotes, rejects, replies
and notes out. ``engine.live`` does the socket work around whichever one ``--live-format``
names. One module per venue, each citing the documentation page its messages follow; and
their server side (``_emulate``: :class:`Emulation`), which ``python -m engine.feed --as
FORMAT`` speaks so that every format can be tried without a network:

========================  ==========================================================
``ours`` (default)        contract section 1 (``engine.feed``, the venue's ``/ws/quotes``)
``binance``               Binance spot and futures ``bookTicker``
``okx``, ``okx-tickers``  OKX ``bbo-tbt``, ``tickers``
``bybit``                 Bybit v5 ``orderbook.1`` (spot, linear, inverse: from the URL)
``coinbase``              Coinbase Advanced Trade ``ticker``
``kraken``                Kraken Spot v2 ``ticker``
========================  ==========================================================

>>> sorted(FORMATS)
['binance', 'bybit', 'coinbase', 'kraken', 'okx', 'okx-tickers', 'ours']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.venues._base import Adapter, Decoded, Note, Row, split_pair
from engine.venues._binance import Binance
from engine.venues._bybit import Bybit
from engine.venues._coinbase import Coinbase
from engine.venues._emulate import EMULATED, Emulation
from engine.venues._kraken import Kraken
from engine.venues._okx import Okx, OkxTickers
from engine.venues._ours import Ours

#: ``--live-format`` name → adapter class.
FORMATS: dict[str, type[Adapter]] = {
    cls.format: cls for cls in (Ours, Binance, Okx, OkxTickers, Bybit, Coinbase, Kraken)
}


def make_adapter(format: str, instruments: Sequence[str] = (), **options: Any) -> Adapter:
    """The adapter for ``format``; raises ValueError for an unknown format, or for a venue that
    needs instruments to subscribe to when none are given."""
    cls = FORMATS.get(format)
    if cls is None:
        raise ValueError(f"unknown live format {format!r} (one of {', '.join(sorted(FORMATS))})")
    if cls.needs_instruments and not instruments:
        raise ValueError(f"live format {format!r} subscribes to instruments: name them")
    return cls(instruments, **options)


__all__ = [
    "EMULATED", "FORMATS", "Adapter", "Decoded", "Emulation", "Note", "Row", "make_adapter",
    "split_pair",
]  # fmt: skip
