"""Timestamps as text: ``YYYY-MM-DD HH:MM:SS.mmm`` in UTC, the fraction cut to milliseconds.

Cutting means flooring the nanoseconds since the epoch to whole milliseconds, so a time before
1970 prints the millisecond it lies in, with the calendar fields of that same instant
(``1969-12-31 23:59:59.999999999`` prints ``1969-12-31 23:59:59.999``).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt
import pyarrow as pa

#: Length of the text of one timestamp.
WIDTH = 23
#: Bytes of each row returned by ``timestamp_words``.
ROW_BYTES = 32

_MS_NS = 1_000_000
_DAY_MS = 86_400_000


def _place(texts: npt.NDArray[np.bytes_], start: int) -> npt.NDArray[np.uint64]:
    """Fixed-width byte strings placed at ``start`` of zeroed 32-byte rows, as 4 words."""
    width = texts.dtype.itemsize
    raw = np.zeros((texts.size, ROW_BYTES), dtype=np.uint8)
    raw[:, start : start + width] = texts.view(np.uint8).reshape(-1, width)
    return raw.view(np.uint64)


def _text(*parts: npt.NDArray[np.uint8] | bytes, rows: int) -> npt.NDArray[np.bytes_]:
    """Rows of fixed-width text: each part is a column block of bytes or a constant."""
    blocks = [np.broadcast_to(np.frombuffer(p, dtype=np.uint8), (rows, len(p)))
              if isinstance(p, bytes) else p for p in parts]  # fmt: skip
    raw = np.ascontiguousarray(np.hstack(blocks))
    return raw.view(f"S{raw.shape[1]}").reshape(rows)


def _digits(values: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.uint8]:
    """``values`` as zero-padded decimal digits, ``width`` columns of ASCII."""
    powers = 10 ** np.arange(width - 1, -1, -1)
    return (ord("0") + values[:, None] // powers % 10).astype(np.uint8)


@cache
def _clock_tables(suffix: bytes) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Words of ``HH:MM:SS`` per second of the day and ``.mmm`` + suffix per millisecond.

    Only the columns of the words each one touches are kept (see ``_columns``).
    """
    start = ROW_BYTES - WIDTH - len(suffix)
    sec = np.arange(86_400)
    hms = _text(_digits(sec // 3600, 2), b":", _digits(sec // 60 % 60, 2), b":",
                _digits(sec % 60, 2), rows=sec.size)  # fmt: skip
    millis = _text(b".", _digits(np.arange(1000), 3), suffix, rows=1000)
    return _place(hms, start + 11), _place(millis, start + 19)


def _columns(table: npt.NDArray[np.uint64]) -> list[tuple[int, npt.NDArray[np.uint64]]]:
    """The words a table touches, each with its contiguous column."""
    return [(w, np.ascontiguousarray(table[:, w])) for w in range(4) if table[:, w].any()]


@cache
def _clock_columns(suffix: bytes) -> tuple[list[tuple[int, npt.NDArray[np.uint64]]], ...]:
    return tuple(_columns(table) for table in _clock_tables(suffix))


_CHUNK = 1 << 15  # rows at a time, so that the temporaries stay in the CPU cache


def timestamp_words(
    ts_ns: npt.NDArray[np.int64], suffix: bytes = b"", out: npt.NDArray[np.uint64] | None = None
) -> npt.NDArray[np.uint64]:
    """Each timestamp's text followed by ``suffix``, right-aligned in a 32-byte row.

    Returns ``n`` x 4 little-endian uint64 words (or fills ``out``, which may be a strided
    view); the text starts at byte ``32 - 23 - len(suffix)`` of its row, earlier bytes are 0.
    """
    if len(suffix) > ROW_BYTES - WIDTH:
        raise ValueError(f"suffix longer than {ROW_BYTES - WIDTH} bytes")
    ts_ns = np.asarray(ts_ns).view(np.int64)
    words = np.empty((ts_ns.size, 4), dtype=np.uint64) if out is None else out
    for i in range(0, ts_ns.size, _CHUNK):
        _fill(ts_ns[i : i + _CHUNK], suffix, words[i : i + _CHUNK])
    return words


def _fill(ts_ns: npt.NDArray[np.int64], suffix: bytes, words: npt.NDArray[np.uint64]) -> None:
    start = ROW_BYTES - WIDTH - len(suffix)
    ms = ts_ns // _MS_NS  # floor: cuts toward the earlier millisecond, also before 1970
    day = ms // _DAY_MS
    ms_of_day = ms - day * _DAY_MS
    sec = ms_of_day // 1000
    first, last = int(day.min()), int(day.max())
    dates = np.arange(first, last + 1).astype("datetime64[D]").astype("S10")
    day_table = _place(np.char.add(dates, b" ").astype("S11"), start)
    clock, millis = _clock_columns(suffix)
    parts = [(clock, sec), (millis, ms_of_day - sec * 1000)]
    if first == last:  # the usual case: the day's words are constants
        constant = day_table[0]
    else:
        constant = np.zeros(4, dtype=np.uint64)
        parts.append((_columns(day_table), day - first))
    filled = [False] * 4
    for columns, index in parts:
        for w, table in columns:
            column = table.take(index)
            if filled[w]:
                column |= words[:, w]
            elif constant[w]:
                column |= constant[w]
            words[:, w] = column
            filled[w] = True
    for w in range(4):
        if not filled[w]:
            words[:, w] = constant[w]


def timestamp_array(ts_ns: npt.NDArray[np.int64], suffix: bytes = b"") -> pa.StringArray:
    """Each timestamp's text followed by ``suffix``, as an Arrow string array."""
    ts_ns = np.asarray(ts_ns).view(np.int64)
    width = WIDTH + len(suffix)
    raw = timestamp_words(ts_ns, suffix).view(np.uint8)[:, ROW_BYTES - width :]
    offsets = np.arange(0, (ts_ns.size + 1) * width, width, dtype=np.int64)
    data = pa.py_buffer(np.ascontiguousarray(raw))
    if offsets[-1] >= 2**31:
        return pa.LargeStringArray.from_buffers(ts_ns.size, pa.py_buffer(offsets), data)
    return pa.StringArray.from_buffers(ts_ns.size, pa.py_buffer(offsets.astype(np.int32)), data)


def format_timestamps(ts_ns: npt.NDArray[np.int64]) -> list[str]:
    """Each timestamp's text, as Python strings."""
    return timestamp_array(ts_ns).to_pylist()
