"""Live websocket frames: parse and validate JSON quotes into an Arrow table (sans-I/O).

A frame is one quote object or a JSON array of them (contract section 1). ``parse_frame`` never
raises on bad input: what cannot be used comes back as ``Rejected`` items with a reason that
names the field and the object's 1-based position in the frame.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from common.schema import MAX_TICKER_BYTES, NUMBER_PATTERN, REQUIRED_COLUMNS, Mode
from engine.historical import TABLE_SCHEMA
from engine.rejects import Rejected, clip_raw
from engine.timestamps import parse_timestamp

# The same decimal grammar as the CSV reader, for numbers sent as text (blanks around allowed).
_NUMBER_RE = re.compile(rf"[ \t]*({NUMBER_PATTERN})[ \t]*")
_CONTROL = re.compile("[\x00-\x1f\x7f]")  # as engine.validate.CONTROL_RE
_REQUIRED = REQUIRED_COLUMNS[Mode.LIVE]


_cached_timestamp = lru_cache(maxsize=4096)(parse_timestamp)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


_decode = json.JSONDecoder(parse_constant=_reject_constant).decode


def number(name: str, value: Any) -> float | str:
    """A price or amount as float64, or the reason it is rejected.

    One rule for non-finite numbers, as in the CSV reader: a number that means infinity is
    infinity: the words ``inf``/``infinity`` (any case, signed) and a finite-looking number that
    overflows float64 (``1e400`` as a JSON number, a decimal string or a huge integer). NaN is
    not a number and is rejected (JSON has no NaN token; the decoder refuses ``NaN``)."""
    kind = type(value)
    if kind is float:
        return value  # JSON's 1e400 decodes as inf
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if kind is str:
        m = _NUMBER_RE.fullmatch(value)
        if m is None:
            return f"{name} is not a number ({value[:80]!r})"
        try:
            number = float(m[1])  # overflows to inf, as "inf" does
        except ValueError:  # "nan(123)": the grammar's NaN with a payload
            number = math.nan
        if number != number:
            return f"{name} is not a number ({value[:80]!r})"
        return number
    if value is None:
        return f"{name} is null"
    if kind is bool:
        return f"{name} is not a number ({json.dumps(value)})"
    return f"{name} has the wrong type ({json_type(value)})"


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool | str | dict | list):
        return _TYPE_NAMES[type(value)]
    return "number" if isinstance(value, int | float) else type(value).__name__


_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean"}


def raw_text(value: Any) -> str:
    try:
        return clip_raw(json.dumps(value, ensure_ascii=False, allow_nan=False))
    except (ValueError, TypeError):
        return clip_raw(repr(value))


def frame_text(data: str | bytes, max_bytes: int) -> tuple[str | None, str]:
    """The frame as text, or None and the reason it is rejected."""
    if isinstance(data, str):
        size = len(data) if len(data) * 4 <= max_bytes else len(data.encode("utf-8", "replace"))
        if size > max_bytes:
            return None, f"frame is larger than {max_bytes} bytes ({size} bytes)"
        return data, ""
    data = bytes(data)
    if len(data) > max_bytes:
        return None, f"frame is larger than {max_bytes} bytes ({len(data)} bytes)"
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError as exc:
        return None, f"frame is not valid UTF-8 (byte {exc.start})"


def checked_text(
    data: str | bytes, *, source: str, frame_no: int, max_bytes: int
) -> str | Rejected:
    """The frame as text, or the reject of a frame over ``max_bytes`` or not UTF-8."""
    text, why = frame_text(data, max_bytes)
    if text is not None:
        return text
    raw = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
    return Rejected(source, frame_no, why, clip_raw(raw))


def parse_json(text: str, *, source: str, frame_no: int) -> tuple[Any, Rejected | None]:
    """The frame's JSON document, or the reject of a frame that is not JSON (which includes
    ``NaN`` and ``Infinity``, not JSON tokens) or is nested too deeply. Every live format
    reads its frames through this (``engine.venues``)."""
    try:
        return _decode(text), None
    except RecursionError:
        return None, Rejected(source, frame_no, "frame is nested too deeply", clip_raw(text))
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, huge integers
        reason = f"frame is not valid JSON ({exc})"
        return None, Rejected(source, frame_no, reason, clip_raw(text))


def parse_frame(
    data: str | bytes,
    *,
    source: str,
    frame_no: int,
    received_ns: int,
    max_bytes: int = 1 << 20,
) -> tuple[pa.Table | None, list[Rejected]]:
    """Parse one websocket frame into records (``TABLE_SCHEMA``) and rejected objects.

    Every record gets ``line = frame_no``, ``arrival = received_ns`` and a NaN latency (live
    latency is ignored). Returns ``(None, rejects)`` when no object of the frame is valid.
    """
    rows, rejected = parse_rows(data, source=source, frame_no=frame_no, max_bytes=max_bytes)
    if not rows:
        return None, rejected
    return quotes_table(rows, frame_no, received_ns), rejected


def parse_rows(
    data: str | bytes, *, source: str, frame_no: int, max_bytes: int = 1 << 20
) -> tuple[list[tuple], list[Rejected]]:
    """:func:`parse_frame`'s work without the table: the frame's quotes as rows
    ``(ticker, ns, bid, ask, bid_amount, ask_amount)``, and its rejected objects."""
    text = checked_text(data, source=source, frame_no=frame_no, max_bytes=max_bytes)
    if isinstance(text, Rejected):
        return [], [text]
    doc, bad = parse_json(text, source=source, frame_no=frame_no)
    if bad is not None:
        return [], [bad]
    if type(doc) is dict:
        items: list[Any] = [doc]
    elif type(doc) is list:
        items = doc
    else:
        reason = f"frame is not a quote object or an array of them ({json_type(doc)})"
        return [], [Rejected(source, frame_no, reason, clip_raw(text))]

    rows: list[tuple] = []
    rejected: list[Rejected] = []
    for i, obj in enumerate(items, 1):
        row = _quote(obj)
        if type(row) is tuple:
            rows.append(row)
        else:
            reason = f"{row} (object {i} of frame)"
            rejected.append(Rejected(source, frame_no, reason, raw_text(obj)))
    return rows, rejected


def _quote(obj: Any) -> tuple[str, int, float, float, float, float] | str:
    """``(ticker, ns, bid, ask, bid_amount, ask_amount)`` of a quote object, or why it is bad."""
    if type(obj) is not dict:
        return f"item is not a quote object ({json_type(obj)})"
    try:
        ts, ticker, bid, ask = obj["timestamp"], obj["ticker"], obj["bid_price"], obj["ask_price"]
    except KeyError:
        return "missing field " + repr(next(name for name in _REQUIRED if name not in obj))
    if type(ts) is not str:
        return f"timestamp has the wrong type ({json_type(ts)})"
    ns = _cached_timestamp(ts)
    if type(ns) is str:
        return f"timestamp {ns} ({ts[:80]!r})"
    if type(ticker) is not str:
        return f"ticker has the wrong type ({json_type(ticker)})"
    try:
        size = len(ticker.encode("utf-8"))
    except UnicodeEncodeError:
        return "ticker is not valid UTF-8"
    if not 0 < size <= MAX_TICKER_BYTES:
        if size == 0:
            return "ticker is empty"
        return f"ticker is longer than {MAX_TICKER_BYTES} bytes ({size} bytes: {ticker[:80]!r})"
    if not ticker.isprintable() and _CONTROL.search(ticker):
        return f"ticker holds a control character ({ticker[:80]!r})"
    if type(bid) is not float:
        bid = number("bid_price", bid)
        if type(bid) is str:
            return bid
    if type(ask) is not float:
        ask = number("ask_price", ask)
        if type(ask) is str:
            return ask
    bid_amount, ask_amount = obj.get("bid_amount"), obj.get("ask_amount")
    if type(bid_amount) is not float:
        bid_amount = math.nan if bid_amount is None else number("bid_amount", bid_amount)
        if type(bid_amount) is str:
            return bid_amount
    if type(ask_amount) is not float:
        ask_amount = math.nan if ask_amount is None else number("ask_amount", ask_amount)
        if type(ask_amount) is str:
            return ask_amount
    # Every str was returned above, but mypy does not narrow on a failed ``type(x) is str`` (str
    # may be subclassed); the exact-type checks stay, they are cheaper than isinstance here.
    return ticker, ns, bid, ask, bid_amount, ask_amount  # type: ignore[return-value]


def quotes_table(
    rows: list[tuple], frame_no: int | np.ndarray, received_ns: int | np.ndarray
) -> pa.Table:
    """``(ticker, ns, bid, ask, bid_amount, ask_amount)`` rows as a ``TABLE_SCHEMA`` table; the
    ``line`` and ``arrival`` columns from one frame's number and receive time, or per row."""
    n = len(rows)
    tickers, stamps, *numbers = zip(*rows, strict=True)
    if n == 1:
        ticker = pa.DictionaryArray.from_arrays(_ZERO, pa.array(tickers, pa.string()))
    else:
        ticker = pa.array(tickers, pa.string()).dictionary_encode()
    floats = pa.array(np.array(numbers, np.float64).ravel())
    columns = [
        _int_column(frame_no, n),
        ticker,
        pa.array(np.array(stamps, np.int64)),
        _int_column(received_ns, n),
        pa.repeat(_NAN, n),
        *(floats.slice(k * n, n) for k in range(4)),
    ]
    return pa.Table.from_arrays(columns, schema=TABLE_SCHEMA)


def _int_column(value: int | np.ndarray, n: int) -> pa.Array:
    if isinstance(value, np.ndarray):
        return pa.array(value.astype(np.int64, copy=False))
    return pa.repeat(pa.scalar(value, pa.int64()), n)


_ZERO = pa.array([0], pa.int32())
_NAN = pa.scalar(float("nan"), pa.float64())
