"""The rules of contract section 3 applied to one batch of quotes, giving the bytes of both logs.

For each record, in batch order: a historical record whose latency is above the threshold
(strictly) is an error line; otherwise a quote whose bid or ask is not a positive finite number
is an error line; otherwise it is a mid price line. ``render`` is pure: it reads the batch (never
writes to it, its arrays may be views into shared memory) and returns the text to append.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from common.schema import HISTORICAL
from processor import decimals, timefmt

_ROW_WORDS = 4 + decimals.MID_WORDS  # timestamp words, then mid words
_ROW_BYTES = 8 * _ROW_WORDS
_PREFIX = len(", ") + timefmt.WIDTH  # "<timestamp>, "
_PREFIX_AT = timefmt.ROW_BYTES - _PREFIX
_MID_AT = timefmt.ROW_BYTES
_HALF = np.uint64(32)
_TOP = np.uint64(8 * _PREFIX_AT)  # word 0 holds the first byte of the line at its top
_PREFIX_SHIFT = np.uint64(32 + 8 * (8 - _PREFIX_AT))
_HIGH_HALF = np.uint64(0xFFFFFFFF00000000)
_MAX_ROWS = 1 << 23
_NO_M = np.uint64(int.from_bytes(b"No m", "little") << 32)  # the first 4 bytes of errors


@dataclass(frozen=True)
class Rendered:
    """The lines one batch adds to ``mid_prices.log`` and ``errors.log``."""

    mid: bytes
    errors: bytes
    n_mid: int
    n_errors: int


def _numpy(batch: pa.RecordBatch, name: str) -> npt.NDArray:
    column = batch.column(name)
    if column.null_count:
        raise ValueError(f"column {name!r} has nulls")
    return column.to_numpy(zero_copy_only=False)


def _data(lines: pa.Array) -> bytes:
    """The concatenated values of a string array."""
    if not len(lines):
        return b""
    kind = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    _, offsets, data = lines.buffers()
    bounds = np.frombuffer(offsets, dtype=kind)[[lines.offset, lines.offset + len(lines)]]
    return data[int(bounds[0]) : int(bounds[1])].to_pybytes()


_INLINE_MASKS = np.array([(1 << 8 * min(max(k - 4, 0), 8)) - 1 for k in range(64)],
                         dtype=np.uint64)


def _cast(views: npt.NDArray[np.uint64], buffers: list[pa.Buffer], total: int) -> pa.Array:
    kind = pa.large_string() if total >= 2**31 else pa.string()
    array = pa.Array.from_buffers(
        pa.string_view(), len(views), [None, pa.py_buffer(views), *buffers]
    )
    return pc.cast(array, kind)


def _mid_lines(ts: npt.NDArray[np.int64], bid: npt.NDArray[np.float64],
               ask: npt.NDArray[np.float64], tickers: pa.Array | None) -> pa.Array:
    """Mid price lines; with ``tickers``, the extended format.

    Row ``i`` of a matrix holds ``<timestamp>, `` in words 0-3 (from byte 7) and the mid text
    from word 4 on, followed by a newline; Arrow string views over it make the lines (or, in
    the extended format, their two parts either side of the ticker).
    """
    n = ts.size
    rows = np.empty((n, _ROW_WORDS), dtype=np.uint64)
    line = np.empty((n, 2), dtype=np.uint64)  # string views: whole lines, or the prefixes
    mids = np.empty((n, 2), dtype=np.uint64) if tickers is not None else line
    slow: list[int] = []
    slow_text: list[bytes] = []
    for start in range(0, n, decimals.CHUNK):
        part = slice(start, start + decimals.CHUNK)
        block = rows[part]
        timefmt.timestamp_words(ts[part], b", ", out=block[:, :4])
        text = decimals.mid_text(bid[part], ask[part], out=block[:, 4:])
        local = np.arange(len(block), dtype=np.int64) * _ROW_BYTES
        block.view(np.uint8).reshape(-1)[local + _MID_AT + text.length] = ord("\n")
        first4 = ((block[:, 0] >> _TOP) << _HALF) | (block[:, 1] << _PREFIX_SHIFT)
        at = (local + (start * _ROW_BYTES + _PREFIX_AT)).astype(np.uint64) << _HALF
        line[part, 1] = at
        slow += (text.slow + start).tolist()
        slow_text += text.slow_text
        if tickers is None:
            line[part, 0] = first4 | (text.length + (_PREFIX + 1)).astype(np.uint64)
            continue
        line[part, 0] = first4 | np.uint64(_PREFIX)
        length = text.length + 1
        head, next8 = block[:, 4], block[:, 5]
        mids[part, 0] = length.astype(np.uint64) | (head << _HALF)
        inline = ((head >> _HALF) | (next8 << _HALF)) & _INLINE_MASKS.take(length)
        mids[part, 1] = np.where(length <= 12, inline, at + (np.uint64(_PREFIX) << _HALF))
    buffers = [pa.py_buffer(rows)]
    extra = [rows.view(np.uint8)[i, _PREFIX_AT:_MID_AT].tobytes() + t + b"\n"
             for i, t in zip(slow, slow_text, strict=True)]
    if extra:
        buffers.append(pa.py_buffer(b"".join(extra)))
    total = n * _ROW_BYTES + sum(map(len, extra))
    at = np.cumsum([0, *map(len, extra)])[:-1].tolist()
    if tickers is None:
        _slow_views(line, slow, extra, at)
        return _cast(line, buffers, total)
    _slow_views(line, slow, [x[:_PREFIX] for x in extra], at)
    _slow_views(mids, slow, [x[_PREFIX:] for x in extra], [a + _PREFIX for a in at])
    return pc.binary_join_element_wise(
        _cast(line, buffers, total), tickers, _cast(mids, buffers, total), ""
    )


def _slow_views(views: npt.NDArray[np.uint64], rows: list[int], texts: list[bytes],
                at: list[int]) -> None:
    """Point the views of ``rows`` at their ``texts``, stored at ``at`` in buffer 1."""
    for i, text, where in zip(rows, texts, at, strict=True):
        if len(text) <= 12:
            raw = len(text).to_bytes(4, "little") + text.ljust(12, b"\0")
        else:
            raw = len(text).to_bytes(4, "little") + text[:4] + (1).to_bytes(4, "little")
            raw += where.to_bytes(4, "little")
        views[i] = np.frombuffer(raw, dtype=np.uint64)


def _texts(ts: npt.NDArray[np.int64], head: bytes, tail: bytes) -> pl.Series:
    """``head + <timestamp> + tail`` for each timestamp."""
    width = len(head) + timefmt.WIDTH + len(tail)
    raw = np.empty((ts.size, width), dtype=np.uint8)
    raw[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    stamps = timefmt.timestamp_words(ts).view(np.uint8)[:, timefmt.ROW_BYTES - timefmt.WIDTH :]
    raw[:, len(head) : len(head) + timefmt.WIDTH] = stamps
    raw[:, len(head) + timefmt.WIDTH :] = np.frombuffer(tail, dtype=np.uint8)
    offsets = np.arange(0, (ts.size + 1) * width, width, dtype=np.int64)
    return pl.from_arrow(
        pa.LargeStringArray.from_buffers(ts.size, pa.py_buffer(offsets), pa.py_buffer(raw))
    )


def _numbers(values: npt.NDArray[np.float64]) -> pl.Series:
    """A column Polars writes as the plain text of each value (``decimals.format_plain``)."""
    if decimals.may_tie(values).any():  # rare: texts from the exact path
        return pl.from_arrow(decimals.format_plain(values))
    return pl.Series(values=values, nan_to_null=True)  # nulls print as "nan"


def _constant(text: bytes, n: int) -> pl.Series:
    """``text`` ``n`` times."""
    offsets = np.arange(0, (n + 1) * len(text), len(text), dtype=np.int64)
    data = pa.py_buffer(text * n)
    return pl.from_arrow(pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), data))


def _csv(columns: list[pl.Series], separator: str, terminator: str) -> bytes:
    sink = io.BytesIO()
    pl.DataFrame(columns).write_csv(
        sink, include_header=False, separator=separator, line_terminator=terminator,
        quote_style="never", float_scientific=False, null_value="nan",
    )
    return sink.getvalue()


def _error_lines(ts: npt.NDArray[np.int64], late: npt.NDArray[np.bool_],
                 latency: npt.NDArray[np.float64], bid: npt.NDArray[np.float64],
                 ask: npt.NDArray[np.float64], threshold: float) -> bytes:
    """Error lines: latency over the threshold where ``late``, invalid quote elsewhere.

    Polars writes the lines of each kind (its float format is the plain text); string
    views then interleave them in batch order.
    """
    late_rows = np.flatnonzero(late)
    bad_rows = np.flatnonzero(~late)
    texts: list[bytes] = []
    if late_rows.size:
        texts.append(_csv(
            [_texts(ts[late_rows], b"No mid price at ", b" as latency"),
             _numbers(latency[late_rows])],
            " ", f"ms is bigger than {decimals.plain_text(threshold)}ms\n",
        ))
    if bad_rows.size:
        raw = _csv(
            [_texts(ts[bad_rows], b"No mid price at ", b" as quote is invalid (bid "),
             _numbers(bid[bad_rows]),
             _constant(b", ask ", bad_rows.size),
             _numbers(ask[bad_rows])],
            "\x01", ")\n",
        )
        texts.append(raw.replace(b"\x01", b""))  # separators go
    if len(texts) == 1:
        return texts[0]
    views = np.empty((ts.size, 2), dtype=np.uint64)
    for index, (rows, text) in enumerate(zip((late_rows, bad_rows), texts, strict=True)):
        ends = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == ord("\n")) + 1
        starts = np.concatenate([[0], ends[:-1]])
        views[rows, 0] = (ends - starts).astype(np.uint64) | _NO_M
        views[rows, 1] = np.uint64(index) | (starts.astype(np.uint64) << _HALF)
    return _data(_cast(views, [pa.py_buffer(t) for t in texts], sum(map(len, texts))))


def _tickers(column: pa.Array, keep: npt.NDArray[np.bool_]) -> pa.Array:
    """``<ticker>, `` of the kept rows."""
    if isinstance(column, pa.DictionaryArray):
        names = pc.binary_join_element_wise(column.dictionary.cast(pa.string()), ", ", "")
        return names.take(column.indices.filter(pa.array(keep)))
    return pc.binary_join_element_wise(column.filter(pa.array(keep)).cast(pa.string()), ", ", "")


def render(batch: pa.RecordBatch, threshold: float, extended: bool = False) -> Rendered:
    """The ``mid_prices.log`` and ``errors.log`` lines of ``batch``, in batch order.

    ``extended`` selects ``<timestamp>, <ticker>, <mid_price>`` for the mid lines.
    """
    if not batch.num_rows:
        return Rendered(b"", b"", 0, 0)
    if batch.num_rows > _MAX_ROWS:  # keeps string-view offsets within 32 bits
        parts = [render(batch.slice(i, _MAX_ROWS), threshold, extended)
                 for i in range(0, batch.num_rows, _MAX_ROWS)]
        return Rendered(b"".join(p.mid for p in parts), b"".join(p.errors for p in parts),
                        sum(p.n_mid for p in parts), sum(p.n_errors for p in parts))
    ts = _numpy(batch, "timestamp").view(np.int64)
    bid = _numpy(batch, "bid_price")
    ask = _numpy(batch, "ask_price")
    latency = _numpy(batch, "latency")
    late = (_numpy(batch, "mode") == HISTORICAL) & (latency > threshold)
    good = (bid > 0) & (ask > 0) & (bid < np.inf) & (ask < np.inf) & ~late
    n_mid = int(np.count_nonzero(good))
    n_errors = batch.num_rows - n_mid
    mid = errors = b""
    ts_all, bid_all, ask_all = ts, bid, ask
    if n_mid:
        tickers = _tickers(batch.column("ticker"), good) if extended else None
        if n_mid < batch.num_rows:
            ts, bid, ask = ts[good], bid[good], ask[good]
        mid = _data(_mid_lines(ts, bid, ask, tickers))
    if n_errors:
        bad = ~good
        errors = _error_lines(ts_all[bad], late[bad], latency[bad], bid_all[bad], ask_all[bad],
                              float(threshold))
    return Rendered(mid, errors, n_mid, n_errors)
