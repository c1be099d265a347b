"""Validation of the fields of a historical CSV table: reject codes and their reasons.

``validate`` checks timestamps, tickers and numbers of a table read by ``engine.csvread`` and
gives each row a reject code (0 = fine) as contract section 1 says; ``reject_reason`` and
``code_field`` turn a code into the reason written to the reject log.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.schema import MAX_TICKER_BYTES, NUMBER_PATTERN
from engine.csvread import NUMERIC
from engine.timestamps import parse_timestamps

#: The numeric columns by name, as ``validate`` returns them.
Numbers = dict[str, pa.ChunkedArray | np.ndarray]

# A decimal number as Arrow's float parser reads it (surrounding blanks are trimmed first).
NUMBER_RE = f"^{NUMBER_PATTERN}$"

# Reject codes, in the order they are checked: a row reports the first that applies.
_TS_EMPTY, _TS_BAD, _TS_RANGE, _TK_EMPTY, _TK_LONG, _TK_UTF8 = 1, 2, 3, 4, 5, 6
_EMPTY, _NAN, _NEG = 0, 1, 2
_NUM_BASE = {"bid_price": 7, "ask_price": 10, "latency": 13}
# Checked after the above: an infinite latency (it cannot be paced or ordered), a ticker with a
# control character (a newline would break the extended output line).
_LAT_INF, _TK_CTRL = 16, 17
#: Set by the reader on a row whose stray quote it hid (``engine.historical._read_records``).
QUOTE = 18
#: Control characters (C0 and DEL), as an RE2 class over the ticker's bytes.
CONTROL_RE = "[\\x00-\\x1f\\x7f]"


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
    With ``nul_is_bad`` a NUL byte stands for invalid UTF-8 (see ``csvread.read_table``)."""
    col = col.unify_dictionaries()
    if col.num_chunks == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.uint8), pa.array([], pa.string())
    dictionary = col.chunks[0].dictionary
    lengths = pc.binary_length(dictionary).to_numpy(zero_copy_only=False)
    dict_code = np.where(lengths > MAX_TICKER_BYTES, _TK_LONG, 0).astype(np.uint8)
    ctrl = pc.fill_null(pc.match_substring_regex(dictionary, CONTROL_RE), False)
    dict_code[ctrl.to_numpy(zero_copy_only=False) & (dict_code == 0)] = _TK_CTRL
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


def reject_reason(code: int, name: str, text: str | None) -> str:
    """The reject log's reason for ``code``; ``text`` is the field ``name`` as written."""
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
    if code == _TK_CTRL:
        return f"ticker holds a control character ({shown})"
    if code == _LAT_INF:
        return f"latency is not finite ({shown})"
    if code == QUOTE:
        return "a quote is never closed"
    kind = (code - 7) % 3
    if kind == _EMPTY:
        return f"{name} is empty"
    if kind == _NAN:
        return f"{name} is not a number ({shown})"
    return f"{name} is negative ({text if text is not None else '?'})"


def code_field(code: int) -> str:
    """The field a reject code is about."""
    if code <= _TS_RANGE:
        return "timestamp"
    if code <= _TK_UTF8 or code == _TK_CTRL:
        return "ticker"
    if code == _LAT_INF:
        return "latency"
    if code == QUOTE:
        return "ticker"
    return next(name for name, base in _NUM_BASE.items() if base <= code < base + 3)


def float_array(column: pa.ChunkedArray | np.ndarray) -> np.ndarray:
    """A float column as one array (NaN where null)."""
    return column.to_numpy() if isinstance(column, pa.ChunkedArray) else column


def validate(
    table: pa.Table, cols: dict[str, int], nul_is_bad: bool
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, pa.Array], Numbers]:
    """Reject code per row (0 = fine), nanoseconds, ticker indices and dictionary, and the
    numeric columns (as arrays, or as Arrow columns for amounts that need no check)."""
    n = table.num_rows
    checks: list[tuple[np.ndarray, int]] = []  # (mask or codes, code), by priority
    ts, ts_code = parse_timestamps(table.column("timestamp"))
    tick_index, tick_code, dictionary = _ticker_codes(table.column("ticker"), nul_is_bad)
    checks += [(ts_code, -1), (tick_code, -1)]
    numbers: Numbers = {}
    for name in NUMERIC:
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
            checks.append((np.isposinf(vals), _LAT_INF))
    code = np.zeros(n, np.uint8)
    for mask, value in reversed(checks):
        if value == -1:
            np.copyto(code, mask, where=mask != 0)
        elif mask.any():
            code[mask] = value
    return code, ts, (tick_index, dictionary), numbers

