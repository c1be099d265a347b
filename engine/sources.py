"""Sources of quotes behind one interface: each yields batches of records in the ring's columns.

The engine core (pacing aside) knows nothing of CSV files or sockets: it asks the source of the
current mode for the next batch, publishes it, and tells the source how much was published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from common.schema import RECORD_COLUMNS, Mode
from engine.historical import TABLE_SCHEMA
from engine.merge import MergedRuns
from engine.pacing import Clock, Pacer
from engine.rejects import Rejected
from engine.runs import RunFile


@dataclass
class SourceBatch:
    """Records to publish: ring columns (ticker as Arrow strings or dictionary, the rest numpy),
    historical table positions (None for live), and the inputs rejected on the way."""

    columns: dict[str, Any]
    positions: np.ndarray | None = None
    rejected: list[Rejected] = field(default_factory=list)
    late_s: float = 0.0

    def __len__(self) -> int:
        return len(self.columns["timestamp"])


def columns_of(table: pa.Table) -> dict[str, Any]:
    """The record columns of a parsed table (``engine.historical.TABLE_SCHEMA``)."""
    out: dict[str, Any] = {}
    for name in RECORD_COLUMNS:
        chunked = table.column(name)
        # combine_chunks() copies even a single chunk: a parsed or cached table has one
        col = chunked.chunk(0) if chunked.num_chunks == 1 else chunked.combine_chunks()
        out[name] = col if name == "ticker" else col.to_numpy(zero_copy_only=False)
    return out


class Source(Protocol):
    """What the engine needs of a source."""

    mode: Mode

    def start(self) -> None:
        """Become the active source (historical: re-anchor pacing; live: connect)."""

    def stop(self) -> None:
        """Stop being the active source (live: disconnect)."""

    def poll(self, timeout: float) -> SourceBatch | None:
        """The next due batch, waiting up to ``timeout`` seconds; None if nothing is due."""

    def advance(self, n: int) -> None:
        """The first ``n`` records of the last batch were published."""


class HistoricalSource:
    """A parsed, arrival-sorted table replayed from ``pos`` at a speed.

    Publishes everything due in one batch (at most ``max_batch``), then sleeps until the next
    record is due: no per-record sleeps.
    """

    mode = Mode.HISTORICAL

    def __init__(
        self,
        table: pa.Table,
        *,
        pos: int,
        speed: float | None,
        clock: Clock,
        max_batch: int = 65536,
    ) -> None:
        self._cols = columns_of(table)
        self._arrival = self._cols["arrival"]
        self.total = table.num_rows
        self.pos = min(pos, self.total)
        self.pacer = Pacer(speed, clock)
        self._clock = clock
        self._max_batch = max_batch

    @property
    def exhausted(self) -> bool:
        return self.pos >= self.total

    def start(self) -> None:
        if not self.exhausted:
            self.pacer.anchor(int(self._arrival[self.pos]))

    def stop(self) -> None:
        pass

    def poll(self, timeout: float) -> SourceBatch | None:
        if self.exhausted:
            return None
        limit = min(self.total, self.pos + self._max_batch)
        got = _due(self.pacer, self._clock, self._arrival, self.pos, limit, timeout)
        if got is None:
            return None
        end, late = got
        sl = slice(self.pos, end)
        columns = {k: v.slice(self.pos, end - self.pos) if k == "ticker" else v[sl]
                   for k, v in self._cols.items()}  # fmt: skip
        return SourceBatch(columns, np.arange(self.pos, end, dtype=np.int64), late_s=late)

    def advance(self, n: int) -> None:
        self.pos += n


def _due(
    pacer: Pacer, clock: Clock, arrival: np.ndarray, start: int, limit: int, timeout: float
) -> tuple[int, float] | None:
    """The pacing step of a historical source: wait (up to ``timeout``) until the record at
    ``start`` is due; then the end of the records due from it (before ``limit``; all those
    sharing its arrival at least) and how late the first one is, in seconds. None when it was
    not due within ``timeout``."""
    first = int(arrival[start])
    wait = pacer.seconds_until(first)
    if wait > 0:
        clock.sleep(min(wait, timeout))
        if pacer.seconds_until(first) > 0:
            return None
    due = max(pacer.due_until(), first)  # all records sharing the first's arrival
    end = start + int(np.searchsorted(arrival[start:limit], due, side="right"))
    late = -pacer.seconds_until(first) if pacer.speed is not None else 0.0
    return end, late


class TableSource:
    """Adapts a source of parsed tables and rejects (the live client) to :class:`Source`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.mode = inner.mode
        self._empty: dict[str, Any] | None = None

    def start(self) -> None:
        self._inner.start()

    def stop(self) -> None:
        self._inner.stop()

    @property
    def stats(self) -> dict[str, int]:
        """The inner source's counters (``LiveSource.stats``), for the engine's stats line."""
        return dict(getattr(self._inner, "stats", {}))

    def poll(self, timeout: float) -> SourceBatch | None:
        table, rejected = self._inner.poll(timeout)
        if table is None:
            if not rejected:
                return None
            if self._empty is None:
                self._empty = columns_of(TABLE_SCHEMA.empty_table())
            return SourceBatch(dict(self._empty), rejected=rejected)
        return SourceBatch(columns_of(table), rejected=rejected)

    def advance(self, n: int) -> None:
        """Live records cannot be asked for again: what was not published is gone (logged)."""


class StreamingHistoricalSource:
    """Sorted runs (``engine.runs``) merged into arrival order as they are replayed.

    Holds one merged chunk and one batch per open run, whatever the file's size. ``pos``
    counts the records published; a resume at ``pos`` merges and drops that many first.
    """

    mode = Mode.HISTORICAL

    def __init__(
        self, runs: RunFile, *, pos: int, speed: float | None, clock: Clock,
        max_batch: int = 65536,
    ) -> None:  # fmt: skip
        self.total = runs.manifest.rows
        self.pos = min(pos, self.total)
        self.pacer = Pacer(speed, clock)
        self._clock = clock
        self._max_batch = max_batch
        self._merge = MergedRuns(runs)
        self._dictionary = pa.array(runs.manifest.tickers, pa.string())
        self._chunk: dict[str, np.ndarray] = {}
        self._i = self._n = 0
        left = self.pos
        while left and self._current():
            take = min(left, self._n - self._i)
            self._i += take
            left -= take

    def _current(self) -> bool:
        """Whether a chunk with records left is loaded (fetching the next one if needed)."""
        while self._i >= self._n:
            chunk = self._merge.next_chunk()
            if chunk is None:
                return False
            self._chunk, self._i, self._n = chunk, 0, len(chunk["line"])
        return True

    @property
    def exhausted(self) -> bool:
        return self.pos >= self.total

    def start(self) -> None:
        if not self.exhausted and self._current():
            self.pacer.anchor(int(self._chunk["arrival"][self._i]))

    def stop(self) -> None:
        pass

    def poll(self, timeout: float) -> SourceBatch | None:
        if self.exhausted or not self._current():
            return None
        limit = min(self._n, self._i + self._max_batch)
        got = _due(self.pacer, self._clock, self._chunk["arrival"], self._i, limit, timeout)
        if got is None:
            return None
        end, late = got
        sl = slice(self._i, end)
        columns: dict[str, Any] = {n: self._chunk[n][sl] for n in RECORD_COLUMNS}
        columns["ticker"] = pa.DictionaryArray.from_arrays(
            pa.array(columns["ticker"], pa.int32()), self._dictionary
        )
        return SourceBatch(columns, np.arange(self.pos, self.pos + end - self._i,
                                              dtype=np.int64), late_s=late)  # fmt: skip

    def advance(self, n: int) -> None:
        self.pos += n
        self._i += n


#: The historical sources, for what the engine asks only of them (position, end).
HISTORICAL_SOURCES = (HistoricalSource, StreamingHistoricalSource)
