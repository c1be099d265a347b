"""Contract section 3 (processor.rules.render and processor.timefmt) against a per-record model."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.schema import Mode
from processor import decimals, timefmt
from processor.rules import Rendered, render

from ..support.oracle import mid_ref, repr_plain
from ..support.quotes import EPOCH, Row, make_batch, ns


def stamp_ref(t: int) -> str:
    moment = EPOCH + dt.timedelta(milliseconds=t // 10**6)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}"


def model(batch: pa.RecordBatch, threshold: float, extended: bool = False) -> tuple[str, str]:
    """The contract, record by record."""
    mids, errors = [], []
    cols = batch.drop_columns(["timestamp", "arrival"]).to_pydict()  # ns datetimes need pandas
    times = batch.column("timestamp").cast(pa.int64()).to_pylist()
    for i, t in enumerate(times):
        stamp = stamp_ref(t)
        lat, bid, ask = cols["latency"][i], cols["bid_price"][i], cols["ask_price"][i]
        if cols["mode"][i] == Mode.HISTORICAL and lat > threshold:
            errors.append(f"No mid price at {stamp} as latency {repr_plain(lat)}ms is bigger "
                          f"than {repr_plain(threshold)}ms\n")
        elif not (0 < bid < math.inf and 0 < ask < math.inf):
            errors.append(f"No mid price at {stamp} as quote is invalid "
                          f"(bid {repr_plain(bid)}, ask {repr_plain(ask)})\n")
        else:
            ticker = f"{cols['ticker'][i]}, " if extended else ""
            mids.append(f"{stamp}, {ticker}{mid_ref(bid, ask)}\n")
    return "".join(mids), "".join(errors)


def lines(out: Rendered) -> tuple[list[str], list[str]]:
    return out.mid.decode().splitlines(), out.errors.decode().splitlines()


def test_contract_examples() -> None:
    batch = make_batch([
        (Mode.HISTORICAL, "2025-10-02 23:59:50.006407", "BTC-USDT-SWAP@BINANCE", 5.0, 200.0, 201.0),
        (Mode.HISTORICAL, "2025-01-01 00:00:00", "A", 1.0, 99.5, 100.5),
        (Mode.HISTORICAL, "2025-01-01 00:00:00.5", "A", 1.0, 1.1308, 1.1309),
        (Mode.LIVE, "2025-01-01 00:00:00.25", "A", math.nan, 2.055, 2.056),
        (Mode.HISTORICAL, "2025-01-01 00:00:00.0005", "A", 20.0, 3.8e-08, 3.9e-08),
        (Mode.HISTORICAL, "2025-10-02 23:59:57.290000", "AVNT", 24.435913010256233, 1.1308, 1.1309),
        (Mode.HISTORICAL, "2025-10-02 23:59:57.29", "AVNT", 25.0, 1.0, 2.0),
        (Mode.HISTORICAL, "2025-10-02 23:59:57.29", "AVNT", 15.5, -1.5, 0.0),
    ])
    mid, errors = lines(render(batch, 20.0))
    assert mid == [
        "2025-10-02 23:59:50.006, 200.5",
        "2025-01-01 00:00:00.000, 100.0",
        "2025-01-01 00:00:00.500, 1.13085",
        "2025-01-01 00:00:00.250, 2.0555",
        "2025-01-01 00:00:00.000, 0.0000000385",
    ]
    assert errors == [
        "No mid price at 2025-10-02 23:59:57.290 as latency 24.435913010256233ms is bigger "
        "than 20ms",
        "No mid price at 2025-10-02 23:59:57.290 as latency 25ms is bigger than 20ms",
        "No mid price at 2025-10-02 23:59:57.290 as quote is invalid (bid -1.5, ask 0)",
    ]
    out = render(batch, 15.5)
    assert out.errors.decode().splitlines()[0].endswith("is bigger than 15.5ms")
    assert (out.n_mid, out.n_errors) == (4, 4)
    assert out.mid.endswith(b"\n") and out.errors.endswith(b"\n")


def test_extended_format_has_the_ticker() -> None:
    batch = make_batch([
        (Mode.HISTORICAL, "2025-10-02 23:59:50.006407", "BTC-USDT-SWAP@BINANCE", 5.0, 200.0, 201.0),
        (Mode.LIVE, "2025-10-02 23:59:51", "ETH", math.nan, 1.0, 3.0),
    ])
    assert lines(render(batch, 20.0, extended=True))[0] == [
        "2025-10-02 23:59:50.006, BTC-USDT-SWAP@BINANCE, 200.5",
        "2025-10-02 23:59:51.000, ETH, 2.0",
    ]


def test_threshold_boundary() -> None:
    above = float(np.nextafter(20.0, math.inf))
    batch = make_batch([(Mode.HISTORICAL, "2025-01-01 00:00:00", "A", 20.0, 1.0, 2.0),
                        (Mode.HISTORICAL, "2025-01-01 00:00:00", "A", above, 1.0, 2.0)])
    mid, errors = lines(render(batch, 20.0))
    assert mid == ["2025-01-01 00:00:00.000, 1.5"]
    assert errors == ["No mid price at 2025-01-01 00:00:00.000 as latency 20.000000000000004ms "
                      "is bigger than 20ms"]


def test_live_records_are_never_latency_filtered() -> None:
    batch = make_batch([(Mode.LIVE, "2025-01-01 00:00:00", "A", 1e9, 1.0, 2.0),
                        (Mode.LIVE, "2025-01-01 00:00:01", "A", math.nan, 1.0, 2.0),
                        (Mode.LIVE, "2025-01-01 00:00:02", "A", math.inf, 1.0, 2.0)])
    out = render(batch, 0.0)
    assert (out.n_mid, out.n_errors, out.errors) == (3, 0, b"")


@pytest.mark.parametrize(
    ("bid", "ask", "text"),
    [
        (0.0, 1.0, "(bid 0, ask 1)"), (-1.5, 2.0, "(bid -1.5, ask 2)"),
        (1.0, -0.0, "(bid 1, ask -0)"), (math.nan, 1.0, "(bid nan, ask 1)"),
        (1.0, math.inf, "(bid 1, ask inf)"), (-math.inf, math.nan, "(bid -inf, ask nan)"),
        (3e-8, 0.0, "(bid 0.00000003, ask 0)"), (1e22, -5e-324,
                                                 f"(bid 1{'0' * 22}, ask -0.{'0' * 323}5)"),
    ],
)
def test_invalid_quotes(bid: float, ask: float, text: str) -> None:
    for mode in (Mode.HISTORICAL, Mode.LIVE):
        batch = make_batch([(mode, "2025-01-01 00:00:00", "A", 1.0, bid, ask)])
        out = render(batch, 20.0)
        assert out.mid == b""
        assert out.errors.decode() == (
            f"No mid price at 2025-01-01 00:00:00.000 as quote is invalid {text}\n")


def test_latency_rule_comes_first() -> None:
    batch = make_batch([(Mode.HISTORICAL, "2025-01-01 00:00:00", "A", 30.0, 0.0, math.nan)])
    assert lines(render(batch, 20.0))[1] == [
        "No mid price at 2025-01-01 00:00:00.000 as latency 30ms is bigger than 20ms"]


def test_order_is_kept_in_both_outputs() -> None:
    rows: list[Row] = []
    for i in range(300):
        kind = i % 7
        stamp = f"2025-01-01 00:00:{i % 60:02d}.{i:03d}"
        if kind in (1, 4):
            rows.append((Mode.HISTORICAL, stamp, "A", 21.0 + i, 1.0, 2.0))
        elif kind == 2:
            rows.append((Mode.HISTORICAL, stamp, "A", 1.0, 0.0, float(i)))
        else:
            rows.append((Mode.LIVE, stamp, "A", math.nan, float(i + 1), float(i + 2)))
    batch = make_batch(rows)
    assert (render(batch, 20.0).mid.decode(), render(batch, 20.0).errors.decode()) == model(
        batch, 20.0)


def test_empty_batch() -> None:
    empty = render(make_batch([]), 20.0)
    assert (empty.mid, empty.errors, empty.n_mid, empty.n_errors) == (b"", b"", 0, 0)
    only_errors = render(
        make_batch([(Mode.HISTORICAL, "2025-01-01 00:00:00", "A", 99.0, 1.0, 2.0)]), 20.0
    )
    assert only_errors.mid == b"" and only_errors.n_errors == 1


def test_sliced_batch_and_slow_rows() -> None:
    rows: list[Row] = [
        (Mode.HISTORICAL, "2025-01-01 00:00:00", "T" * 64, 1.0, 1.00000000000001, 1.00000000000002),
        (Mode.HISTORICAL, "2025-01-01 00:00:01", "B", 1.0, 1e300, 1e300),
        (Mode.HISTORICAL, "2025-01-01 00:00:02", "C", 1.0, 1e-17, 1.5e-17),
        (Mode.LIVE, "2025-01-01 00:00:03", "D", math.nan, 2.0, 4.0),
    ] * 3
    batch = make_batch(rows).slice(1, 9)
    for extended in (False, True):
        out = render(batch, 20.0, extended)
        assert (out.mid.decode(), out.errors.decode()) == model(batch, 20.0, extended)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-10-02 23:59:50.006407", "2025-10-02 23:59:50.006"),
        ("2025-01-01 00:00:00", "2025-01-01 00:00:00.000"),
        ("2025-01-01 00:00:00.999999999", "2025-01-01 00:00:00.999"),
        ("2024-02-29 12:34:56.1", "2024-02-29 12:34:56.100"),
        ("1969-12-31 23:59:59.999999999", "1969-12-31 23:59:59.999"),
        ("1969-12-31 23:59:59.0000001", "1969-12-31 23:59:59.000"),
        ("1900-03-01 00:00:00.001", "1900-03-01 00:00:00.001"),
        ("1677-09-21 00:12:43.145224192", "1677-09-21 00:12:43.145"),
        ("2262-04-11 23:47:16.854775807", "2262-04-11 23:47:16.854"),
    ],
)
def test_timestamp_text(text: str, expected: str) -> None:
    assert timefmt.format_timestamps(np.array([ns(text)])) == [expected]
    assert stamp_ref(ns(text)) == expected


def test_timestamps_bulk() -> None:
    rng = np.random.default_rng(3)
    one_day = ns("2025-10-02 00:00:00") + np.sort(rng.integers(0, 86_400 * 10**9, 70_000))
    anywhere = rng.integers(-(2**63) + 1, 2**63 - 1, 70_000)
    near_epoch = rng.integers(-(10**12), 10**12, 70_000)
    for stamps in (one_day, anywhere, near_epoch):
        got = timefmt.format_timestamps(stamps)
        assert got == [stamp_ref(int(t)) for t in stamps.tolist()]


finite = st.floats(-1e12, 1e12, allow_nan=False)
price = st.one_of(
    st.builds(lambda m, e: float(f"{m}e{e}"), st.integers(1, 10**8), st.integers(-16, 4)),
    st.sampled_from([0.0, -0.0, -1.5, math.nan, math.inf, -math.inf, 1e-300, 1e300]),
    finite,
)
row = st.tuples(
    st.sampled_from([Mode.HISTORICAL, Mode.LIVE]),
    st.integers(-(2**62), 2**62),
    st.sampled_from(["BTC-USDT-SWAP@BINANCE", "ETH", "ÄÖ-ü@X", "a b, c"]),
    st.one_of(st.floats(0, 40), st.sampled_from([20.0, math.nan, 1e300])),
    price,
    price,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(row, max_size=60), st.sampled_from([20.0, 0.0, 15.5, 1e-7]), st.booleans())
def test_render_matches_model(rows: list[tuple[int, int, str, float, float, float]],
                              threshold: float, extended: bool) -> None:
    batch = make_batch([(m, "", t, lat, b, a) for m, _, t, lat, b, a in rows],
                       stamps=[r[1] for r in rows])
    out = render(batch, threshold, extended)
    assert (out.mid.decode(), out.errors.decode()) == model(batch, threshold, extended)
    assert out.n_mid + out.n_errors == len(rows)
    assert out.n_mid == out.mid.count(b"\n") and out.n_errors == out.errors.count(b"\n")


def test_large_batch_matches_model() -> None:
    rng = np.random.default_rng(9)
    n = 2 * decimals.CHUNK + 123
    scale = rng.integers(0, 12, n)
    bid = rng.integers(1, 10**6, n) / 10.0**scale
    ask = bid + rng.integers(0, 9, n) / 10.0**scale
    bid[rng.random(n) < 0.03] = 0.0
    ask[::5000] = 1.00000000000001
    latency = rng.exponential(8.0, n)
    modes = (rng.random(n) < 0.2).astype(int)
    rows = [(int(m), "", "T", float(lat), float(b), float(a))
            for m, lat, b, a in zip(modes, latency, bid, ask, strict=True)]
    stamps = (ns("2025-10-02 23:00:00") + np.sort(rng.integers(0, 7200 * 10**9, n))).tolist()
    batch = make_batch(rows, stamps)
    out = render(batch, 20.0)
    assert (out.mid.decode(), out.errors.decode()) == model(batch, 20.0)
