"""Exact mid prices and plain decimal text (processor.decimals) against slow references."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor import decimals

from ..support.oracle import mid_ref, repr_plain


def mid_texts(bid: list[float], ask: list[float]) -> list[str]:
    """processor.decimals.mid_text as Python strings."""
    text = decimals.mid_text(np.array(bid, dtype=np.float64), np.array(ask, dtype=np.float64))
    raw = text.words.view(np.uint8).reshape(len(bid), -1)
    out = [raw[i, : text.length[i]].tobytes().decode() for i in range(len(bid))]
    for i, slow in zip(text.slow.tolist(), text.slow_text, strict=True):
        out[i] = slow.decode()
    return out


def test_repr_plain_reference() -> None:
    cases = [
        (24.435913010256233, "24.435913010256233"), (25.0, "25"), (20.0, "20"), (15.5, "15.5"),
        (0.0, "0"), (-0.0, "-0"), (-1.5, "-1.5"), (3e-8, "0.00000003"),
        (1e22, "10000000000000000000000"), (3.85e-08, "0.0000000385"),
        (1.2345678901234568e17, "123456789012345680"), (100.0, "100"), (0.1, "0.1"),
        (1e-5, "0.00001"), (123.456e10, "1234560000000"), (-2.5e-7, "-0.00000025"),
    ]
    for x, text in cases:
        assert repr_plain(x) == text
        assert decimals.plain_text(x) == text


@pytest.mark.parametrize(
    ("values", "texts"),
    [
        ([24.435913010256233, 25.0, 20.0, 15.5, 0.0, -1.5],
         ["24.435913010256233", "25", "20", "15.5", "0", "-1.5"]),
        ([math.inf, -math.inf, math.nan, -0.0, 3e-8, 1e22],
         ["inf", "-inf", "nan", "-0", "0.00000003", "10000000000000000000000"]),
        ([], []),
    ],
)
def test_format_plain_examples(values: list[float], texts: list[str]) -> None:
    assert decimals.format_plain(np.array(values, dtype=np.float64)).to_pylist() == texts


def test_format_plain_ties_break_like_repr() -> None:
    # Exact ties between two shortest candidates: repr takes the even digit.
    ties = [2.0**-25, 1282959859898143.2, 26025226199063.062, -864880213240886.2]
    assert decimals.format_plain(np.array(ties)).to_pylist() == [repr_plain(x) for x in ties]
    # Many more: 46 to 53-bit integers over 2**m have short exact values; ties among them
    # (the shortest decimal needs 16+ digits, the exact one at most 18) are common.
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.integers(2**45, 2**53, 4000) / 2.0**m for m in range(1, 30)])
    got = decimals.format_plain(values).to_pylist()
    bad = [(x, g) for x, g in zip(values.tolist(), got, strict=True) if g != repr_plain(x)]
    assert not bad[:5]


def test_format_plain_random_bits() -> None:
    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2**63, 100_000, dtype=np.int64).astype(np.uint64)
    bits |= rng.integers(0, 2, bits.size).astype(np.uint64) << np.uint64(63)
    values = np.concatenate([
        bits.view(np.float64),
        rng.integers(-(2**40), 2**40, 20_000) / 2.0 ** rng.integers(0, 30, 20_000),  # dyadic
        10.0 ** rng.uniform(-12, 18, 20_000),
    ])
    got = decimals.format_plain(values).to_pylist()
    bad = [(x, g) for x, g in zip(values.tolist(), got, strict=True) if g != repr_plain(x)]
    assert not bad[:5]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=50))
def test_format_plain_property(values: list[float]) -> None:
    got = decimals.format_plain(np.array(values, dtype=np.float64)).to_pylist()
    assert got == [repr_plain(x) for x in values]


@pytest.mark.parametrize(
    ("bid", "ask", "mid"),
    [
        (200.0, 201.0, "200.5"), (99.5, 100.5, "100.0"), (1.1308, 1.1309, "1.13085"),
        (2.055, 2.056, "2.0555"), (3.8e-08, 3.9e-08, "0.0000000385"), (100.0, 100.0, "100.0"),
        (0.1, 0.2, "0.15"), (59999.9, 60000.1, "60000.0"), (1e-17, 2e-17, "0.000000000000000015"),
        (1.00000000000001, 1.00000000000002, "1.000000000000015"),  # 16 digits: slow path
        (0.5, 1e14, "50000000000000.25"), (1e300, 1e300, "1" + "0" * 300 + ".0"),
        (5e-324, 5e-324, "0." + "0" * 323 + "5"), (1.7976931348623157e308, 1.7976931348623157e308,
                                                    repr_plain(1.7976931348623157e308) + ".0"),
        (999999999999999.0, 999999999999999.0, "999999999999999.0"),
        (0.1 + 0.2, 0.3, mid_ref(0.1 + 0.2, 0.3)),
    ],
)
def test_mid_examples(bid: float, ask: float, mid: str) -> None:
    assert mid_ref(bid, ask) == mid
    assert decimals.mid_reference(bid, ask) == mid
    assert mid_texts([bid], [ask]) == [mid]
    assert decimals.exact_mid(np.array([bid]), np.array([ask]))[0] == float(mid)


def test_mid_is_not_the_float_mean() -> None:
    assert (2.055 + 2.056) / 2 == 2.0555000000000003
    assert mid_texts([2.055], [2.056]) == ["2.0555"]


def decimal_price(digits: int, mantissa: int, exponent: int) -> float:
    """A price read from its decimal text, as a CSV reader does."""
    mantissa = mantissa % 10**digits or 1
    return float(f"{mantissa}e{exponent}")


prices = st.builds(
    decimal_price, st.integers(1, 10), st.integers(1, 10**10), st.integers(-9 - 10, 6)
).filter(lambda x: 1e-9 <= x <= 1e6 * 10)


@st.composite
def quote(draw: st.DrawFn) -> tuple[float, float]:
    bid = draw(prices)
    how = draw(st.sampled_from(["close", "far", "same", "ticks"]))
    if how == "far":
        return bid, draw(prices)
    if how == "same":
        return bid, bid
    text = repr(bid)
    exponent = Decimal(text).as_tuple().exponent
    assert isinstance(exponent, int)
    step = Decimal(1).scaleb(exponent - draw(st.integers(0, 2)))
    ask = float(Decimal(text) + step * draw(st.integers(-5, 1000)))
    return bid, ask if ask > 0 else bid


@settings(max_examples=300, deadline=None)
@given(st.lists(quote(), min_size=1, max_size=80))
def test_mid_property(quotes: list[tuple[float, float]]) -> None:
    bid = [b for b, _ in quotes]
    ask = [a for _, a in quotes]
    assert mid_texts(bid, ask) == [mid_ref(b, a) for b, a in quotes]
    mids = decimals.exact_mid(np.array(bid), np.array(ask))
    assert [repr_plain(m) for m in mids.tolist()] == [mid_ref(b, a).removesuffix(".0")
                                                      for b, a in quotes]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(1e-300, 1e300), st.floats(1e-300, 1e300)), min_size=1,
                max_size=30))
def test_mid_any_positive_floats(quotes: list[tuple[float, float]]) -> None:
    bid = [b for b, _ in quotes]
    ask = [a for _, a in quotes]
    assert mid_texts(bid, ask) == [mid_ref(b, a) for b, a in quotes]


def test_mid_bulk_many_chunks() -> None:
    rng = np.random.default_rng(5)
    n = 3 * decimals.CHUNK + 17
    scale = rng.integers(0, 16, n)
    bid_int = rng.integers(1, 10**6, n)
    bid = bid_int / 10.0**scale
    ask = (bid_int + rng.integers(0, 50, n)) / 10.0**scale
    bid[::997] = 1.00000000000001  # slow rows in every chunk
    got = mid_texts(bid.tolist(), ask.tolist())
    rows = rng.choice(n, 3000, replace=False).tolist() + list(range(0, n, 997))
    assert all(got[i] == mid_ref(float(bid[i]), float(ask[i])) for i in rows)
