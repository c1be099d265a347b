"""``engine.recording``: the recorder's rows, rotation and statistics, without I/O."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from engine.historical import TABLE_SCHEMA
from engine.recording import HEADER, FileStats, Rotation, latency_text, render, timestamp_text
from engine.timestamps import parse_timestamp

NAN = float("nan")


@given(st.integers(-(10**15), 10**15))
def test_latency_is_the_exact_decimal_of_the_nanoseconds(ns: int) -> None:
    text = latency_text(ns)
    assert Decimal(text) == Decimal(ns) / 10**6
    assert "e" not in text and not text.endswith(".") and not (("." in text) and text.endswith("0"))
    assert float(text) == float(Decimal(ns) / 10**6)


@given(st.integers(0, 4_102_444_800 * 10**9))
def test_timestamps_read_back_to_the_same_nanosecond(ns: int) -> None:
    text = timestamp_text(ns)
    assert len(text) == 29 and parse_timestamp(text) == ns


def table(rows: list[tuple]) -> pa.Table:
    cols = list(zip(*rows, strict=True))
    arrays = [pa.array(cols[0], pa.int64()), pa.array(cols[1]).dictionary_encode(),
              *(pa.array(c, pa.int64()) for c in cols[2:4]), pa.array(cols[4], pa.float64()),
              *(pa.array(c, pa.float64()) for c in cols[5:])]  # fmt: skip
    return pa.Table.from_arrays(arrays, schema=TABLE_SCHEMA)


T0 = 1_764_288_000_120_000_000


def test_rows_are_the_historical_layout_with_the_measured_latency() -> None:
    t = table([
        (1, "BTC-USDT@OKEX", T0, T0 + 3_520_417, NAN, 91234.1, 91234.2, 1.503, 0.004),
        (2, 'ODD,"NAME"@X', T0, T0 - 500_000, NAN, 3.9e-08, 4e-08, NAN, NAN),
    ])  # fmt: skip
    data, latency = render(t, first_row=7, index=100)
    assert latency.tolist() == [3_520_417, -500_000]
    rows = list(csv.DictReader(io.StringIO(HEADER + data.decode())))
    assert rows[0] == {
        "": "7", "index": "100", "timestamp": "2025-11-28 00:00:00.120000000",
        "ticker": "BTC-USDT@OKEX", "ask_amount": "0.004", "ask_price": "91234.2",
        "bid_price": "91234.1", "bid_amount": "1.503", "latency": "3.520417",
    }  # fmt: skip
    assert rows[1]["ticker"] == 'ODD,"NAME"@X' and rows[1]["latency"] == "-0.5"
    assert (rows[1]["bid_price"], rows[1]["ask_price"]) == ("3.9e-08", "4e-08")
    assert float(rows[1]["bid_price"]) == 3.9e-08  # reads back as the same float64
    assert rows[1]["bid_amount"] == rows[1]["ask_amount"] == ""


def test_stats_give_recorded_values_and_count_negative_latencies() -> None:
    stats = FileStats()
    lat = np.array([5_000_000, -1_000, 2_000_000, 1_500_000], np.int64)
    t = table([(i, f"T{i % 2}", T0, T0 + int(x), NAN, 1.0, 2.0, NAN, NAN)
               for i, x in enumerate(lat)])  # fmt: skip
    stats.add(t, lat)
    assert stats.summary() == {"rows": 4, "tickers": 2, "latency_ms_min": "-0.001",
                               "latency_ms_p50": "1.5", "latency_ms_p99": "5",
                               "latency_ms_max": "5", "negative_latency": 1}  # fmt: skip
    assert FileStats().summary() == {"rows": 0, "tickers": 0}


def test_rotation_by_rows_and_by_minutes() -> None:
    rows = Rotation(rows=10)
    assert rows.take(np.arange(25), rows_in_file=0, file_started_ns=0) == 10
    assert rows.take(np.arange(25), rows_in_file=10, file_started_ns=0) == 0
    assert rows.take(np.arange(3), rows_in_file=4, file_started_ns=0) == 3
    minutes = Rotation(minutes=0.5)
    arrivals = np.array([0, 10, 29, 30, 31]) * 10**9
    assert minutes.take(arrivals, rows_in_file=0, file_started_ns=None) == 3
    assert minutes.take(arrivals[3:], rows_in_file=3, file_started_ns=0) == 0
    assert minutes.take(arrivals[3:], rows_in_file=0, file_started_ns=None) == 2


def test_stats_memory_is_bounded_and_min_max_negatives_stay_exact() -> None:
    rng = np.random.default_rng(3)
    stats = FileStats(cap=1000)
    everything = []
    for _ in range(50):
        lat = rng.integers(-10_000, 10_000_000, 997)
        everything.append(lat)
        t = table([(0, "T", T0, T0 + int(x), NAN, 1.0, 2.0, NAN, NAN) for x in lat])
        stats.add(t, lat)
    every = np.concatenate(everything)
    s = stats.summary()
    assert len(stats.sample) == 1000 and s["rows"] == len(every) and s["latency_sampled"] == 1000
    assert s["latency_ms_min"] == latency_text(int(every.min()))
    assert s["latency_ms_max"] == latency_text(int(every.max()))
    assert s["negative_latency"] == int((every < 0).sum())
    assert set(stats.sample.tolist()) <= set(every.tolist())
    p50 = float(str(s["latency_ms_p50"])) * 1e6
    assert abs(p50 - np.median(every)) < 0.1 * (every.max() - every.min())  # a fair sample
