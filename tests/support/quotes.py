"""Made-up quotes in the ring's schema (``common.schema.QUOTE_SCHEMA``): as numpy columns
(:data:`Quotes`) to publish, and as the Arrow batches a ring reader gets."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

import ringbuffer
from common.schema import Mode
from processor.rules import render

UTC = pa.timestamp("ns", tz="UTC")
EPOCH = dt.datetime(1970, 1, 1)
BASE_NS = 1_759_449_590_006_407_000  # 2025-10-02 23:59:50.006407
TICKERS = [f"T{k}-USDT-SWAP@BINANCE" for k in range(40)] + ["ÅÄÖ-USDT@X", "BTC-USDT-SWAP@OKX"]

Quotes = dict[str, np.ndarray]
Row = tuple[int, str, str, float, float, float]  # mode, timestamp, ticker, latency, bid, ask


def _round(x: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """``x`` rounded to ``digits`` decimals, row by row (the float nearest that decimal)."""
    scale = 10.0**digits
    return np.rint(x * scale) / scale


def make_quotes(n: int, seed: int = 0) -> Quotes:
    """``n`` quotes with seq 0..n-1: both modes, few-digit prices, some invalid, some late."""
    rng = np.random.default_rng(seed)
    mode = np.where(rng.random(n) < 0.75, Mode.HISTORICAL, Mode.LIVE).astype(np.uint8)
    stamps = BASE_NS + np.cumsum(rng.integers(0, 3_000_000, n)).astype(np.int64)
    latency = _round(rng.exponential(12.0, n), rng.integers(0, 4, n))
    latency[rng.random(n) < 0.05] = 20.0  # equal to the default threshold: passes
    latency[rng.random(n) < 0.02] = 35.0  # over 20, under the 40 some tests use
    latency[mode == Mode.LIVE] = np.nan
    digits = rng.integers(0, 6, n)
    bid = _round(rng.uniform(0.001, 2000.0, n), digits)
    ask = _round(bid + rng.integers(0, 50, n) / 10.0**digits, digits)
    bad = rng.random(n) < 0.03
    kinds = rng.integers(0, 4, n)
    bid[bad & (kinds == 0)] = 0.0
    ask[bad & (kinds == 1)] = -1.5
    bid[bad & (kinds == 2)] = np.nan
    ask[bad & (kinds == 3)] = np.inf
    return {
        "seq": np.arange(n, dtype=np.uint64),
        "mode": mode,
        "pos": np.where(mode == Mode.HISTORICAL, np.arange(n), -1).astype(np.int64),
        "ticker": np.array(TICKERS, dtype=object)[rng.integers(0, len(TICKERS), n)],
        "timestamp": stamps,
        "arrival": stamps + np.nan_to_num(latency * 1e6).astype(np.int64),
        "latency": latency,
        "bid_price": bid,
        "ask_price": ask,
        "bid_amount": np.round(rng.uniform(0, 1000, n), 2),
        "ask_amount": np.round(rng.uniform(0, 1000, n), 2),
    }


def part(q: Quotes, rows: slice | np.ndarray) -> Quotes:
    """The quotes at ``rows``."""
    return {k: v[rows] for k, v in q.items()}


def as_batch(q: Quotes) -> pa.RecordBatch:
    """The quotes as the ring hands them out (timestamps in UTC, tickers dictionary-encoded)."""
    return pa.RecordBatch.from_pydict({
        "seq": pa.array(q["seq"], pa.uint64()),
        "mode": pa.array(q["mode"], pa.uint8()),
        "pos": pa.array(q["pos"], pa.int64()),
        "ticker": pa.array(list(q["ticker"]), pa.string()).dictionary_encode(),
        "timestamp": pa.array(q["timestamp"], pa.int64()).cast(UTC),
        "arrival": pa.array(q["arrival"], pa.int64()).cast(UTC),
        "latency": pa.array(q["latency"], pa.float64()),
        "bid_price": pa.array(q["bid_price"], pa.float64()),
        "ask_price": pa.array(q["ask_price"], pa.float64()),
        "bid_amount": pa.array(q["bid_amount"], pa.float64()),
        "ask_amount": pa.array(q["ask_amount"], pa.float64()),
    })


def reference(q: Quotes, threshold: float = 20.0, extended: bool = False) -> tuple[bytes, bytes]:
    """(mid log, error log) for ``q``: ``render`` over all the records in one batch."""
    out = render(as_batch(q), threshold, extended)
    return out.mid, out.errors


def publish(w: ringbuffer.Writer, q: Quotes, pieces: int = 7) -> None:
    """Publish ``q`` in ``pieces`` batches of uneven sizes."""
    n = len(q["seq"])
    cuts = sorted({0, n, *np.random.default_rng(n).integers(0, n, pieces - 1).tolist()})
    for lo, hi in itertools.pairwise(cuts):
        w.publish(part(q, slice(lo, hi)))


def ns(text: str) -> int:
    """Nanoseconds since the epoch of a UTC timestamp text (up to 9 fraction digits)."""
    whole, _, frac = text.replace("T", " ").partition(".")
    seconds = int((dt.datetime.fromisoformat(whole) - EPOCH).total_seconds())
    return seconds * 10**9 + int(frac.ljust(9, "0"))


def make_batch(rows: Sequence[Row], stamps: Sequence[int] | None = None) -> pa.RecordBatch:
    """A batch with the ring's schema."""
    times = [ns(r[1]) for r in rows] if stamps is None else list(stamps)
    n = len(rows)
    return pa.RecordBatch.from_pydict({
        "seq": pa.array(range(n), pa.uint64()),
        "mode": pa.array([r[0] for r in rows], pa.uint8()),
        "pos": pa.array(range(n), pa.int64()),
        "ticker": pa.array([r[2] for r in rows], pa.string()).dictionary_encode(),
        "timestamp": pa.array(times, pa.int64()).cast(UTC),
        "arrival": pa.array(times, pa.int64()).cast(UTC),
        "latency": pa.array([r[3] for r in rows], pa.float64()),
        "bid_price": pa.array([r[4] for r in rows], pa.float64()),
        "ask_price": pa.array([r[5] for r in rows], pa.float64()),
        "bid_amount": pa.array([1.0] * n, pa.float64()),
        "ask_amount": pa.array([1.0] * n, pa.float64()),
    })
