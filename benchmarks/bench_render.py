"""Throughput of ``processor.rules.render`` against a bare Polars CSV write and a Python loop.

Run ``python -m benchmarks.bench_render [--rows N] [--repeat R]``. It builds one batch like
the ring delivers (prices of a few significant digits between 1e-8 and 1e5, 3% invalid quotes,
5% over the latency threshold, 10% live) and prints records per second of:

- ``render`` (both logs, spec format, and extended format),
- the same in ring-sized slices of 65536 records,
- a bare ``polars.DataFrame({"timestamp": ..., "mid": (bid + ask) / 2}).write_csv()`` to bytes,
- a per-record Python loop formatting each line with f-strings and ``Decimal``,

measured in the same run (best of ``--repeat``), and the ratios. The project's goal is
``render`` at least 0.8 times the bare Polars write.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import polars as pl
import pyarrow as pa

from processor.rules import render

THRESHOLD = 20.0


def make_batch(rows: int, seed: int = 7) -> pa.RecordBatch:
    """A batch shaped like real replay data."""
    rng = np.random.default_rng(seed)
    n_tickers = 2000
    base_exp = rng.uniform(-8, 5, n_tickers)
    digits = rng.integers(4, 7, n_tickers)  # significant digits of a price
    scale = np.clip(digits - 1 - np.floor(base_exp), 0, 17).astype(np.int64)
    ticker = rng.integers(0, n_tickers, rows)
    base = 10.0 ** base_exp[ticker] * 10.0 ** scale[ticker]
    bid_int = np.rint(base * (1 + rng.normal(0, 1e-3, rows)))
    ask_int = bid_int + rng.integers(1, 4, rows)
    pow10 = 10.0 ** scale[ticker]
    bid = bid_int / pow10  # what float("<digits>e-<scale>") gives: one correctly rounded division
    ask = ask_int / pow10
    invalid = rng.random(rows) < 0.03
    kind = rng.integers(0, 3, rows)
    bid[invalid & (kind == 0)] = 0.0
    ask[invalid & (kind == 1)] = -ask[invalid & (kind == 1)]
    bid[invalid & (kind == 2)] = np.nan
    live = rng.random(rows) < 0.10
    latency = rng.exponential(4.0, rows)
    over = rng.random(rows) < 0.05
    latency[over] += THRESHOLD
    latency[live] = np.nan
    start = np.datetime64("2025-10-02T00:00:00", "ns").astype(np.int64)
    ts = start + np.sort(rng.integers(0, 86_400 * 10**9, rows))
    names = pa.array([f"T{i:04d}-USDT-SWAP@BINANCE" for i in range(n_tickers)])
    utc = pa.timestamp("ns", tz="UTC")
    return pa.RecordBatch.from_pydict(
        {
            "seq": pa.array(np.arange(rows, dtype=np.uint64)),
            "mode": pa.array(live.astype(np.uint8)),
            "pos": pa.array(np.where(live, -1, np.arange(rows))),
            "ticker": pa.DictionaryArray.from_arrays(pa.array(ticker.astype(np.uint32)), names),
            "timestamp": pa.array(ts, type=pa.int64()).cast(utc),
            "arrival": pa.array(ts, type=pa.int64()).cast(utc),
            "latency": pa.array(latency),
            "bid_price": pa.array(bid),
            "ask_price": pa.array(ask),
            "bid_amount": pa.array(rng.uniform(1, 1000, rows)),
            "ask_amount": pa.array(rng.uniform(1, 1000, rows)),
        }
    )


def polars_csv(batch: pa.RecordBatch) -> bytes:
    """The bare baseline: timestamp and float mid through ``write_csv``."""
    bid = batch.column("bid_price").to_numpy()
    ask = batch.column("ask_price").to_numpy()
    stamps = pl.from_arrow(batch.column("timestamp"))
    frame = pl.DataFrame({"timestamp": stamps, "mid": (bid + ask) / 2})
    sink = io.BytesIO()
    frame.write_csv(sink)
    return sink.getvalue()


def python_loop(batch: pa.RecordBatch) -> tuple[bytes, bytes]:
    """Per-record formatting with f-strings and ``Decimal``."""
    mids: list[str] = []
    errors: list[str] = []
    cols = batch.to_pydict()
    for mode, ts, lat, bid, ask in zip(
        cols["mode"],
        cols["timestamp"],
        cols["latency"],
        cols["bid_price"],
        cols["ask_price"],
        strict=True,
    ):
        stamp = f"{ts:%Y-%m-%d %H:%M:%S}.{ts.microsecond // 1000:03d}"
        if mode == 0 and lat > THRESHOLD:
            errors.append(f"No mid price at {stamp} as latency {lat}ms is bigger than 20ms\n")
        elif not (0 < bid < float("inf") and 0 < ask < float("inf")):
            errors.append(f"No mid price at {stamp} as quote is invalid (bid {bid}, ask {ask})\n")
        else:
            mid = (Decimal(repr(bid)) + Decimal(repr(ask))) / 2
            mids.append(f"{stamp}, {float(mid)!r}\n")
    return "".join(mids).encode(), "".join(errors).encode()


def best_of(candidates: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Shortest wall time of each candidate over ``repeat`` rounds; each round runs every
    candidate once, so that they share the machine's conditions."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    batch = make_batch(args.rows)
    slices = [batch.slice(i, 65536) for i in range(0, args.rows, 65536)]
    loop_rows = min(args.rows, 50_000)
    out = render(batch, THRESHOLD)
    print(f"rows {args.rows}: {out.n_mid} mid lines, {out.n_errors} error lines")
    figures = best_of(
        {
            "render": lambda: render(batch, THRESHOLD),
            "render extended": lambda: render(batch, THRESHOLD, extended=True),
            "render 64K slices": lambda: [render(s, THRESHOLD) for s in slices],
            "polars write_csv": lambda: polars_csv(batch),
        },
        args.repeat,
    )
    rates = {name: args.rows / seconds for name, seconds in figures.items()}
    loop = best_of({"loop": lambda: python_loop(batch.slice(0, loop_rows))}, 1)["loop"]
    rates["python loop"] = loop_rows / loop
    for name, rate in rates.items():
        print(f"{name:20s} {rate / 1e6:8.2f} M records/s  ({1e3 / rate * args.rows:7.1f} ms)")
    base = rates["polars write_csv"]
    for name in ("render", "render extended", "render 64K slices", "python loop"):
        print(f"{name} / polars write_csv = {rates[name] / base:.2f}")
    print(f"render / python loop = {rates['render'] / rates['python loop']:.1f}")


if __name__ == "__main__":
    main()
