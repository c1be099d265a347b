"""The quote record as it travels through the ring.

Every component speaks this one schema: the engine's sources produce it, the ring carries it
column by column, the processor reads it. Times are integer nanoseconds since the Unix epoch
(UTC); a float of milliseconds cannot hold microseconds exactly, so nothing here sorts or
compares on floats of time.
"""

from __future__ import annotations

from typing import Final

#: Values of the ``mode`` column.
HISTORICAL: Final = 0
LIVE: Final = 1
MODE_NAMES: Final = {HISTORICAL: "historical", LIVE: "live"}

#: Column name -> ring dtype. ``symbol`` is a dictionary-encoded string (see ``ringbuffer``),
#: ``timestamp[ns]`` an int64 of nanoseconds that readers see as an Arrow UTC timestamp.
QUOTE_SCHEMA: Final[dict[str, str]] = {
    "seq": "uint64",  # the engine's stream sequence: gapless, increasing, kept across restarts
    "mode": "uint8",  # HISTORICAL or LIVE
    "pos": "int64",  # row of the sorted historical table; -1 for live records
    "ticker": "symbol",
    "timestamp": "timestamp[ns]",  # the quote's own time
    "arrival": "timestamp[ns]",  # timestamp + latency (historical) or receive time (live)
    "latency": "float64",  # milliseconds; NaN for live records
    "bid_price": "float64",
    "ask_price": "float64",
    "bid_amount": "float64",  # NaN when the input has no amounts
    "ask_amount": "float64",
}

#: Tickers longer than this (in UTF-8 bytes) are rejected at the source.
MAX_TICKER_BYTES: Final = 64

#: Columns an input must have, by mode (contract section 1).
REQUIRED_COLUMNS: Final = {
    "historical": ("timestamp", "ticker", "bid_price", "ask_price", "latency"),
    "live": ("timestamp", "ticker", "bid_price", "ask_price"),
}
OPTIONAL_COLUMNS: Final = ("bid_amount", "ask_amount")
