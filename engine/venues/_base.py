"""What every venue adapter shares: the sans-I/O adapter object and its outputs.

An :class:`Adapter` is driven with plain inputs and answers with plain outputs, as websockets'
and h11's protocol objects are: :meth:`Adapter.connected` (a connection opened: the messages to
send, the subscriptions), :meth:`Adapter.heartbeat_message` (the client's heartbeat, when the
venue wants one) and :meth:`Adapter.decode` (a frame arrived: a :class:`Decoded`, holding the
quotes as a table of ``TABLE_SCHEMA`` rows, the rejected items, the texts to send back and the
notes to log). It never touches a socket, a clock or a logger, so tests feed it the venues'
documented messages directly; ``engine.live._connection`` does the I/O around it.

What an adapter guarantees, for every venue:

- a quote becomes one row ``(ticker, timestamp ns, bid, ask, bid_amount, ask_amount)``; the
  ticker is ``<instrument>@<VENUE>``, the timestamp the exchange's own time of the quote (each
  adapter says which field); numbers sent as decimal strings go through the same grammar as the
  CSV reader (``engine.live_parse.number``), JSON numbers are read by ``json`` as the nearest
  float64, which is what the same decimal text gives in a CSV: exact;
- a quote that cannot be used (a side of the book empty, a number that is not one, a missing
  field) is a :class:`~engine.rejects.Rejected` with the reason and the item's text;
- the venue's heartbeats, subscription acknowledgements and notices are counted in
  :attr:`Adapter.counts` and never rejected; the venue's own error messages become an error
  note; a message of a type the adapter does not know is counted by type and noted once per
  type (the first time it is seen), never rejected as a bad quote.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import pyarrow as pa

from common.schema import MAX_TICKER_BYTES
from engine.live_parse import checked_text, json_type, number, parse_json, quotes_table, raw_text
from engine.rejects import Rejected
from engine.timestamps import parse_timestamp

#: One quote: ticker, timestamp (ns), bid, ask, bid amount, ask amount.
Row = tuple[str, int, float, float, float, float]
NAN = float("nan")


class Note(NamedTuple):
    """Something the connection should log: ``level`` is ``info``, ``warning`` or ``error``."""

    level: str
    message: str
    fields: dict[str, Any]


class Decoded(NamedTuple):
    """What one frame gave: its quotes as ``rows``, the rejected items, texts to send back (in
    order) and notes to log. Rows are made into a table once per batch, not once per frame
    (``engine.live._batcher``): a table per frame costs more than decoding the frame."""

    rows: list[Row]
    frame_no: int
    received_ns: int
    rejected: list[Rejected]
    replies: list[str]
    notes: list[Note]

    @property
    def table(self) -> pa.Table | None:
        """The frame's quotes as a ``TABLE_SCHEMA`` table, or None when there are none."""
        return quotes_table(self.rows, self.frame_no, self.received_ns) if self.rows else None


class Adapter:
    """A venue's websocket protocol for its top-of-book channel (module docstring).

    ``instruments`` are the venue's own instrument names as its documentation spells them
    (``BTCUSDT``, ``BTC-USDT-SWAP``, ``BTC-USD``, ``BTC/USD``); ``source`` names the connection
    in rejects (the URL); ``heartbeat`` overrides the venue's documented heartbeat interval.
    """

    #: The ``--live-format`` name, the venue's name in tickers, the documentation followed.
    format: ClassVar[str]
    venue: ClassVar[str]
    docs: ClassVar[str]
    #: Seconds between the client's heartbeats when the venue wants them, else None.
    heartbeat: ClassVar[float | None] = None
    #: Whether the venue needs ``instruments`` (a subscription) to send anything.
    needs_instruments: ClassVar[bool] = True

    def __init__(
        self,
        instruments: Sequence[str] = (),
        *,
        source: str = "",
        max_bytes: int = 1 << 20,
        heartbeat: float | None = None,
        url: str = "",
    ) -> None:
        self.instruments = list(instruments)
        self.source = source or url
        self.url = url
        self.max_bytes = max_bytes
        self.heartbeat_interval = heartbeat if heartbeat is not None else self.heartbeat
        #: quotes, control (acknowledgements, notices), heartbeats, venue_errors, unknown,
        #: no_exchange_time (quotes stamped with the receive time), plus venue-specific ones.
        self.counts: Counter[str] = Counter()
        #: Messages of unknown types, by type.
        self.unknown: Counter[str] = Counter()
        self._tickers: dict[str, str | None] = {}
        self._requests = 0
        # The outputs of the frame being decoded.
        self._rows: list[Row] = []
        self._rejected: list[Rejected] = []
        self._replies: list[str] = []
        self._notes: list[Note] = []
        self._frame_no = 0
        self._received_ns = 0

    # --- inputs ------------------------------------------------------------------------------

    def connected(self) -> list[str]:
        """A connection opened: forget per-connection state, return the texts to send first."""
        return []

    def heartbeat_message(self) -> str | None:
        """The text the client sends every :attr:`heartbeat_interval` seconds, if any."""
        return None

    def decode(self, data: str | bytes, frame_no: int, received_ns: int) -> Decoded:
        """One frame received at ``received_ns`` (wall clock, ns) as frame ``frame_no``."""
        self._rows, self._rejected, self._replies, self._notes = [], [], [], []
        self._frame_no, self._received_ns = frame_no, received_ns
        source = self.source
        text = checked_text(data, source=source, frame_no=frame_no, max_bytes=self.max_bytes)
        if isinstance(text, Rejected):
            self._rejected.append(text)
        elif not self._plain(text):
            doc, bad = parse_json(text, source=source, frame_no=frame_no)
            if bad is None:
                self._message(doc)
            else:
                self._rejected.append(bad)
        rows = self._rows
        self.counts["quotes"] += len(rows)
        return Decoded(rows, frame_no, received_ns, self._rejected, self._replies, self._notes)

    # --- what a venue module writes ----------------------------------------------------------

    def _plain(self, text: str) -> bool:
        """A frame that is not JSON but part of the protocol (OKX's ``pong``); True if handled."""
        return False

    def _message(self, doc: Any) -> None:  # pragma: no cover - every venue overrides it
        raise NotImplementedError

    def _request_id(self) -> int:
        self._requests += 1
        return self._requests

    def _quote(
        self, symbol: Any, ns: int | str, bid: Any, ask: Any, bid_amount: Any, ask_amount: Any,
        item: Any,
    ) -> None:  # fmt: skip
        """Add one quote; a value that is not usable rejects the item with the reason.

        ``ns`` is the exchange's time in ns, or the reason it is not usable; ``None`` for a
        price means that side of the book is empty; amounts may be None (unknown: NaN)."""
        ticker = self._tickers.get(symbol, "") if type(symbol) is str else None
        if ticker == "":
            ticker = self._tickers[symbol] = self._make_ticker(symbol)
        if ticker is None:
            self._reject(f"instrument name is not usable ({raw_text(symbol)[:80]})", item)
            return
        if type(ns) is str:
            self._reject(ns, item)
            return
        values = []
        for field, value in (("bid_price", bid), ("ask_price", ask),
                             ("bid_amount", bid_amount), ("ask_amount", ask_amount)):  # fmt: skip
            if type(value) is not float:
                if value is None or value == "":
                    if field.endswith("_price"):
                        self.counts["one_sided"] += 1
                        side = field[:3]
                        self._reject(f"no {side}: that side of the book is empty", item)
                        return
                    value = NAN
                else:
                    value = number(field, value)
                    if type(value) is str:
                        self._reject(value, item)
                        return
            values.append(value)
        self._rows.append((ticker, ns, *values))

    def _make_ticker(self, symbol: str) -> str | None:
        """``<instrument>@<VENUE>`` for a venue symbol, None when it cannot be a ticker."""
        if not symbol or not symbol.isprintable():
            return None
        ticker = f"{self.instrument_name(symbol)}@{self.venue}"
        return ticker if len(ticker.encode("utf-8", "replace")) <= MAX_TICKER_BYTES else None

    def instrument_name(self, symbol: str) -> str:
        """The instrument as it appears in tickers (the venue's own name unless told)."""
        return symbol

    def _stamp(self) -> int:
        """The receive time, for a quote the venue sends without a time of its own."""
        self.counts["no_exchange_time"] += 1
        return self._received_ns

    def _reject(self, reason: str, item: Any) -> None:
        self._rejected.append(Rejected(self.source, self._frame_no, reason, raw_text(item)))

    def _control(self, what: str, message: str = "", **fields: Any) -> None:
        """A subscription acknowledgement, notice or status: counted; noted when ``message``."""
        self.counts["control"] += 1
        if message:
            self._notes.append(Note("info", message, {"venue": self.venue, **fields}))

    def _heartbeat(self) -> None:
        self.counts["heartbeats"] += 1

    def _venue_error(self, **fields: Any) -> None:
        """The venue's own error message (a refused subscription, a bad request)."""
        self.counts["venue_errors"] += 1
        self._notes.append(Note("error", "venue error", {"venue": self.venue, **fields}))

    def _unknown(self, kind: str, doc: Any) -> None:
        """A message of a type this adapter does not read: counted, noted the first time."""
        self.counts["unknown"] += 1
        self.unknown[kind] += 1
        if self.unknown[kind] == 1:
            self._notes.append(Note("warning", "unknown message type", {
                "venue": self.venue, "type": kind, "frame": self._frame_no,
                "text": raw_text(doc)[:200]}))  # fmt: skip

    def _objects(self, items: Any, what: str, parent: Any) -> list[dict[str, Any]]:
        """The objects of a list field (``what``); a field that is not a list rejects
        ``parent``, an item that is not an object is rejected alone."""
        if type(items) is not list:
            self._reject(f"{what} is not a list", parent)
            return []
        objects = []
        for item in items:
            if type(item) is dict:
                objects.append(item)
            else:
                self._reject(f"an item of {what} is not an object", item)
        return objects

    def _not_a_message(self, doc: Any) -> None:
        self._reject(f"frame is not a {self.venue} message ({json_type(doc)})", doc)


#: The latest time a record can hold: int64 nanoseconds (a larger one could not be published).
MAX_NS = (1 << 63) - 1


def ms_ns(value: Any, field: str) -> int | str:
    """Milliseconds since the epoch (a JSON integer or a digit string) as ns, or the reason.

    >>> ms_ns("1764288000120", "ts"), ms_ns(10**17, "T")
    (1764288000120000000, 'T is out of range (100000000000000000)')
    """
    ms = None
    if type(value) is int and value >= 0:
        ms = value
    elif type(value) is str and value.isdigit() and value.isascii():
        ms = int(value)
    if ms is not None:
        ns = ms * 1_000_000
        return ns if ns <= MAX_NS else f"{field} is out of range ({raw_text(value)[:80]})"
    if value is None:
        return f"missing field {field!r}"
    return f"{field} is not a time in milliseconds ({raw_text(value)[:80]})"


def rfc3339_ns(value: Any, field: str) -> int | str:
    """An RFC 3339 UTC time (``2023-02-09T20:30:37.167359596Z``) as ns, or the reason."""
    if type(value) is not str:
        return f"missing field {field!r}" if value is None else f"{field} is not a time"
    text = value
    if text.endswith(("Z", "z")):
        text = text[:-1]
    elif text.endswith("+00:00"):
        text = text[:-6]
    else:
        return f"{field} is not a UTC RFC 3339 time ({value[:80]!r})"
    ns = parse_timestamp(text)
    return f"{field} {ns} ({value[:80]!r})" if type(ns) is str else ns


#: A book side with nothing on it: no price, no size.
EMPTY_SIDE: tuple[Any, Any] = (None, None)


def top_level(levels: Any) -> tuple[Any, Any]:
    """The price and size of a book side's first level ``[px, sz, ...]`` (OKX, Bybit);
    :data:`EMPTY_SIDE` for an empty side. A malformed level gives itself as the price, so that
    the quote is rejected with its text.

    >>> top_level([["91234.1", "1.25", "0", "7"]]), top_level([]), top_level(["x"])
    (('91234.1', '1.25'), (None, None), ('x', None))
    """
    if type(levels) is list and levels:
        level = levels[0]
        if type(level) is list and len(level) >= 2:
            return level[0], level[1]
        return level, None
    return EMPTY_SIDE


#: Quote assets, for splitting a symbol such as ``BTCUSDT`` into ``BTC-USDT`` (longest first).
QUOTE_ASSETS = sorted(
    ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "USDE", "DAI", "USD", "BTC", "ETH", "BNB",
     "EUR", "GBP", "TRY", "BRL", "JPY", "AUD", "ARS", "MXN", "PLN", "RON", "ZAR", "UAH", "IDR",
     "COP", "CZK", "SOL", "XRP", "DOGE", "TRX", "DOT", "JPY"),
    key=len, reverse=True,
)  # fmt: skip


def split_pair(symbol: str) -> str:
    """``BTCUSDT`` → ``BTC-USDT`` by the longest known quote asset; unchanged when none fits.

    >>> split_pair("BTCUSDT"), split_pair("ETHBTC"), split_pair("1000PEPEUSDC"), split_pair("XYZ")
    ('BTC-USDT', 'ETH-BTC', '1000PEPE-USDC', 'XYZ')
    """
    for quote in QUOTE_ASSETS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return f"{symbol[: -len(quote)]}-{quote}"
    return symbol
