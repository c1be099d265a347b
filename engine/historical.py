"""Historical CSV quotes: parse, validate and sort by arrival time into one Arrow table.

``parse_historical`` is pure (bytes in, table and rejected rows out); ``load_historical`` reads
a file. Rows are rejected as contract section 1 says; the rest are sorted by
``arrival = timestamp + latency`` with a stable sort, so equal arrivals keep their file order.

This module is the public API; the raw CSV reading is in ``engine.csvread`` and the field
checks are in ``engine.validate``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from common.schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, Mode, table_schema
from engine.csvread import (
    InputBytes,
    InputError,
    header_names,
    hide_quotes_on_lines,
    line_field,
    line_numbers,
    line_texts,
    read_table,
    reading,
    record_lines,
    without_bare_cr,
)
from engine.rejects import Rejected, clip_raw
from engine.validate import NUMBER_RE as NUMBER_RE  # re-exported: the public API has it here
from engine.validate import QUOTE, Numbers, code_field, float_array, reject_reason, validate

INT64_MAX = int(np.iinfo(np.int64).max)

#: Columns of every parsed table, historical or live, in this order. ``line`` is the physical
#: line of the input file (live: the frame number); times are int64 nanoseconds since the epoch.
TABLE_SCHEMA = table_schema()

_FIELDS = ("timestamp", "ticker", "bid_price", "ask_price", "latency", *OPTIONAL_COLUMNS)


class MissingColumn(InputError):
    """The header lacks required columns; ``columns`` names them, ``source`` the file."""

    def __init__(self, source: str, columns: Sequence[str]) -> None:
        self.source = source
        self.columns = tuple(columns)
        names = ", ".join(repr(c) for c in self.columns)
        plural = "s" if len(self.columns) > 1 else ""
        super().__init__(f"{source}: missing required column{plural} {names} in the CSV header")


@dataclass(frozen=True)
class Parsed:
    """A sorted table of valid records and the rows that were rejected.

    ``rejected`` lists every rejected row in line order when the input was parsed; a table
    loaded from the cache has an empty list but keeps ``rejected_count`` and ``first_rejected``.
    """

    table: pa.Table
    rejected: list[Rejected] = field(default_factory=list)
    rejected_count: int = 0
    first_rejected: Rejected | None = None

    @classmethod
    def of(cls, table: pa.Table, rejected: list[Rejected]) -> Parsed:
        """A freshly parsed result holding every rejected row."""
        return cls(table, rejected, len(rejected), rejected[0] if rejected else None)


def load_historical(
    path: str | os.PathLike[str],
    *,
    required: Sequence[str] = REQUIRED_COLUMNS[Mode.HISTORICAL],
) -> Parsed:
    """Parse the CSV file at ``path``; see ``parse_historical``. Raises ``InputError`` when the
    file cannot be read or lacks a required column."""
    with reading(path) as (source, data):
        return _parse(data, source, required)


def parse_historical(
    data: bytes | pa.Buffer,
    source: str,
    *,
    required: Sequence[str] = REQUIRED_COLUMNS[Mode.HISTORICAL],
) -> Parsed:
    """Parse CSV ``data`` read from ``source`` into a table sorted by arrival (``TABLE_SCHEMA``).

    Columns are found by header name, case-insensitively. Without a ``latency`` column (allowed
    when ``required`` does not name it) latency is NaN and arrival equals timestamp.
    Raises ``MissingColumn`` when a required column is absent.
    """
    return _parse(InputBytes(pa.py_buffer(data)), source, list(required))


def latency_ns(latency_ms: np.ndarray) -> np.ndarray:
    """Non-negative latencies in milliseconds as int64 nanoseconds, rounded, saturating.

    Whole milliseconds convert exactly and the sub-millisecond part is rounded on its own, so
    nothing is lost to float precision below 9e9 ms (104 days); beyond, int64 takes over.
    """
    whole = np.floor(latency_ms)
    with np.errstate(invalid="ignore"):  # inf - inf: such rows are redone below
        ns = np.subtract(latency_ms, whole)
    ns *= 1e6
    np.rint(ns, out=ns)
    big = ~(whole < 9e9)  # also inf
    with np.errstate(over="ignore"):  # huge latencies are redone below ("big")
        whole *= 1e6  # exact: an integer below 2**53
    ns += whole  # exact for the same reason
    del whole
    if big.any():
        ns[big] = 0.0
    out = ns.astype(np.int64)
    del ns
    if big.any():
        lat = latency_ms[big]
        fits = lat < 9.2e12  # int64 nanoseconds end near 9.22e12 ms
        lat = np.where(fits, lat, 0.0)
        part = np.floor(lat)
        exact = part.astype(np.int64) * 1_000_000 + np.rint((lat - part) * 1e6).astype(np.int64)
        out[big] = np.where(fits, exact, INT64_MAX)
    return out


def arrival_ns(timestamp: np.ndarray, latency_ms: np.ndarray) -> np.ndarray:
    """``timestamp + latency`` in int64 nanoseconds, saturating at the int64 maximum."""
    lat = latency_ns(latency_ms)
    if len(lat) and int(lat.max()) > INT64_MAX - max(int(timestamp.max()), 0):
        np.minimum(lat, INT64_MAX - np.maximum(timestamp, 0), out=lat)
    lat += timestamp
    return lat


# --- the whole parse --------------------------------------------------------------------------


#: First bytes of compressed files, which would otherwise read as a header of garbage.
_COMPRESSED = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"PK\x03\x04": "zip",
}


def _parse(data: InputBytes, source: str, required: Sequence[str]) -> Parsed:
    if data.size < (1 << 20) and b"\n" not in data.read(0, data.size):
        data = InputBytes(pa.py_buffer(data.read(0, data.size) + b"\n"))  # a header alone
    ncols, cols = read_header(data, source, required)
    return parse_body(data, source, ncols, cols)


def read_header(
    data: InputBytes, source: str, required: Sequence[str]
) -> tuple[int, dict[str, int]]:
    """The header's number of columns and where each known field is; raises ``InputError``
    for a compressed input, a repeated field and ``MissingColumn`` for a missing one."""
    head = data.read(0, 8)
    for magic, kind in _COMPRESSED.items():
        if head.startswith(magic):
            raise InputError(f"{source} is {kind}-compressed: decompress it first")
    names = header_names(data)
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in index and name in _FIELDS:
            raise InputError(
                f"{source}: column {name!r} appears twice in the header (columns "
                f"{index[name] + 1} and {i + 1}): keep one"
            )
        index.setdefault(name, i)
    missing = [c for c in ("timestamp", "ticker", *required) if c not in index]
    if missing:
        raise MissingColumn(source, list(dict.fromkeys(missing)))
    return len(names), {c: index[c] for c in _FIELDS if c in index}


def parse_body(data: InputBytes, source: str, ncols: int, cols: dict[str, int]) -> Parsed:
    """The rows of ``data`` (a header line, then records) checked, rejected and sorted by
    arrival; lines are numbered within ``data`` (its header is line 1)."""
    table, skipped, cleaned, records, unclosed, rewritten = _read_records(
        data, source, ncols, cols
    )

    # With ignore_empty_lines=False Arrow numbers rows by record (the header is 1), skipped ones
    # too; blank lines come through as rows of nulls and are dropped without a reject.
    def line_of(record: int) -> int:
        return record if records is None else int(records[record - 1])

    skipped_at = [line_of(row.number) for row in skipped]
    texts = line_texts(data, skipped_at) if cleaned or rewritten else {}  # Arrow's view differs
    rejected = [
        Rejected(
            source,
            line,
            "a quote is never closed"
            if line in unclosed
            else f"wrong number of fields ({row.actual_columns}, header has {ncols})",
            texts.get(line, clip_raw(row.text)),
        )
        for row, line in zip(skipped, skipped_at, strict=True)
    ]
    skipped_lines = np.array(sorted(row.number for row in skipped), dtype=np.int64)
    code, ts, (tick_index, dictionary), numbers = validate(table, cols, cleaned)
    if unclosed:  # rows whose stray quote was hidden to keep them apart from the next ones
        at = line_numbers(np.arange(len(code)), skipped_lines, records)
        code[np.isin(at, np.fromiter(unclosed, np.int64))] = QUOTE
    bad_rows = np.flatnonzero(code)
    if len(bad_rows):
        lines = line_numbers(bad_rows, skipped_lines, records)
        texts = line_texts(data, lines.tolist())
        for c, line in zip(code[bad_rows].tolist(), lines.tolist(), strict=True):
            text = texts.get(line)
            if text is not None and not text.strip():
                continue  # a blank line
            name = code_field(c)
            reason = reject_reason(c, name, line_field(text, cols[name]))
            rejected.append(Rejected(source, line, reason, text or ""))
        rejected.sort(key=lambda rej: rej.line)
    del table, code
    return Parsed.of(
        _sorted_table(
            bad_rows, ts, tick_index, dictionary, numbers, skipped_lines, records,
            "latency" in cols,
        ),
        rejected,
    )


def _read_records(
    data: InputBytes, source: str, ncols: int, cols: dict[str, int]
) -> tuple[pa.Table, list[Any], bool, np.ndarray | None, set[int], bool]:
    """Arrow's table and skipped rows, the line each record starts on (None: one line each),
    the lines whose stray quote was hidden, and whether Arrow read other bytes than ``data``.

    Quoting may join lines into one record (a quoted field holding a newline is data). A record
    that spans lines and still has the wrong number of fields was joined by a quote that is
    never closed: that line's quotes are hidden and the input read again, so the stray quote
    costs its own row only, not the rows after it. A bare CR is hidden from Arrow (it would end
    a row there), so a record is what the line feeds and quotes make it.
    """
    records, bare_cr = record_lines(data)
    view = without_bare_cr(data) if bare_cr else data
    unclosed: set[int] = set()
    for _ in range(_MAX_REREADS):
        table, skipped, cleaned = read_table(view, source, ncols, cols)
        if records is None:
            break
        hide = _stray_quote_lines(view, records, table.num_rows, skipped)
        if not hide:
            break
        view = hide_quotes_on_lines(view, hide)
        unclosed.update(hide)
        records, _ = record_lines(view)
    return table, skipped, cleaned, records, unclosed, view is not data


_MAX_REREADS = 64


def _stray_quote_lines(
    data: InputBytes, records: np.ndarray, rows: int, skipped: list[Any]
) -> list[int]:
    """Lines whose quote joined lines into a record that is not one: the first line of each
    multi-line record Arrow skipped (wrong number of fields); and where Arrow's quoting and
    quote parity disagree on the records (a quote in mid-field), the first multi-line one."""
    raw = np.frombuffer(data.read(0, data.size), np.uint8)
    ends_with_lf = bool(len(raw)) and raw[-1] == 10
    lines = int(np.count_nonzero(raw == 10)) + (not ends_with_lf)  # lines holding anything
    spans = np.diff(np.append(records, max(lines + 1, int(records[-1]))))
    if rows + len(skipped) != len(records) - 1 - ends_with_lf:
        multi = np.flatnonzero(spans > 1)
        return [int(records[multi[0]])] if len(multi) else []
    return [int(records[row.number - 1]) for row in skipped if spans[row.number - 1] > 1]


def _sorted_table(
    bad_rows: np.ndarray,
    ts: np.ndarray,
    tick_index: np.ndarray,
    dictionary: pa.Array,
    numbers: Numbers,
    skipped_lines: np.ndarray,
    records: np.ndarray | None,
    has_latency: bool,
) -> pa.Table:
    """The valid rows sorted by arrival (by timestamp without a latency column).

    Each column is permuted into the buffer the previous one vacated, so the whole sort
    allocates one new column's worth of memory (fresh pages are costly in this VM).
    """
    ok = None
    if len(bad_rows):
        keep = np.ones(len(ts), bool)
        keep[bad_rows] = False
        ok = np.flatnonzero(keep)
    latency = float_array(numbers.pop("latency"))
    if ok is not None:
        ts, latency = ts[ok], latency[ok]
    arrival = arrival_ns(ts, latency) if has_latency else ts.copy()
    order = np.argsort(arrival, kind="stable")
    rows = order if ok is None else ok[order]
    del ok
    spare = [np.empty(len(order), np.int64)]

    def permute(values: np.ndarray, index: np.ndarray) -> pa.Array:
        out = spare.pop().view(values.dtype)[: len(index)]
        np.take(values, index, out=out, mode="clip")  # "clip" does not buffer
        if values.flags.owndata and values.flags.writeable and values.itemsize == 8:
            spare.append(values.view(np.int64))  # free to reuse from now on
        else:
            spare.append(np.empty(len(order), np.int64))
        return pa.array(out)

    columns: dict[str, pa.Array] = {
        "timestamp": permute(ts, order),
        "arrival": permute(arrival, order),
        "latency": permute(latency, order),
    }
    del ts, arrival, latency
    for name in ("bid_price", "ask_price", *OPTIONAL_COLUMNS):
        columns[name] = permute(float_array(numbers.pop(name)), rows)
    tick = tick_index[rows]
    used = np.bincount(tick, minlength=len(dictionary)) > 0
    remap = np.cumsum(used, dtype=np.int32) - 1
    columns["ticker"] = pa.DictionaryArray.from_arrays(
        pa.array(remap[tick], pa.int32()), dictionary.filter(pa.array(used)).cast(pa.string())
    )
    columns["line"] = pa.array(line_numbers(rows, skipped_lines, records))
    return pa.Table.from_arrays([columns[f.name] for f in TABLE_SCHEMA], schema=TABLE_SCHEMA)

