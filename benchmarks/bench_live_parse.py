"""Live frame parsing throughput: quotes per second for 1-object frames and 100-object arrays.

``python -m benchmarks.bench_live_parse --quotes 200000`` builds realistic quote objects (distinct
tickers, microsecond timestamps, float prices; ``--strings`` sends numbers as decimal strings)
and times ``engine.live_parse.parse_frame`` over them as bytes, as a websocket delivers them.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from engine.live_parse import parse_frame


def quotes(n: int, strings: bool, seed: int = 1) -> list[dict]:
    """``n`` quote objects like the live feed's."""
    rng = np.random.default_rng(seed)
    tickers = [f"C{i:04d}-USDT-SWAP@BINANCE" for i in range(2000)]
    start = np.datetime64("2025-10-02T00:00:00", "us")
    stamps = start + np.cumsum(rng.integers(0, 50, n)).astype("timedelta64[us]")
    out = []
    for i in range(n):
        bid = round(float(rng.lognormal(0, 3)), 6)
        amount = round(float(rng.exponential(1000)), 2)
        values: list[float | str] = [bid, round(bid * 1.0002, 6), amount, 12.5]
        if strings:
            values = [repr(v) for v in values]
        out.append(
            {
                "timestamp": str(stamps[i]).replace("T", " "),
                "ticker": tickers[int(rng.integers(0, len(tickers)))],
                "bid_price": values[0],
                "ask_price": values[1],
                "bid_amount": values[2],
                "ask_amount": values[3],
            }
        )
    return out


def rate(frames: list[bytes], per_frame: int) -> tuple[float, float]:
    """Quotes per second and microseconds per frame over ``frames``."""
    t0 = time.perf_counter()
    for i, data in enumerate(frames):
        table, rejected = parse_frame(data, source="ws://bench", frame_no=i, received_ns=i)
        assert table is not None and not rejected
    dt = time.perf_counter() - t0
    return len(frames) * per_frame / dt, dt / len(frames) * 1e6


def main(argv: list[str] | None = None) -> None:
    """Run and print the two figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quotes", type=int, default=200_000)
    ap.add_argument("--strings", action="store_true", help="numbers as decimal strings")
    args = ap.parse_args(argv)
    objs = quotes(args.quotes, args.strings)
    singles = [json.dumps(q).encode() for q in objs]
    arrays = [json.dumps(objs[i : i + 100]).encode() for i in range(0, len(objs) - 99, 100)]
    rate(singles[:1000], 1)  # warm up
    kind = "strings" if args.strings else "numbers"
    for label, frames, per in (("1-object frames", singles, 1), ("100-object arrays", arrays, 100)):
        qps, us = rate(frames, per)
        print(f"{label:18} ({kind}): {qps:>12,.0f} quotes/s  {us:8.1f} us/frame")


if __name__ == "__main__":
    main()
