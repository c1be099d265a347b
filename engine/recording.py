"""What a recording is, without I/O: quotes as CSV rows of the historical layout, rotation,
and the per-file statistics (``python -m engine.record`` does the files and the feed).

A record becomes one line of the historical layout (contract section 1)::

    ,index,timestamp,ticker,ask_amount,ask_price,bid_price,bid_amount,latency
    0,0,2025-11-28 00:00:00.120000000,BTC-USDT-SWAP@BINANCE,0.004,91234.2,91234.1,1.503,3.52

- the unnamed first column counts the rows of the file from 0 (as pandas writes it), ``index``
  the records of the recording run from 0;
- ``timestamp`` is the exchange's time of the quote, UTC, with 9 fraction digits (exact: from
  the integer nanoseconds);
- prices and amounts are the shortest decimals that read back as the same float64 (``repr``),
  which is what the live source published; an amount the venue did not send is an empty field;
- ``latency`` is the local receive time minus the exchange's time, in milliseconds, written
  exactly from the integer nanoseconds (``3520417`` ns → ``3.520417``). The receive time is the
  system's realtime clock (``time.time_ns()`` when the frame was read, the same ``arrival`` the
  live source stamps). A negative latency (the two clocks are not synchronised) is written as it
  is and counted; the engine's historical replay rejects such a row (contract section 1), and
  counts and records it.

>>> latency_text(3_520_417), latency_text(2_000_000), latency_text(-500_000), latency_text(7)
('3.520417', '2', '-0.5', '0.000007')
>>> timestamp_text(1_764_288_000_120_000_000)
'2025-11-28 00:00:00.120000000'
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

HEADER = ",index,timestamp,ticker,ask_amount,ask_price,bid_price,bid_amount,latency\n"
_NS_PER_MS = 1_000_000


def latency_text(ns: int) -> str:
    """``ns`` nanoseconds as milliseconds, the exact plain decimal (no trailing zeros)."""
    sign = "-" if ns < 0 else ""
    whole, frac = divmod(abs(int(ns)), _NS_PER_MS)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:06d}".rstrip("0")


def timestamp_text(ns: int) -> str:
    """UTC nanoseconds as ``YYYY-MM-DD HH:MM:SS.fffffffff``."""
    return str(np.datetime64(int(ns), "ns")).replace("T", " ")


def _number(x: float) -> str:
    return "" if x != x else repr(x)


def _ticker(text: str) -> str:
    """A CSV field: quoted (quotes doubled) when it holds a comma, a quote or a line break."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def render(
    table: pa.Table, first_row: int, index: int | np.ndarray
) -> tuple[bytes, np.ndarray]:
    """The lines of ``table``'s records (``engine.historical.TABLE_SCHEMA`` columns, or the
    ring's) and their latencies in ns; rows are numbered from ``first_row``, the ``index``
    column counts from ``index`` or is given per record (the engine's ``seq``)."""
    stamps = ns_column(table.column("timestamp"))
    arrival = ns_column(table.column("arrival"))
    latency = arrival - stamps
    times = np.datetime_as_string(stamps.astype("datetime64[ns]"), unit="ns")
    tickers = table.column("ticker").to_pylist()
    cols = [table.column(c).to_pylist()
            for c in ("ask_amount", "ask_price", "bid_price", "bid_amount")]  # fmt: skip
    n = table.num_rows
    indexes = (index.tolist() if isinstance(index, np.ndarray)
               else range(index, index + n))  # fmt: skip
    lines = []
    for i, (k, ts, ticker, ask_amount, ask, bid, bid_amount, lat) in enumerate(
        zip(indexes, times, tickers, *cols, latency.tolist(), strict=True)
    ):
        lines.append(
            f"{first_row + i},{k},{ts[:10]} {ts[11:]},{_ticker(ticker)},"
            f"{_number(ask_amount)},{_number(ask)},{_number(bid)},{_number(bid_amount)},"
            f"{latency_text(lat)}\n"
        )
    return "".join(lines).encode("utf-8"), latency


def ns_column(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Nanoseconds as int64, from an int64 column or an Arrow timestamp (the ring's)."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return np.asarray(column.to_numpy(), dtype=np.int64)


def last_index(path: str) -> int | None:
    """The ``index`` of the last whole row of a recording file, or None when it has none."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(size - 65536, 0))
        tail = f.read()
    lines = tail.split(b"\n")[:-1]  # what follows the last line feed is not a whole row
    for line in reversed(lines):
        fields = line.split(b",", 2)
        if len(fields) == 3 and fields[1].isdigit():
            return int(fields[1])
    return None


#: Latencies a file's statistics keep (8 MB); beyond, a uniform sample of this many.
SAMPLE = 1 << 20


@dataclass
class FileStats:
    """What one file of a recording holds: rows, distinct tickers, latencies (ns).

    Memory is bounded whatever the rotation: min, max and the count of negative latencies are
    exact; the quantiles come from every latency up to :data:`SAMPLE` rows, and from a uniform
    reservoir sample of that many beyond (the summary says ``latency_sampled``).
    """

    rows: int = 0
    tickers: set[str] = field(default_factory=set)
    sample: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    low: int | None = None
    high: int | None = None
    negative: int = 0
    cap: int = SAMPLE
    _rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def add(self, table: pa.Table, latency: np.ndarray) -> None:
        self.tickers.update(table.column("ticker").unique().to_pylist())
        if len(latency):
            lo, hi = int(latency.min()), int(latency.max())
            self.low = lo if self.low is None else min(self.low, lo)
            self.high = hi if self.high is None else max(self.high, hi)
            self.negative += int((latency < 0).sum())
            self._keep(np.asarray(latency, np.int64))
        self.rows += table.num_rows

    def _keep(self, latency: np.ndarray) -> None:
        """Algorithm R: the row of index i (from 0 over the file) replaces a random slot with
        probability cap / (i + 1). ``self.rows`` is still the count before this batch."""
        first = self.rows
        room = self.cap - len(self.sample)
        if room > 0:
            taken = latency[:room]
            self.sample = np.concatenate([self.sample, taken])
            latency, first = latency[room:], first + len(taken)
        if not len(latency):
            return
        index = np.arange(first, first + len(latency))
        slot = self._rng.integers(0, index + 1)
        hit = slot < self.cap
        self.sample[slot[hit]] = latency[hit]

    def summary(self) -> dict[str, object]:
        """rows, tickers, and the latency's min, p50, p99, max in ms (recorded values) and how
        many were negative."""
        out: dict[str, object] = {"rows": self.rows, "tickers": len(self.tickers)}
        if self.rows and self.low is not None and self.high is not None:
            q = np.quantile(self.sample, [0.5, 0.99], method="inverted_cdf").tolist()
            out["latency_ms_min"] = latency_text(self.low)
            out["latency_ms_p50"] = latency_text(int(q[0]))
            out["latency_ms_p99"] = latency_text(int(q[1]))
            out["latency_ms_max"] = latency_text(self.high)
            out["negative_latency"] = self.negative
            if self.rows > self.cap:
                out["latency_sampled"] = self.cap
        return out


class Rotation:
    """When a file is full: after ``rows`` rows, or once records arrive ``minutes`` after the
    file's first one (wall clock of their arrival), whichever is set.

    >>> r = Rotation(rows=3)
    >>> r.take(np.array([5, 6, 7]), rows_in_file=1, file_started_ns=0)
    2
    >>> m = Rotation(minutes=1)
    >>> m.take(np.array([0, 59 * 10**9, 60 * 10**9]), rows_in_file=0, file_started_ns=None)
    2
    """

    def __init__(self, *, rows: int | None = None, minutes: float | None = None) -> None:
        if (rows is None) == (minutes is None):
            raise ValueError("rotate by rows or by minutes, one of them")
        self.rows = rows
        self.span_ns = None if minutes is None else round(minutes * 60e9)

    def take(self, arrivals: np.ndarray, *, rows_in_file: int, file_started_ns: int | None) -> int:
        """How many of the records arriving at ``arrivals`` (ascending) the current file takes;
        0: rotate first (a new file, ``file_started_ns`` None, always takes at least one)."""
        if self.rows is not None:
            return min(max(self.rows - rows_in_file, 0), len(arrivals))
        assert self.span_ns is not None
        start = int(arrivals[0]) if file_started_ns is None else file_started_ns
        return int(np.searchsorted(arrivals, start + self.span_ns, side="left"))
