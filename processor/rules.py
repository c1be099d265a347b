"""The rules of contract section 3 applied to one batch of quotes, giving the bytes of both logs.

For each record, in batch order: a historical record whose latency is above the threshold
(strictly) is an error line; otherwise a quote whose bid or ask is not a positive finite number
is an error line; otherwise it is a mid price line. ``render`` is pure: it reads the batch (never
writes to it, its arrays may be views into shared memory) and returns the text to append.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from common.schema import Mode
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
    """The lines one batch adds to ``mid_prices.log`` and ``errors.log``.

    The text comes in parts, to be written one after the other: views of the Arrow buffers the
    lines were made in (no copies); ``mid`` and ``errors`` join them.
    """

    mid_parts: tuple[memoryview, ...]
    error_parts: tuple[memoryview, ...]
    n_mid: int
    n_errors: int

    @property
    def mid(self) -> bytes:
        """The ``mid_prices.log`` lines."""
        return b"".join(self.mid_parts)

    @property
    def errors(self) -> bytes:
        """The ``errors.log`` lines."""
        return b"".join(self.error_parts)


def _numpy(batch: pa.RecordBatch, name: str) -> npt.NDArray:
    column = batch.column(name)
    if column.null_count:
        raise ValueError(f"column {name!r} has nulls")
    return column.to_numpy(zero_copy_only=False)


def _data(lines: pa.Array) -> memoryview:
    """The concatenated values of a string array (a view of its buffer)."""
    if not len(lines):
        return memoryview(b"")
    bounds = decimals.string_offsets(lines)
    return memoryview(lines.buffers()[2])[int(bounds[0]) : int(bounds[-1])]


_INLINE_MASKS = np.array([(1 << 8 * min(max(k - 4, 0), 8)) - 1 for k in range(64)], dtype=np.uint64)


def _cast(views: npt.NDArray[np.uint64], buffers: list[pa.Buffer], total: int) -> pa.Array:
    kind = pa.large_string() if total >= 2**31 else pa.string()
    array = pa.Array.from_buffers(
        pa.string_view(), len(views), [None, pa.py_buffer(views), *buffers]
    )
    return pc.cast(array, kind)


def _mid_lines(
    ts: npt.NDArray[np.int64],
    bid: npt.NDArray[np.float64],
    ask: npt.NDArray[np.float64],
    tickers: pa.Array | None,
) -> pa.Array:
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
    extra = [
        rows.view(np.uint8)[i, _PREFIX_AT:_MID_AT].tobytes() + t + b"\n"
        for i, t in zip(slow, slow_text, strict=True)
    ]
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


def _slow_views(
    views: npt.NDArray[np.uint64], rows: list[int], texts: list[bytes], at: list[int]
) -> None:
    """Point the views of ``rows`` at their ``texts``, stored at ``at`` in buffer 1."""
    for i, text, where in zip(rows, texts, at, strict=True):
        if len(text) <= 12:
            raw = len(text).to_bytes(4, "little") + text.ljust(12, b"\0")
        else:
            raw = len(text).to_bytes(4, "little") + text[:4] + (1).to_bytes(4, "little")
            raw += where.to_bytes(4, "little")
        views[i] = np.frombuffer(raw, dtype=np.uint64)


def _stamped(ts: npt.NDArray[np.int64], head: bytes, tail: bytes) -> pa.StringArray:
    """``head + <timestamp> + tail`` for each timestamp."""
    width = len(head) + timefmt.WIDTH + len(tail)
    raw = np.empty((ts.size, width), dtype=np.uint8)
    raw[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    stamps = timefmt.timestamp_words(ts).view(np.uint8)[:, timefmt.ROW_BYTES - timefmt.WIDTH :]
    raw[:, len(head) : len(head) + timefmt.WIDTH] = stamps
    raw[:, len(head) + timefmt.WIDTH :] = np.frombuffer(tail, dtype=np.uint8)
    offsets = np.arange(0, (ts.size + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(ts.size, pa.py_buffer(offsets), pa.py_buffer(raw))


def _interleave(parts: list[tuple[npt.NDArray[np.intp], pa.Array]], n: int) -> memoryview:
    """The lines of ``parts`` (rows, lines), each line going to its row of ``n``, joined.

    Every line starts with ``No m`` and is longer than 12 bytes: a string view of it holds its
    length, those 4 bytes, its buffer and its offset.
    """
    views = np.empty((n, 2), dtype=np.uint64)
    buffers = []
    for index, (rows, lines) in enumerate(parts):
        bounds = decimals.string_offsets(lines)
        views[rows, 0] = np.diff(bounds).astype(np.uint64) | _NO_M
        views[rows, 1] = np.uint64(index) | (bounds[:-1].astype(np.uint64) << _HALF)
        buffers.append(lines.buffers()[2])
    return _data(_cast(views, buffers, sum(b.size for b in buffers)))


def _error_lines(
    ts: npt.NDArray[np.int64],
    late: npt.NDArray[np.bool_],
    latency: npt.NDArray[np.float64],
    bid: npt.NDArray[np.float64],
    ask: npt.NDArray[np.float64],
    rows: npt.NDArray[np.intp],
    threshold: float,
) -> memoryview:
    """The error lines of ``rows``: latency over the threshold where ``late``, invalid quote
    elsewhere.

    Each kind is joined column-wise from Arrow string arrays (the numbers' plain text from
    ``decimals.format_plain``); string views then interleave the two kinds in batch order.
    """
    parts: list[tuple[npt.NDArray[np.intp], pa.Array]] = []
    is_late = late.take(rows)
    over = np.flatnonzero(is_late)  # positions among the error lines
    if over.size:
        at = rows.take(over)
        parts.append((over, pc.binary_join_element_wise(
            _stamped(ts.take(at), b"No mid price at ", b" as latency "),
            decimals.format_plain(latency.take(at)),
            f"ms is bigger than {decimals.plain_text(threshold)}ms\n", "",
        )))  # fmt: skip
    invalid = np.flatnonzero(~is_late)
    if invalid.size:
        at = rows.take(invalid)
        parts.append((invalid, pc.binary_join_element_wise(
            _stamped(ts.take(at), b"No mid price at ", b" as quote is invalid (bid "),
            decimals.format_plain(bid.take(at)), ", ask ", decimals.format_plain(ask.take(at)),
            ")\n", "",
        )))  # fmt: skip
    if len(parts) == 1:
        return _data(parts[0][1])
    return _interleave(parts, rows.size)


def _tickers(column: pa.Array, keep: npt.NDArray[np.bool_]) -> pa.Array:
    """``<ticker>, `` of the kept rows."""
    if isinstance(column, pa.DictionaryArray):
        names = pc.binary_join_element_wise(column.dictionary.cast(pa.string()), ", ", "")
        return names.take(column.indices.filter(pa.array(keep)))
    return pc.binary_join_element_wise(column.filter(pa.array(keep)).cast(pa.string()), ", ", "")


def _joined(parts: list[Rendered]) -> Rendered:
    return Rendered(
        tuple(m for p in parts for m in p.mid_parts),
        tuple(e for p in parts for e in p.error_parts),
        sum(p.n_mid for p in parts),
        sum(p.n_errors for p in parts),
    )


def classify(
    batch: pa.RecordBatch, threshold: float
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """``(late, good)`` per record: historical with a latency over ``threshold`` (an error
    line), and a mid price line (not late, bid and ask positive and finite)."""
    bid, ask, latency = (_numpy(batch, c) for c in ("bid_price", "ask_price", "latency"))
    late = (_numpy(batch, "mode") == Mode.HISTORICAL) & (latency > threshold)
    good = (bid > 0) & (ask > 0) & (bid < np.inf) & (ask < np.inf) & ~late
    return late, good


def render(batch: pa.RecordBatch, threshold: float, extended: bool = False) -> Rendered:
    """The ``mid_prices.log`` and ``errors.log`` lines of ``batch``, in batch order.

    ``extended`` selects ``<timestamp>, <ticker>, <mid_price>`` for the mid lines.
    """
    if not batch.num_rows:
        return Rendered((), (), 0, 0)
    if batch.num_rows > _MAX_ROWS:  # keeps string-view offsets within 32 bits
        return _joined(
            [
                render(batch.slice(i, _MAX_ROWS), threshold, extended)
                for i in range(0, batch.num_rows, _MAX_ROWS)
            ]
        )
    ts = _numpy(batch, "timestamp").view(np.int64)
    bid, ask, latency = (_numpy(batch, c) for c in ("bid_price", "ask_price", "latency"))
    late, good = classify(batch, threshold)
    # Row numbers and take(), not boolean indexing: numpy's masked gather is several times
    # slower on a mask that alternates at random.
    mid_rows = np.flatnonzero(good)
    n_mid = mid_rows.size
    n_errors = batch.num_rows - n_mid
    mid: tuple[memoryview, ...] = ()
    errors: tuple[memoryview, ...] = ()
    if n_mid:
        tickers = _tickers(batch.column("ticker"), good) if extended else None
        if n_mid < batch.num_rows:
            mid = (_data(_mid_lines(ts.take(mid_rows), bid.take(mid_rows), ask.take(mid_rows),
                                    tickers)),)  # fmt: skip
        else:
            mid = (_data(_mid_lines(ts, bid, ask, tickers)),)
    if n_errors:
        errors = (
            _error_lines(ts, late, latency, bid, ask, np.flatnonzero(~good), float(threshold)),
        )
    return Rendered(mid, errors, n_mid, n_errors)


def warm_up() -> None:
    """Render a small made-up batch once, so that the one-time costs of the first render (lazy
    imports, lookup tables, Arrow kernels) are paid before records arrive."""
    n = 4
    batch = pa.record_batch({
        "timestamp": pa.Array.from_buffers(
            pa.timestamp("ns"), n, [None, pa.py_buffer(np.arange(n, dtype=np.int64))]),
        "bid_price": np.array([1.0, 0.0, 1.0, 2.5]),
        "ask_price": np.array([2.0, 3e-8, 1.5, np.inf]),
        "latency": np.array([0.0, 1.0, 99.5, 0.0]),
        "mode": np.full(n, Mode.HISTORICAL, dtype=np.uint8),
    })  # fmt: skip
    render(batch, 20.0)
