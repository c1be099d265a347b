"""Frames per second each venue adapter decodes on one core (``engine.venues``).

``python -m benchmarks.bench_venues [--frames 200000] [--cpu 0] [--rounds 3] [--json PATH]``

For each ``--live-format`` it builds ``--frames`` frames of the venue's own top-of-book message,
as that venue sends them (one quote a frame, 500 instruments, prices and sizes as decimal
strings, or JSON numbers for Kraken, times increasing; Bybit: a snapshot per instrument, then
deltas changing one side; the other venues' messages carry every field the documentation
shows, ticker statistics included), as bytes, and times ``Adapter.decode`` over all of them:
what the live connection does per frame (UTF-8 and size check, JSON, the venue's rules, exact
numbers) and the batching after it (one Arrow table a batch of 4,096). The process is pinned
to one CPU (``--cpu``); the best of ``--rounds`` rounds is reported, each checked to give one
quote a frame and no rejects. One more contender, ``ours-table-per-frame``, is our format as
the live connection read it before (a table per frame, concatenated per batch): the same frames
as ``ours``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.live import Batcher
from engine.live_parse import parse_frame
from engine.venues import FORMATS, make_adapter

T0_MS = 1_764_288_000_000
#: A contender: our format parsed into a table per frame (``parse_frame``), as the live
#: connection did before the adapters handed rows over (one table per batch).
PER_FRAME = "ours-table-per-frame"
SYMBOLS = 500


def _prices(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sym = rng.integers(0, SYMBOLS, n)
    bid = np.round(rng.lognormal(3, 2, n), 4) + 0.0001
    size = np.round(rng.exponential(50, n), 3) + 0.001
    return sym, bid, size, T0_MS + np.cumsum(rng.integers(0, 3, n))


def _d(x: float) -> str:
    return f"{x:.4f}"


def frames_for(fmt: str, n: int) -> tuple[list[bytes], list[str]]:
    """``n`` frames of ``fmt`` and the instruments they name."""
    sym, bid, size, ms = _prices(n, seed=len(fmt))
    make: Callable[[int], Any]
    if fmt == "ours":
        names = [f"C{i:03d}-USDT-SWAP@BINANCE" for i in range(SYMBOLS)]
        stamps = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms")

        def make(i: int) -> Any:
            return {"timestamp": str(stamps[i]).replace("T", " "), "ticker": names[sym[i]],
                    "bid_price": _d(bid[i]), "ask_price": _d(bid[i] + 0.01),
                    "bid_amount": _d(size[i]), "ask_amount": _d(size[i] * 2)}  # fmt: skip
    elif fmt == "binance":
        names = [f"C{i:03d}USDT" for i in range(SYMBOLS)]

        def make(i: int) -> Any:
            return {"e": "bookTicker", "u": 400900217 + i, "E": int(ms[i]) + 2, "T": int(ms[i]),
                    "s": names[sym[i]], "b": _d(bid[i]), "B": _d(size[i]),
                    "a": _d(bid[i] + 0.01), "A": _d(size[i] * 2)}  # fmt: skip
    elif fmt == "okx":
        names = [f"C{i:03d}-USDT-SWAP" for i in range(SYMBOLS)]

        def make(i: int) -> Any:
            return {"arg": {"channel": "bbo-tbt", "instId": names[sym[i]]}, "data": [
                {"asks": [[_d(bid[i] + 0.01), _d(size[i] * 2), "0", "3"]],
                 "bids": [[_d(bid[i]), _d(size[i]), "0", "2"]], "ts": str(ms[i]),
                 "seqId": 363996337 + i}]}  # fmt: skip
    elif fmt == "okx-tickers":
        names = [f"C{i:03d}-USDT" for i in range(SYMBOLS)]

        def make(i: int) -> Any:
            b = _d(bid[i])
            return {"arg": {"channel": "tickers", "instId": names[sym[i]]}, "data": [
                {"instType": "SPOT", "instId": names[sym[i]], "last": b, "lastSz": "0.1",
                 "askPx": _d(bid[i] + 0.01), "askSz": _d(size[i] * 2), "bidPx": b,
                 "bidSz": _d(size[i]), "open24h": b, "high24h": b, "low24h": b,
                 "volCcy24h": "2222", "vol24h": "2222", "sodUtc0": b, "sodUtc8": b,
                 "ts": str(ms[i])}]}  # fmt: skip
    elif fmt == "bybit":
        names = [f"C{i:03d}USDT" for i in range(SYMBOLS)]
        seen: set[int] = set()

        def make(i: int) -> Any:
            s = int(sym[i])
            first = s not in seen
            seen.add(s)
            b = [[_d(bid[i]), _d(size[i])]]
            a = [[_d(bid[i] + 0.01), _d(size[i] * 2)]]
            data = {"s": names[s], "b": b, "a": a if first or i % 2 else [], "u": i + 1,
                    "seq": 7961638724 + i}  # fmt: skip
            if not first and i % 2 == 0:
                data["b"] = b
            return {"topic": f"orderbook.1.{names[s]}", "type": "snapshot" if first else "delta",
                    "ts": int(ms[i]) + 2, "data": data, "cts": int(ms[i])}  # fmt: skip
    elif fmt == "coinbase":
        names = [f"C{i:03d}-USD" for i in range(SYMBOLS)]
        stamps = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ns")

        def make(i: int) -> Any:
            b = _d(bid[i])
            return {"channel": "ticker", "client_id": "", "timestamp": f"{stamps[i]}Z",
                    "sequence_num": i, "events": [{"type": "update", "tickers": [
                        {"type": "ticker", "product_id": names[sym[i]], "price": b,
                         "volume_24_h": "16038.28770938", "low_24_h": b, "high_24_h": b,
                         "low_52_w": "15460", "high_52_w": "48240",
                         "price_percent_chg_24_h": "-4.15775596190603", "best_bid": b,
                         "best_bid_quantity": _d(size[i]), "best_ask": _d(bid[i] + 0.01),
                         "best_ask_quantity": _d(size[i] * 2)}]}]}  # fmt: skip
    elif fmt == "kraken":
        names = [f"C{i:03d}/USD" for i in range(SYMBOLS)]
        stamps = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="us")

        def make(i: int) -> Any:
            b = float(_d(bid[i]))
            return {"channel": "ticker", "type": "update", "data": [
                {"symbol": names[sym[i]], "bid": b, "bid_qty": float(_d(size[i])),
                 "ask": float(_d(bid[i] + 0.01)), "ask_qty": float(_d(size[i] * 2)), "last": b,
                 "volume": 997038.98383185, "vwap": b, "low": b, "high": b, "change": -0.00017,
                 "change_pct": -0.17, "timestamp": f"{stamps[i]}Z"}]}  # fmt: skip
    else:
        raise ValueError(fmt)
    return [json.dumps(make(i)).encode() for i in range(n)], names


def measure(fmt: str, frames: list[bytes], names: list[str]) -> float:
    """Seconds to decode ``frames`` with a fresh adapter and batch them as the live connection
    does (``Batcher``: 4,096 records a batch, each batch one Arrow table); checks one quote a
    frame and that every record reached a batch."""
    instruments = [] if fmt in ("ours", PER_FRAME) else names
    adapter = make_adapter("ours" if fmt == PER_FRAME else fmt, instruments,
                           url="ws://bench/v5/public/linear", source="bench")  # fmt: skip
    adapter.connected()
    decode = adapter.decode
    batcher = Batcher(batch_records=4096, max_pending=1 << 30, idle_timeout=0)
    t0 = time.perf_counter()
    per_frame = fmt == PER_FRAME
    for i, data in enumerate(frames):
        if per_frame:  # the design before: a table per frame, concatenated per batch
            table, rejected = parse_frame(data, source="bench", frame_no=i, received_ns=i)
            full = batcher.add(table, rejected, 0.0)
        else:
            d = decode(data, i, i)
            full = batcher.add_rows(d.rows, i, i, d.rejected, 0.0)
        if full:
            batcher.flush(0.0)
    batcher.flush(0.0, force=True)
    records = 0
    while (batch := batcher.take()) is not None:
        records += batch[0].num_rows if batch[0] is not None else 0
    elapsed = time.perf_counter() - t0
    if records != len(frames):
        raise AssertionError(f"{fmt}: {records} records batched for {len(frames)} frames")
    other = sum(v for k, v in adapter.counts.items() if k not in ("quotes", "no_exchange_time"))
    if other or (adapter.counts["quotes"] != len(frames) and not per_frame):
        raise AssertionError(f"{fmt}: {dict(adapter.counts)} for {len(frames)} frames")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--cpu", type=int, default=0, help="the CPU to pin to (default 0)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = ap.parse_args(argv)
    os.sched_setaffinity(0, {args.cpu})
    results: dict[str, Any] = {}
    print(f"{'format':20} {'frames/s':>12} {'us/frame':>9} {'bytes/frame':>12}")
    for fmt in (*FORMATS, PER_FRAME):
        frames, names = frames_for("ours" if fmt == PER_FRAME else fmt, args.frames)
        measure(fmt, frames[:2000], names)  # warm up
        best = min(measure(fmt, frames, names) for _ in range(args.rounds))
        size = sum(map(len, frames)) / len(frames)
        rate = len(frames) / best
        us = round(best / len(frames) * 1e6, 2)
        results[fmt] = {"frames_per_s": round(rate), "us_per_frame": us,
                        "bytes_per_frame": round(size)}  # fmt: skip
        print(f"{fmt:20} {rate:12,.0f} {best / len(frames) * 1e6:9.2f} {size:12.0f}")
    if args.json:
        meta = {"frames": args.frames, "rounds": args.rounds, "cpu": args.cpu,
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
