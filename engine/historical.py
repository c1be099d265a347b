"""Historical CSV quotes: parse, validate and sort by arrival time into one Arrow table.

``parse_historical`` is pure (bytes in, table and rejected rows out); ``load_historical`` reads
a file. Rows are rejected as contract section 1 says; the rest are sorted by
``arrival = timestamp + latency`` with a stable sort, so equal arrivals keep their file order.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from common.schema import MAX_TICKER_BYTES, OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from engine.rejects import Rejected, clip_raw
from engine.timestamps import parse_timestamps

INT64_MAX = int(np.iinfo(np.int64).max)

#: Columns of every parsed table, historical or live, in this order. ``line`` is the physical
#: line of the input file (live: the frame number); times are int64 nanoseconds since the epoch.
TABLE_SCHEMA = pa.schema(
    [
        ("line", pa.int64()),
        ("ticker", pa.dictionary(pa.int32(), pa.string())),
        ("timestamp", pa.int64()),
        ("arrival", pa.int64()),
        ("latency", pa.float64()),
        ("bid_price", pa.float64()),
        ("ask_price", pa.float64()),
        ("bid_amount", pa.float64()),
        ("ask_amount", pa.float64()),
    ]
)

_Numbers = dict[str, pa.ChunkedArray | np.ndarray]
_FIELDS = ("timestamp", "ticker", "bid_price", "ask_price", "latency", *OPTIONAL_COLUMNS)
_NUMERIC = ("bid_price", "ask_price", "latency", *OPTIONAL_COLUMNS)
_BLOCK = 8 << 20
# A decimal number as Arrow's float parser reads it (surrounding blanks are trimmed first).
NUMBER_RE = (
    r"^[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|(?i:inf|infinity)|(?i:nan)(?:\([0-9A-Za-z_]*\))?)$"
)

# Reject codes, in the order they are checked: a row reports the first that applies.
_TS_EMPTY, _TS_BAD, _TS_RANGE, _TK_EMPTY, _TK_LONG, _TK_UTF8 = 1, 2, 3, 4, 5, 6
_EMPTY, _NAN, _NEG = 0, 1, 2
_NUM_BASE = {"bid_price": 7, "ask_price": 10, "latency": 13}


class InputError(Exception):
    """An input that cannot be used at all (a missing column or an unreadable file)."""


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
    required: Sequence[str] = REQUIRED_COLUMNS["historical"],
) -> Parsed:
    """Parse the CSV file at ``path``; see ``parse_historical``. Raises ``InputError`` when the
    file cannot be read or lacks a required column."""
    source = os.fspath(path)
    try:
        data = _Data(path=source)
    except OSError as exc:
        raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from exc
    try:
        return _parse(data, source, required)
    except OSError as exc:
        raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from exc
    finally:
        data.close()


def parse_historical(
    data: bytes | pa.Buffer,
    source: str,
    *,
    required: Sequence[str] = REQUIRED_COLUMNS["historical"],
) -> Parsed:
    """Parse CSV ``data`` read from ``source`` into a table sorted by arrival (``TABLE_SCHEMA``).

    Columns are found by header name, case-insensitively. Without a ``latency`` column (allowed
    when ``required`` does not name it) latency is NaN and arrival equals timestamp.
    Raises ``MissingColumn`` when a required column is absent.
    """
    return _parse(_Data(pa.py_buffer(data)), source, list(required))


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


# --- reading ----------------------------------------------------------------------------------


class _Data:
    """The input's bytes: in memory, or a file read with ``pread`` (not memory-mapped: in this
    VM faulting a mapped file in page by page costs more CPU than copying it)."""

    def __init__(self, buf: pa.Buffer | None = None, path: str | None = None) -> None:
        self._buf, self._path = buf, path
        self._fd = os.open(path, os.O_RDONLY) if path is not None else None
        self.size = buf.size if buf is not None else os.fstat(self._fd).st_size  # type: ignore[arg-type]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def reader(self) -> pa.NativeFile:
        """A fresh stream over all the bytes (no decompression by file name)."""
        return pa.BufferReader(self._buf) if self._buf is not None else pa.OSFile(self._path)

    def read(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if self._buf is not None:
            return self._buf.slice(start, max(0, end - start)).to_pybytes()
        return os.pread(self._fd, max(0, end - start), start)  # type: ignore[arg-type]

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        for pos in range(0, self.size, _BLOCK):
            yield pos, np.frombuffer(self.read(pos, pos + _BLOCK), np.uint8)


def _header(data: _Data) -> list[str]:
    """Lower-cased, stripped column names of the first line."""
    head = b""
    for _, block in data.blocks():
        head += block.tobytes()
        if b"\n" in head:
            break
    line = head.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r")
    return [f.strip().lower() for f in _field_list(line)]


def _read_csv(
    data: _Data, ncols: int, cols: dict[str, int], text_numbers: bool, threads: bool
) -> tuple[pa.Table, list[pcsv.InvalidRow]]:
    names = [f"c{i}" for i in range(ncols)]
    number = pa.binary() if text_numbers else pa.float64()
    types = {names[i]: number for c, i in cols.items() if c in _NUMERIC}
    types[names[cols["timestamp"]]] = pa.binary()
    types[names[cols["ticker"]]] = pa.dictionary(pa.int32(), pa.binary())
    skipped: list[pcsv.InvalidRow] = []

    def on_invalid(row: pcsv.InvalidRow) -> str:
        skipped.append(row)
        return "skip"

    with _quiet_handler_errors():
        table = pcsv.read_csv(
            data.reader(),
            read_options=pcsv.ReadOptions(
                column_names=names, skip_rows=1, block_size=_BLOCK, use_threads=threads
            ),
            parse_options=pcsv.ParseOptions(
                ignore_empty_lines=False, invalid_row_handler=on_invalid
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                include_columns=[names[i] for i in cols.values()],
                null_values=[""],
                strings_can_be_null=True,
            ),
            memory_pool=pa.system_memory_pool(),  # in this VM mimalloc's page resets cost more
        )
    return table.rename_columns(list(cols)), skipped


@contextlib.contextmanager
def _quiet_handler_errors() -> Iterator[None]:
    """Silence Arrow's report of a ragged row it could not decode (``_read`` retries those)."""
    previous = sys.unraisablehook

    def hook(info: Any) -> None:
        if not isinstance(info.exc_value, UnicodeDecodeError):
            previous(info)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _read(
    data: _Data, source: str, ncols: int, cols: dict[str, int]
) -> tuple[pa.Table, list[pcsv.InvalidRow], bool]:
    """The table in file order, the rows Arrow skipped (ragged), with their line numbers, and
    whether invalid UTF-8 had to be replaced by NUL bytes first."""
    text_numbers = cleaned = False
    while True:
        try:
            try:
                table, skipped = _read_csv(data, ncols, cols, text_numbers, True)
            except pa.ArrowInvalid as exc:
                if "conversion error" not in str(exc) or text_numbers:
                    raise
                text_numbers = True  # a number that does not parse: read numbers as text
                table, skipped = _read_csv(data, ncols, cols, True, True)
            if skipped:  # only a single-threaded read numbers the skipped rows
                table, skipped = _read_csv(data, ncols, cols, text_numbers, False)
            return table, skipped, cleaned
        except pa.ArrowException as exc:
            # Arrow cannot hand a ragged row with invalid UTF-8 to the handler: replace such
            # bytes by NUL (line numbers stay) and try once more; a NUL ticker is rejected.
            whole = data.read(0, data.size) if not cleaned and "parse error" in str(exc) else b""
            try:
                whole.decode("utf-8")
                raise InputError(f"{source}: cannot read CSV ({exc})") from exc
            except UnicodeDecodeError:
                data = _Data(pa.py_buffer(whole.decode("utf-8", "quote_replay.nul").encode()))
                cleaned = True


def _nul(exc: UnicodeError) -> tuple[str, int]:
    return "\x00", exc.end  # type: ignore[attr-defined]


codecs.register_error("quote_replay.nul", _nul)


def _line_numbers(rows: np.ndarray, skipped_lines: np.ndarray) -> np.ndarray:
    """Physical line of table rows (0-based), given the sorted lines Arrow skipped."""
    if not len(skipped_lines):
        return rows + 2
    gaps = skipped_lines - 2 - np.arange(len(skipped_lines))
    return rows + 2 + np.searchsorted(gaps, rows, side="right")


def _line_texts(data: _Data, lines: Sequence[int]) -> dict[int, str]:
    """Text of the given physical lines (1-based), without the line end."""
    need = np.unique(np.asarray(lines, np.int64))
    if not len(need):
        return {}
    want = np.union1d(need, need + 1)  # a line ends where the next one starts
    start = np.where(want == 1, 0, -1)  # byte offset where each wanted line starts
    seen = 0  # newlines before the current block
    for pos, block in data.blocks():
        nl = np.flatnonzero(block == 10)
        j = want - 2 - seen  # line k starts after newline number k - 1 (0-based: k - 2)
        hit = (j >= 0) & (j < len(nl))
        start[hit] = pos + nl[j[hit]] + 1
        seen += len(nl)
        if seen >= want[-1] - 1:
            break
    where = dict(zip(want.tolist(), start.tolist(), strict=True))
    out = {}
    for k in need.tolist():
        if where[k] >= 0:
            end = where[k + 1] - 1 if where[k + 1] >= 0 else data.size
            text = data.read(where[k], end).decode("utf-8", "replace").rstrip("\r")
            out[k] = clip_raw(text)
    return out


# --- validation -------------------------------------------------------------------------------


def _floats(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Values (NaN when missing), the empty mask and the not-a-number-text mask of a column
    (None for a mask known to be all false)."""
    if col.type == pa.float64():
        values = col.to_numpy()
        empty = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
        return values, empty, None
    parts = [_text_floats(chunk) for chunk in col.chunks]
    if not parts:
        return np.zeros(0), None, None
    values, empty, bad = (np.concatenate(p) for p in zip(*parts, strict=True))
    return values, empty, bad


def _text_floats(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse a binary column chunk as Arrow's CSV reader would, flagging what does not parse."""
    n = len(arr)
    text = pc.replace_substring_regex(arr, r"^[ \t]+|[ \t]+$", "")
    empty = pc.fill_null(pc.equal(pc.binary_length(text), 0), True)
    good = pc.and_(pc.fill_null(pc.match_substring_regex(text, NUMBER_RE), False), pc.invert(empty))
    try:
        values = pc.if_else(good, text, b"nan").cast(pa.float64())
        good_np = good.to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:  # the pattern let through something Arrow refuses: go one by one
        good_np = good.to_numpy(zero_copy_only=False).copy()
        out = np.full(n, np.nan)
        for i in np.flatnonzero(good_np):
            try:
                out[i] = pa.array([text[i].as_py()], pa.binary()).cast(pa.float64())[0].as_py()
            except pa.ArrowInvalid:
                good_np[i] = False
        values = pa.array(out)
    empty_np = empty.to_numpy(zero_copy_only=False)
    return values.to_numpy(zero_copy_only=False), empty_np, ~good_np & ~empty_np


def _ticker_codes(
    col: pa.ChunkedArray, nul_is_bad: bool = False
) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Dictionary index per row, reject code per row (0 = fine) and the shared dictionary.
    With ``nul_is_bad`` a NUL byte stands for invalid UTF-8 (see ``_read``)."""
    col = col.unify_dictionaries()
    if col.num_chunks == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.uint8), pa.array([], pa.string())
    dictionary = col.chunks[0].dictionary
    lengths = pc.binary_length(dictionary).to_numpy(zero_copy_only=False)
    dict_code = np.where(lengths > MAX_TICKER_BYTES, _TK_LONG, 0).astype(np.uint8)
    if nul_is_bad:
        nul = pc.match_substring(dictionary, "\x00").to_numpy(zero_copy_only=False)
        dict_code[nul.astype(bool)] = _TK_UTF8
    try:
        dictionary.cast(pa.string())
    except pa.ArrowInvalid:
        for i, value in enumerate(dictionary.to_pylist()):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                dict_code[i] = _TK_UTF8
    index = np.concatenate(
        [pc.fill_null(chunk.indices, 0).to_numpy(zero_copy_only=False) for chunk in col.chunks]
    )
    code = dict_code[index] if dict_code.any() else np.zeros(len(index), np.uint8)
    if col.null_count:
        code[col.is_null().to_numpy(zero_copy_only=False)] = _TK_EMPTY
    return index, code, dictionary


def _reason(code: int, name: str, text: str | None) -> str:
    shown = repr(text) if text is not None else "?"
    if code == _TS_EMPTY:
        return "timestamp is empty"
    if code == _TS_BAD:
        return f"timestamp does not parse ({shown})"
    if code == _TS_RANGE:
        return f"timestamp is out of range ({shown})"
    if code == _TK_EMPTY:
        return "ticker is empty"
    if code == _TK_LONG:
        size = len(text.encode()) if text is not None else "?"
        return f"ticker is longer than {MAX_TICKER_BYTES} bytes ({size} bytes: {shown})"
    if code == _TK_UTF8:
        return "ticker is not valid UTF-8"
    kind = (code - 7) % 3
    if kind == _EMPTY:
        return f"{name} is empty"
    if kind == _NAN:
        return f"{name} is not a number ({shown})"
    return f"{name} is negative ({text if text is not None else '?'})"


def _code_field(code: int) -> str:
    if code <= _TS_RANGE:
        return "timestamp"
    if code <= _TK_UTF8:
        return "ticker"
    return next(name for name, base in _NUM_BASE.items() if base <= code < base + 3)


# --- the whole parse --------------------------------------------------------------------------


def _parse(data: _Data, source: str, required: Sequence[str]) -> Parsed:
    names = _header(data)
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    missing = [c for c in ("timestamp", "ticker", *required) if c not in index]
    if missing:
        raise MissingColumn(source, list(dict.fromkeys(missing)))
    cols = {c: index[c] for c in _FIELDS if c in index}
    table, skipped, cleaned = _read(data, source, len(names), cols)

    # With ignore_empty_lines=False Arrow numbers skipped rows by physical line; blank lines
    # come through as rows of nulls and are dropped without a reject.
    original = _line_texts(data, [row.number for row in skipped]) if cleaned else {}
    rejected = [
        Rejected(
            source,
            row.number,
            f"wrong number of fields ({row.actual_columns}, header has {len(names)})",
            original.get(row.number, clip_raw(row.text)),
        )
        for row in skipped
    ]
    skipped_lines = np.array(sorted(row.number for row in skipped), dtype=np.int64)
    code, ts, (tick_index, dictionary), numbers = _validate(table, cols, cleaned)
    bad_rows = np.flatnonzero(code)
    if len(bad_rows):
        lines = _line_numbers(bad_rows, skipped_lines)
        texts = _line_texts(data, lines.tolist())
        for c, line in zip(code[bad_rows].tolist(), lines.tolist(), strict=True):
            text = texts.get(line)
            if text is not None and not text.strip():
                continue  # a blank line
            name = _code_field(c)
            reason = _reason(c, name, _field(text, cols[name]))
            rejected.append(Rejected(source, line, reason, text or ""))
        rejected.sort(key=lambda rej: rej.line)
    del table, code
    return Parsed.of(
        _sorted_table(
            bad_rows, ts, tick_index, dictionary, numbers, skipped_lines, "latency" in cols
        ),
        rejected,
    )


def _sorted_table(
    bad_rows: np.ndarray,
    ts: np.ndarray,
    tick_index: np.ndarray,
    dictionary: pa.Array,
    numbers: _Numbers,
    skipped_lines: np.ndarray,
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
    latency = _array(numbers.pop("latency"))
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
        columns[name] = permute(_array(numbers.pop(name)), rows)
    tick = tick_index[rows]
    used = np.bincount(tick, minlength=len(dictionary)) > 0
    remap = np.cumsum(used, dtype=np.int32) - 1
    columns["ticker"] = pa.DictionaryArray.from_arrays(
        pa.array(remap[tick], pa.int32()), dictionary.filter(pa.array(used)).cast(pa.string())
    )
    columns["line"] = pa.array(_line_numbers(rows, skipped_lines))
    return pa.Table.from_arrays([columns[f.name] for f in TABLE_SCHEMA], schema=TABLE_SCHEMA)


def _array(column: pa.ChunkedArray | np.ndarray) -> np.ndarray:
    """A float column as one array (NaN where null)."""
    return column.to_numpy() if isinstance(column, pa.ChunkedArray) else column


def _validate(
    table: pa.Table, cols: dict[str, int], nul_is_bad: bool
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, pa.Array], _Numbers]:
    """Reject code per row (0 = fine), nanoseconds, ticker indices and dictionary, and the
    numeric columns (as arrays, or as Arrow columns for amounts that need no check)."""
    n = table.num_rows
    checks: list[tuple[np.ndarray, int]] = []  # (mask or codes, code), by priority
    ts, ts_code = parse_timestamps(table.column("timestamp"))
    tick_index, tick_code, dictionary = _ticker_codes(table.column("ticker"), nul_is_bad)
    checks += [(ts_code, -1), (tick_code, -1)]
    numbers: _Numbers = {}
    for name in _NUMERIC:
        column = table.column(name) if name in cols else None
        if column is None:
            numbers[name] = np.full(n, np.nan)
            continue
        if name not in _NUM_BASE:  # amounts: missing or not a number is carried as NaN
            if column.type == pa.float64():
                numbers[name] = column
            else:
                vals, _, bad = _floats(column)
                numbers[name] = np.where(bad, np.nan, vals) if bad is not None else vals
            continue
        vals, empty, bad = _floats(column)
        numbers[name] = vals
        base = _NUM_BASE[name]
        nan = np.isnan(vals)
        if empty is not None:
            checks.append((empty, base + _EMPTY))
            nan &= ~empty
        checks.append((nan if bad is None else nan | bad, base + _NAN))
        if name == "latency":
            checks.append((vals < 0, base + _NEG))
    code = np.zeros(n, np.uint8)
    for mask, value in reversed(checks):
        if value == -1:
            np.copyto(code, mask, where=mask != 0)
        elif mask.any():
            code[mask] = value
    return code, ts, (tick_index, dictionary), numbers


def _field(line: str | None, column: int) -> str | None:
    """Field number ``column`` of a raw CSV line, or None when the line has no such field."""
    if line is None:
        return None
    fields = _field_list(line)
    return fields[column] if column < len(fields) else None


def _field_list(line: str) -> list[str]:
    """The fields of one CSV line."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error:  # a stray carriage return inside the line
        return line.split(",")
