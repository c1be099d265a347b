"""Quote timestamps: ``YYYY-MM-DD HH:MM:SS`` with an optional 1-9 digit fraction, UTC.

A ``T`` may stand for the space. Times become int64 nanoseconds since the epoch, exactly (no
float on the way). ``parse_timestamps`` does a whole Arrow column at once (historical files);
``parse_timestamp`` does one text (live frames). Both accept and refuse exactly the same texts.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pyarrow as pa

#: Codes per row from ``parse_timestamps``.
OK, EMPTY, BAD, RANGE = 0, 1, 2, 3

_MONTH_LEN = np.array([[0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]] * 2, np.int16)
_MONTH_LEN[1, 2] = 29  # row 1: leap years
# days of the year before each month
_MONTH_START: npt.NDArray[np.int64] = np.zeros((2, 13), np.int64)
_MONTH_START[:, 2:] = np.cumsum(_MONTH_LEN[:, 1:12], axis=1)
_MONTH_START, _MONTH_LEN = _MONTH_START.ravel(), _MONTH_LEN.ravel()
_YEAR_FIRST, _YEAR_LAST = 1677, 2262  # int64 nanoseconds since 1970 reach no further
_YEARS = np.arange(_YEAR_FIRST, _YEAR_LAST + 1)
_YEAR_LEAP = ((_YEARS % 4 == 0) & ((_YEARS % 100 != 0) | (_YEARS % 400 == 0))).astype(np.int16)
_YEAR_DAYS = np.array([f"{y}-01-01" for y in _YEARS], "datetime64[D]").astype(np.int64)
_DIGIT_AT = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15])
_PUNCT_AT, _PUNCT = np.array([4, 7, 13]), np.array([45, 45, 58], np.uint8)
_FIELD_MAX = np.array([12, 31, 23, 59], np.int16)


def _leap(year: np.ndarray) -> np.ndarray:
    return ((year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))).astype(np.int16)


def _minutes(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows ``YYYY-MM-DD HH:MM...``: seconds since the epoch at that minute, a code per row
    (0, ``BAD`` or ``RANGE``), and whether the year is at the edge of the int64 range."""
    digits = m[:, _DIGIT_AT] - np.uint8(48)
    ok = (digits <= 9).all(axis=1) & (m[:, _PUNCT_AT] == _PUNCT).all(axis=1)
    ok &= (m[:, 10] == 32) | (m[:, 10] == 84)
    pairs = digits[:, 0::2].astype(np.int16) * 10 + digits[:, 1::2]
    ok &= (pairs[:, 2:] <= _FIELD_MAX).all(axis=1) & (pairs[:, 2:4] >= 1).all(axis=1)
    year = pairs[:, 0].astype(np.int32) * 100 + pairs[:, 1]
    in_years = (year >= _YEAR_FIRST) & (year <= _YEAR_LAST)
    yi = np.clip(year - _YEAR_FIRST, 0, len(_YEARS) - 1)
    leap = _YEAR_LEAP[yi]
    if not in_years.all():
        leap[~in_years] = _leap(year[~in_years])
    month = leap * 13 + np.minimum(pairs[:, 2], 12)
    ok &= pairs[:, 3] <= _MONTH_LEN[month]
    days = _YEAR_DAYS[yi] + _MONTH_START[month] + (pairs[:, 3] - 1)
    sec = days * 86400 + (pairs[:, 4].astype(np.int64) * 3600 + pairs[:, 5] * 60)
    code = np.where(ok, np.where(in_years, 0, RANGE), BAD).astype(np.uint8)
    edge = (year == _YEAR_FIRST) | (year == _YEAR_LAST)
    return sec, code, edge


def _u64(m: np.ndarray, start: int) -> np.ndarray:
    """Bytes ``start .. start+7`` of each row of the C-contiguous (n, L) uint8 ``m`` as uint64."""
    return np.ndarray((m.shape[0],), np.uint64, m.reshape(-1), start, (m.shape[1],))


_ZEROS = np.uint64(0x3030303030303030)


def _digits8(word: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value of 8 ASCII digits packed little-endian (first digit lowest), and if all are digits."""
    ok = ((word & np.uint64(0xF0F0F0F0F0F0F0F0)) == _ZEROS) & (
        ((word + np.uint64(0x0606060606060606)) & np.uint64(0xF0F0F0F0F0F0F0F0)) == _ZEROS
    )
    v = ((word & np.uint64(0x0F0F0F0F0F0F0F0F)) * np.uint64(2561)) >> np.uint64(8)
    v = ((v & np.uint64(0x00FF00FF00FF00FF)) * np.uint64(6553601)) >> np.uint64(16)
    v = ((v & np.uint64(0x0000FFFF0000FFFF)) * np.uint64(42949672960001)) >> np.uint64(32)
    return v.astype(np.int64), ok


def _fixed_timestamps(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nanoseconds and codes for rows of ``m``, a C-contiguous (n, L) uint8 array of texts."""
    n, width = m.shape
    # Runs of rows in the same minute share the parse of "YYYY-MM-DD HH:MM".
    w0, w1 = _u64(m, 0), _u64(m, 8)
    heads = np.flatnonzero((w0[1:] != w0[:-1]) | (w1[1:] != w1[:-1])) + 1
    heads = np.concatenate([[0], heads])
    counts = np.diff(np.append(heads, n))
    minute, head_code, edge = _minutes(m[heads])
    code = np.repeat(head_code, counts)
    ns = np.repeat(np.where(head_code == 0, minute, 0) * 1_000_000_000, counts)
    s_hi, s_lo = m[:, 17] - np.uint8(48), m[:, 18] - np.uint8(48)
    ok = (m[:, 16] == 58) & (s_hi <= 5) & (s_lo <= 9)
    sec = s_hi.astype(np.int64) * 10 + s_lo
    ns += sec * 1_000_000_000
    frac = np.zeros(n, np.int64)
    if width > 19:
        digits = width - 20
        ok &= m[:, 19] == 46
        tail = _u64(m, width - 8)  # the last 8 bytes; pad what is not fraction with '0'
        keep = min(digits, 8) * 8
        if keep < 64:
            high = np.uint64(((1 << keep) - 1) << (64 - keep))
            tail = (tail & high) | (_ZEROS & ~high)
        frac, all_digits = _digits8(tail)
        ok &= all_digits
        if digits == 9:
            first = m[:, 20] - np.uint8(48)
            ok &= first <= 9
            frac += first.astype(np.int64) * 100_000_000
        else:
            frac *= 10 ** (9 - digits)
        ns += frac
    if edge.any():  # 1677 or 2262: check the int64 range row by row
        sec += np.repeat(minute, counts)
        rows = np.repeat(edge, counts) & (code == 0)
        fits = (sec > -9223372037) & (sec < 9223372036)
        fits |= (sec == 9223372036) & (frac <= 854775807)
        fits |= (sec == -9223372037) & (frac >= 145224192)
        code[rows & ~fits] = RANGE
        ns[rows] = sec[rows] * 1_000_000_000 + frac[rows]
    code[~ok] = BAD
    ns[code != 0] = 0
    return ns, code


def _chunk_timestamps(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    n = len(arr)
    ns, code = np.zeros(n, np.int64), np.full(n, BAD, np.uint8)
    if n == 0:
        return ns, code
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, np.int32, n + 1, arr.offset * 4).astype(np.int64)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    groups: list[tuple[int, npt.NDArray[np.intp] | None]]  # rows None: every row
    if arr.null_count == 0 and (lengths == lengths[0]).all():
        groups = [(int(lengths[0]), None)]
    else:
        groups = [(int(w), np.flatnonzero(lengths == w)) for w in np.unique(lengths)]
    for width, rows in groups:
        if width != 19 and not 21 <= width <= 29:
            continue
        if rows is None:
            m = data[offsets[0] : offsets[0] + n * width].reshape(n, width)
            ns, code = _fixed_timestamps(m)
        else:
            m = data[offsets[rows][:, None] + np.arange(width)]
            ns[rows], code[rows] = _fixed_timestamps(m)
    if arr.null_count:
        code[arr.is_null().to_numpy(zero_copy_only=False)] = EMPTY
    return ns, code


def parse_timestamps(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Parse a binary or string column of timestamps to int64 UTC nanoseconds.

    Accepts exactly ``YYYY-MM-DD HH:MM:SS`` with an optional ``.`` and 1 to 9 fraction digits, a
    ``T`` allowed for the space. Returns the nanoseconds (0 where rejected) and a code per row:
    0 fine, 1 empty (null), 2 does not parse, 3 outside the int64 nanosecond range.
    """
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    chunks = [c.cast(pa.binary()) if c.type == pa.string() else c for c in chunks]
    parts = [_chunk_timestamps(c) for c in chunks]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.uint8)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# --- one text at a time ---------------------------------------------------------------------------

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_TS_RE = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
)
_FRACTION_SCALE = [0, *(10 ** (9 - k) for k in range(1, 10))]


@lru_cache(maxsize=1 << 14)
def _day(date: str) -> int | None:
    """Days since 1970-01-01 of a ``YYYY-MM-DD`` text, or None for an impossible date."""
    try:
        return int(np.datetime64(date, "D").astype(np.int64)) if _valid_date(date) else None
    except ValueError:
        return None


def _valid_date(date: str) -> bool:
    year, month, day = int(date[:4]), int(date[5:7]), int(date[8:10])
    if not 1 <= month <= 12 or day < 1:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return day <= (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]


def parse_timestamp(text: str) -> int | str:
    """``YYYY-MM-DD HH:MM:SS[.f{1,9}]`` (or with ``T``), UTC, as int64 nanoseconds.

    Returns the nanoseconds, or a short reason (``"does not parse"``, ``"is out of range"``).
    """
    m = _TS_RE.fullmatch(text)
    if m is None:
        return "does not parse"
    date, hh, mm, ss, frac = m.groups()
    day = _day(date)
    hour, minute, second = int(hh), int(mm), int(ss)
    if day is None or hour > 23 or minute > 59 or second > 59:
        return "does not parse"
    ns = (day * 86400 + hour * 3600 + minute * 60 + second) * 1_000_000_000
    if frac:
        ns += int(frac) * _FRACTION_SCALE[len(frac)]
    if not _INT64_MIN <= ns <= _INT64_MAX:
        return "is out of range"
    return ns
