"""Exact mid prices and shortest plain decimal text of float64 arrays (contract section 3).

Two texts are defined here, each with a slow per-value reference and a vectorised version:

- the *plain* text of a float (latency, threshold, bid, ask): the shortest decimal that reads
  back as the same float64, without exponent and without a trailing ``.0``
  (``plain_text``, ``format_plain``);
- the *mid* text of a quote: the float64 nearest to ``(dec(bid) + dec(ask)) / 2`` computed
  exactly, where ``dec(x)`` is the shortest decimal of ``x`` (its ``repr``), printed as its
  shortest decimal without exponent and with at least one digit after the point
  (``mid_reference``, ``exact_mid``, ``mid_text``).

Why the fast path is exact (``_scale``): a decimal of at most 15 significant digits is the only
such decimal that reads back as its float64 (DBL_DIG = 15). So if ``N < 10**15`` and the
correctly rounded division ``N / 10**s`` (``N`` and ``10**s`` both exact, ``s <= 17``) gives back
``x``, then ``N * 10**-s`` is ``dec(x)`` as a value. With both prices on one scale ``s``,
``S = B + A`` is exact (``< 2**53``) and ``S / (2 * 10**s)`` is one correctly rounded division:
the float64 nearest to the exact mid. That exact mid is ``5 * S * 10**-(s + 1)``; when it has at
most 15 significant digits it is itself the shortest decimal of that float (by the same
uniqueness: any shorter decimal reading back as the same float would be a second one of at most
15 digits), so its digits are printed straight from the integers. Everything else (more digits,
scales beyond 17, far-apart magnitudes) takes the exact ``Decimal`` path row by row.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

#: Powers of ten that are exact in float64 (10**0 .. 10**22).
POW10: F64 = 10.0 ** np.arange(23, dtype=np.float64)
_POW10_INT = np.array([10**k for k in range(19)], dtype=np.int64)
_MAX_SCALE = 17
_LIMIT = 1e15  # scaled integers stay below this: at most 15 significant digits
_EXACT = decimal.Context(prec=1200)  # enough for the exact sum of any two float64 decimals

#: Words of ``MidText.words`` per row: 24 bytes, room for 19 digits and the point.
MID_WORDS = 3
#: ``format_plain`` gives 64-bit offsets from this many values on (texts up to 24 bytes).
_LARGE_ROWS = (2**31 - 1) // 24
#: Rows formatted at a time, so that the temporaries stay in the CPU cache.
CHUNK = 1 << 15


def _plain(d: decimal.Decimal, point_zero: bool) -> str:
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if point_zero and "." not in text:
        text += ".0"
    return text


def plain_text(x: float) -> str:
    """The shortest decimal reading back as ``x``, plain, no trailing ``.0`` (slow reference)."""
    if x != x or x in (np.inf, -np.inf):
        return repr(float(x))
    return _plain(decimal.Decimal(repr(float(x))), point_zero=False)


def mid_value(bid: float, ask: float) -> float:
    """The float64 nearest to the exact ``(dec(bid) + dec(ask)) / 2`` (slow reference)."""
    total = _EXACT.add(decimal.Decimal(repr(float(bid))), decimal.Decimal(repr(float(ask))))
    return float(_EXACT.divide(total, 2))


def mid_reference(bid: float, ask: float) -> str:
    """The mid text of one quote of finite prices (slow reference)."""
    return _plain(decimal.Decimal(repr(mid_value(bid, ask))), point_zero=True)


def _exponent_tables() -> tuple[I64, F64, I64]:
    """By biased binary exponent: first-guess scale, its power of ten, floor(log10) guess."""
    exp2 = np.arange(2048) - 1023
    exp10 = (exp2 * 78913) >> 18  # floor(exp2 * log10(2)), exact over this range
    scale = 12 - exp10  # 13 significant digits of a number with this exponent
    power = np.where(scale >= 0, 10.0 ** np.clip(scale, 0, _MAX_SCALE), np.nan)
    return np.clip(scale, 0, _MAX_SCALE), power, np.clip(exp10, 0, 18)


_SCALE_OF_EXP, _POWER_OF_EXP, _LOG10_OF_EXP = _exponent_tables()


def _scale(
    bid: F64, ask: F64, positive: bool = False
) -> tuple[I64, F64, F64, npt.NDArray[np.bool_]]:
    """A common decimal scale of each pair and both prices as exact integers on it.

    Returns ``(s, B, A, ok)``: where ``ok``, ``B * 10**-s == dec(bid)`` and likewise ``A``.
    The first guess of ``s`` keeps 13 significant digits of the larger price (so both scaled
    prices are below 2 * 10**13); the rows it misses retry with one and two digits more.
    ``positive`` promises that no price is negative.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return _scale_quiet(bid, ask, positive)


def _scale_quiet(bid: F64, ask: F64, positive: bool) -> tuple[I64, F64, F64, npt.NDArray[np.bool_]]:
    big = np.maximum(bid, ask) if positive else np.maximum(np.abs(bid), np.abs(ask))
    exp2 = big.view(np.int64) >> 52
    s = _SCALE_OF_EXP.take(exp2)
    p = _POWER_OF_EXP.take(exp2)  # NaN where even s = 0 would exceed 15 digits
    b_int = np.rint(bid * p)
    a_int = np.rint(ask * p)
    ok = b_int / p == bid
    ok &= a_int / p == ask
    todo = np.flatnonzero(~ok)
    for _ in range(2):
        todo = todo[s[todo] < _MAX_SCALE]
        if not todo.size:
            break
        s[todo] += 1
        b, a, p = bid[todo], ask[todo], POW10[s[todo]]
        bi, ai = np.rint(b * p), np.rint(a * p)
        good = (bi / p == b) & (ai / p == a) & (np.abs(bi) < _LIMIT) & (np.abs(ai) < _LIMIT)
        b_int[todo], a_int[todo], ok[todo] = bi, ai, good
        todo = todo[~good]
    return s, b_int, a_int, ok


def exact_mid(bid: F64, ask: F64) -> F64:
    """The float64 nearest to ``(dec(bid) + dec(ask)) / 2`` for each finite pair."""
    bid = np.asarray(bid, dtype=np.float64)
    ask = np.asarray(ask, dtype=np.float64)
    s, b_int, a_int, ok = _scale(bid, ask)
    mid = (b_int + a_int) / (2.0 * POW10[s])
    for i in np.flatnonzero(~ok).tolist():
        mid[i] = mid_value(bid[i], ask[i])
    return mid


def _packed(width: int, shift: int = 0) -> U64:
    """Little-endian ASCII of 0..10**width-1, zero-padded, shifted left by ``shift`` bits."""
    texts = np.char.zfill(np.arange(10**width).astype(f"S{width}"), width)
    raw = np.zeros((10**width, 8), dtype=np.uint8)
    raw[:, :width] = texts.view(np.uint8).reshape(-1, width)
    return raw.view(np.uint64).ravel() << np.uint64(shift)


def _point_table() -> U64:
    """By digits before the point (0..16): keep-masks and point bytes of words 0 and 1."""
    table = np.zeros((17, 4), dtype=np.uint64)
    for n in range(17):
        table[n, 0] = (1 << 8 * min(n, 8)) - 1
        table[n, 1] = (1 << 8 * max(n - 8, 0)) - 1
        table[n, 2 if n < 8 else 3] = ord(".") << 8 * (n % 8)
    return table


_FOUR, _FOUR_HI, _THREE = _packed(4), _packed(4, 32), _packed(3)
_POINT = _point_table()
_POW10_U = np.array([10**k for k in range(20)], dtype=np.uint64)
_ZEROS = np.uint64(0x3030303030303030)
_ZEROS3 = np.uint64(0x303030)
_EIGHT = np.uint64(8)
_FIFTY_SIX = np.uint64(56)


def _last_byte(y: U64) -> I64:
    """1 + index of the highest non-zero byte of each word; negative for zero words.

    That byte is a digit XOR "0" (at most 9), so the float conversion cannot round the
    value up into the next byte.
    """
    return ((y.astype(np.float64).view(np.int64) >> 52) - 1015) >> 3


def _mid_chunk(bid: F64, ask: F64, out: U64) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Texts of one chunk into ``out``; returns their lengths and which rows are exact."""
    s, b_int, a_int, ok = _scale(bid, ask, positive=True)
    digits = np.where(ok, b_int + a_int, 0.0).astype(np.int64) * 5  # exact mid * 10**(s+1)
    if (digits >= _POW10_INT[15]).any():  # 16 digits: exact only when the last one is 0
        ok &= (digits < _POW10_INT[15]) | (digits % 10 == 0)
    point = s + 1  # digits after the point in ``digits``
    guess = _LOG10_OF_EXP.take(digits.astype(np.float64).view(np.int64) >> 52)
    n_digits = guess + 1 + (digits >= _POW10_INT.take(guess + 1))
    n_int = np.maximum(n_digits - point, 1)
    # All digits, left-aligned in a field of 19: "0" first when the mid is below 1.
    field = digits.astype(np.uint64) * _POW10_U.take(19 - n_int - point)
    head = field // 1000
    tail = field - head * 1000
    high = head // 10**8
    low = head - high * 10**8
    h4 = high // 10**4
    l4 = low // 10**4
    w0 = _FOUR.take(h4) | _FOUR_HI.take(high - h4 * 10**4)
    w1 = _FOUR.take(l4) | _FOUR_HI.take(low - l4 * 10**4)
    w2 = _THREE.take(tail)
    last = np.maximum(_last_byte(w0 ^ _ZEROS), _last_byte(w1 ^ _ZEROS) + 8)
    last = np.maximum(last, _last_byte(w2 ^ _ZEROS3) + 16)
    n_frac = np.maximum(last - n_int, 1)
    # Insert the point after n_int digits: the bytes from there on move up by one.
    point_words = _POINT.take(n_int, axis=0)
    move0 = w0 & ~point_words[:, 0]
    move1 = w1 & ~point_words[:, 1]
    out[:, 0] = (w0 & point_words[:, 0]) | point_words[:, 2] | (move0 << _EIGHT)
    out[:, 1] = (
        (w1 & point_words[:, 1]) | point_words[:, 3] | (move1 << _EIGHT) | (move0 >> _FIFTY_SIX)
    )
    out[:, 2] = (w2 << _EIGHT) | (move1 >> _FIFTY_SIX)
    return n_int + 1 + n_frac, ok


@dataclass(frozen=True)
class MidText:
    """Mid texts of a batch of valid quotes.

    ``words[i]`` holds the ASCII text of row ``i`` from its first byte (little-endian words,
    bytes after ``length[i]`` undefined) for the rows not listed in ``slow``; the rows in
    ``slow`` have their text in ``slow_text`` instead (same order).
    """

    words: U64
    length: I64
    slow: I64
    slow_text: list[bytes]


def mid_text(bid: F64, ask: F64, out: U64 | None = None) -> MidText:
    """The mid text of each quote; ``bid`` and ``ask`` must be positive and finite.

    ``out`` (``n`` x ``MID_WORDS`` uint64, may be a strided view) receives the words.
    """
    n = bid.size
    words = np.empty((n, MID_WORDS), dtype=np.uint64) if out is None else out
    length = np.empty(n, dtype=np.int64)
    ok = np.empty(n, dtype=np.bool_)
    for i in range(0, n, CHUNK):
        part = slice(i, i + CHUNK)
        length[part], ok[part] = _mid_chunk(bid[part], ask[part], words[part])
    slow = np.flatnonzero(~ok)
    slow_text = [mid_reference(bid[i], ask[i]).encode() for i in slow.tolist()]
    return MidText(words, length, slow, slow_text)


def string_offsets(texts: pa.Array) -> npt.NDArray[np.int32 | np.int64]:
    """Where each value of a string array starts in its data buffer, and where the last ends."""
    offsets = texts.buffers()[1]
    part = slice(texts.offset, texts.offset + len(texts) + 1)
    if pa.types.is_large_string(texts.type):
        return np.frombuffer(offsets, dtype=np.int64)[part]
    return np.frombuffer(offsets, dtype=np.int32)[part]


def format_plain(x: F64) -> pa.StringArray:
    """The plain text of each value (see ``plain_text``); NaN prints ``nan``.

    Arrow's cast gives the shortest round-trip digits (the same as ``repr``, ties included) but
    switches to exponent form for very small and very large magnitudes; those values, rare in
    quotes, take ``plain_text``.

    >>> format_plain(np.array([24.435913010256233, 25.0, 3.85e-08])).to_pylist()
    ['24.435913010256233', '25', '0.0000000385']
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    kind = pa.large_string() if x.size >= _LARGE_ROWS else pa.string()
    texts = pc.cast(pa.array(x), kind)
    data = texts.buffers()[2]
    if data is None:  # no values
        return texts
    at = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("e"))  # "inf" has no e
    if not at.size:
        return texts
    rows = np.unique(np.searchsorted(string_offsets(texts)[1:], at, side="right"))
    mask = np.zeros(x.size, dtype=np.bool_)
    mask[rows] = True
    fixed = pa.array([plain_text(v) for v in x[rows].tolist()], type=kind)
    return pc.replace_with_mask(texts, pa.array(mask), fixed)
