"""The quote record: its columns and types, defined once; everything else is derived from here.

Every component speaks this one schema: the engine's sources produce it, the ring carries it
column by column, the processor reads it. Times are integer nanoseconds since the Unix epoch
(UTC); a float of milliseconds cannot hold microseconds exactly, so nothing here sorts or
compares on floats of time.

A record's columns come in two groups:

- :data:`RECORD_FIELDS`, what a source (historical CSV or live websocket) provides;
- :data:`STAMP_FIELDS`, what the engine stamps on each record as it publishes it.

:data:`QUOTE_SCHEMA` (the ring's columns), :data:`RECORD_COLUMNS` (a source's batch) and
:func:`table_schema` (the Arrow table a parser produces) are all derived from those two.

>>> list(QUOTE_SCHEMA)[:4], Mode.LIVE, Mode.parse(" Historical\\n"), str(Mode.LIVE.other)
(['seq', 'mode', 'pos', 'ticker'], <Mode.LIVE: 1>, <Mode.HISTORICAL: 0>, 'historical')
>>> table_schema().names == ["line", *RECORD_COLUMNS]
True
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import pyarrow as pa


class Mode(IntEnum):
    """Where a record came from, and the engine's mode: the ``mode`` column's uint8 values.

    ``str(mode)`` is its name as users write it (command line, control file, logs).
    """

    HISTORICAL = 0
    LIVE = 1

    def __str__(self) -> str:
        return self.name.lower()

    @property
    def other(self) -> Mode:
        return Mode(1 - self.value)

    @classmethod
    def parse(cls, text: str) -> Mode | None:
        """The mode ``text`` names (any case, surrounding blanks ignored), or None."""
        word = text.strip().upper()
        return cls[word] if word in cls.__members__ else None


#: What the engine stamps on every record. Column name -> ring dtype.
STAMP_FIELDS: Final[dict[str, str]] = {
    "seq": "uint64",  # the engine's stream sequence: gapless, increasing, kept across restarts
    "mode": "uint8",  # a Mode
    "pos": "int64",  # row of the sorted historical table; -1 for live records
}

#: What a source provides for every record. Column name -> ring dtype: ``symbol`` is a
#: dictionary-encoded string (see ``ringbuffer``), ``timestamp[ns]`` an int64 of nanoseconds
#: that readers see as an Arrow UTC timestamp.
RECORD_FIELDS: Final[dict[str, str]] = {
    "ticker": "symbol",
    "timestamp": "timestamp[ns]",  # the quote's own time
    "arrival": "timestamp[ns]",  # timestamp + latency (historical) or receive time (live)
    "latency": "float64",  # milliseconds; NaN for live records
    "bid_price": "float64",
    "ask_price": "float64",
    "bid_amount": "float64",  # NaN when the input has no amounts
    "ask_amount": "float64",
}

#: The ring's columns, in order: the stamps, then the record.
QUOTE_SCHEMA: Final[dict[str, str]] = {**STAMP_FIELDS, **RECORD_FIELDS}

#: The columns a source's batch holds (the engine adds the stamps).
RECORD_COLUMNS: Final = tuple(RECORD_FIELDS)

#: Tickers longer than this (in UTF-8 bytes) are rejected at the source.
MAX_TICKER_BYTES: Final = 64

#: Input columns (contract section 1): required by mode, and optional ones carried through.
REQUIRED_COLUMNS: Final[dict[Mode, tuple[str, ...]]] = {
    Mode.HISTORICAL: ("timestamp", "ticker", "bid_price", "ask_price", "latency"),
    Mode.LIVE: ("timestamp", "ticker", "bid_price", "ask_price"),
}
OPTIONAL_COLUMNS: Final = ("bid_amount", "ask_amount")

#: A decimal number as the inputs may write it (contract section 1), as a regular expression
#: for both Python's ``re`` and Arrow's RE2: digits with an optional fraction and exponent, or
#: inf/infinity/nan words, which the parsers then reject as "not a number" by value.
NUMBER_PATTERN: Final = (
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|(?i:inf|infinity)|(?i:nan)(?:\([0-9A-Za-z_]*\))?)"
)


def columns(*names: str) -> dict[str, str]:
    """The ring dtypes of ``names`` (for ``ringbuffer.attach(expect=...)``).

    >>> columns("seq", "bid_price")
    {'seq': 'uint64', 'bid_price': 'float64'}
    """
    return {name: QUOTE_SCHEMA[name] for name in names}


def table_schema() -> pa.Schema:
    """The Arrow schema of a parsed input table (historical or live), before publishing.

    ``line`` is the record's physical line in its file (live: its frame number), then the
    :data:`RECORD_FIELDS` as the parsers hold them: the ticker dictionary-encoded, times as
    int64 nanoseconds since the epoch, numbers as float64.
    """
    import pyarrow as pa  # here: the command lines import this module before pyarrow

    as_table = {
        "symbol": pa.dictionary(pa.int32(), pa.string()),
        "timestamp[ns]": pa.int64(),
        "float64": pa.float64(),
    }
    return pa.schema(
        [("line", pa.int64())] + [(name, as_table[t]) for name, t in RECORD_FIELDS.items()]
    )
