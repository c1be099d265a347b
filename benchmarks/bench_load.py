"""Historical load benchmark: this project's loader against pandas, and a cached reload.

``python -m benchmarks.bench_load --rows 1000000`` writes a CSV in the real layout to a temp
directory, then times in one run, each contender in a fresh process (so each pays its own
memory first-touch, as a real start does), rounds rotating the order:

- ``load_historical``: read, validate, sort by arrival (``engine.historical``)
- ``pandas read_csv``: ``pd.read_csv`` alone, the floor of any pandas approach
- ``pandas full``: the same job in pandas: ``read_csv``, ``to_datetime``, arrival,
  ``sort_values("arrival", kind="stable")``
- ``load_or_parse cold``: parse and write the Arrow cache (``engine.cache``)
- ``load_or_parse cached``: a restart that memory-maps the cache

Times exclude interpreter start and imports. Medians and bests over ``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

HEADER = b",index,timestamp,ticker,ask_amount,ask_price,bid_price,bid_amount,latency\n"
VENUES = ("KRAKEN", "BYBIT", "OKEX", "BINANCE", "BITGET", "GATE-IO", "HTX", "COINBASEINT")
CONTENDERS = ("load_historical", "pandas read_csv", "pandas full", "load_or_parse cold")


def generate(path: Path, rows: int, seed: int = 1) -> None:
    """Write ``rows`` quotes in the layout of the real samples (in timestamp order)."""
    rng = np.random.default_rng(seed)
    tickers = np.array([f"C{i:04d}-USDT-SWAP@{v}" for i in range(500) for v in VENUES])
    pick = rng.integers(0, len(tickers), rows)
    start = np.datetime64("2025-10-02T00:00:00", "ns").astype(np.int64)
    stamps = start + np.sort(rng.integers(0, 86_400_000_000, rows)) * 1000  # microseconds
    bid = np.round(np.exp(rng.normal(0.0, 3.0, len(tickers)))[pick], 6)
    frame = pl.DataFrame(
        {
            "n": np.arange(rows),
            "index": np.arange(rows)[::-1],
            "timestamp": pl.Series(stamps).cast(pl.Datetime("ns")),
            "ticker": tickers[pick],
            "ask_amount": np.round(rng.exponential(1000, rows), 1),
            "ask_price": np.round(bid * 1.0002, 6),
            "bid_price": bid,
            "bid_amount": np.round(rng.exponential(1000, rows), 1),
            "latency": rng.lognormal(np.log(20), 0.6, rows),
        }
    )
    with open(path, "wb") as f:
        f.write(HEADER)
        frame.write_csv(f, include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%.6f")


def _run_one(contender: str, csv: Path, state: Path) -> dict[str, float]:
    """Time one contender in this process (the child side of ``measure``).

    Each side runs as it would in its own program: pandas imported before the clock starts for
    the pandas contenders; for the project's, pandas blocked as in the engine (pyarrow would
    otherwise import it on its first numpy conversion, 0.3 s inside the timed call).
    """
    if contender.startswith("pandas"):
        import pandas as pd
    else:
        from common.startup import without_pandas

        without_pandas()
    from engine.cache import load_or_parse
    from engine.historical import load_historical

    def pandas_full() -> int:
        df = pd.read_csv(csv)
        df["timestamp"] = pd.to_datetime(df["timestamp"], format="ISO8601")
        df["arrival"] = df["timestamp"] + pd.to_timedelta(df["latency"], unit="ms")
        return len(df.sort_values("arrival", kind="stable"))

    def cached() -> int:
        parsed, hit = load_or_parse(csv, state)
        assert hit, "the cache was not used"
        return parsed.table.num_rows

    run = {
        "load_historical": lambda: load_historical(csv).table.num_rows,
        "pandas read_csv": lambda: len(pd.read_csv(csv)),
        "pandas full": pandas_full,
        "load_or_parse cold": lambda: load_or_parse(csv, state)[0].table.num_rows,
        "load_or_parse cached": cached,
    }[contender]
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    rows = run()
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"seconds": t1 - t0, "cpu": cpu, "rows": rows}


def measure(contender: str, csv: Path, state: Path) -> dict[str, float]:
    """Time ``contender`` in a fresh interpreter."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_load",
            "--child",
            contender,
            "--csv",
            str(csv),
            "--state",
            str(state),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="rounds (median and best reported)")
    ap.add_argument("--csv", type=Path, help="use this file instead of generating one")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_run_one(args.child, args.csv, args.state)))
        return

    with tempfile.TemporaryDirectory(prefix="bench_load-") as tmp:
        csv = args.csv or Path(tmp) / "historical.csv"
        if args.csv is None:
            t0 = time.perf_counter()
            generate(csv, args.rows)
            print(f"generated {args.rows:,} rows in {time.perf_counter() - t0:.1f}s")
        size = csv.stat().st_size
        with open(csv, "rb") as f:  # page cache warm, so every contender reads from memory
            while f.read(1 << 24):
                pass
        print(f"{csv}: {size / 1e6:.0f} MB; {os.cpu_count()} cores; {args.repeat} rounds")
        state = Path(tmp) / "state"
        times: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        rows = 0
        for r in range(args.repeat):
            order = CONTENDERS[r % len(CONTENDERS) :] + CONTENDERS[: r % len(CONTENDERS)]
            for name in order:
                if name == "load_or_parse cold":
                    shutil.rmtree(state, ignore_errors=True)
                got = measure(name, csv, state)
                times.setdefault(name, []).append(got["seconds"])
                cpu.setdefault(name, []).append(got["cpu"])
                rows = max(rows, int(got["rows"]))
                print(f"  round {r + 1}: {name:22} {got['seconds']:8.3f}s", flush=True)
            got = measure("load_or_parse cached", csv, state)
            times.setdefault("load_or_parse cached", []).append(got["seconds"])
            cpu.setdefault("load_or_parse cached", []).append(got["cpu"])
            print(f"  round {r + 1}: {'load_or_parse cached':22} {got['seconds']:8.3f}s")

    med = {name: statistics.median(secs) for name, secs in times.items()}
    print(f"\n{rows:,} rows, {size / 1e6:.0f} MB; wall seconds (median, best), CPU seconds")
    print(
        f"{'contender':22}{'median':>8}{'best':>8}{'cpu':>7}{'Mrows/s':>9}"
        f"{'vs pandas full':>16}{'vs read_csv':>13}"
    )
    for name, secs in times.items():
        print(
            f"{name:22}{med[name]:8.3f}{min(secs):8.3f}{statistics.median(cpu[name]):7.2f}"
            f"{rows / med[name] / 1e6:9.2f}{med['pandas full'] / med[name]:15.1f}x"
            f"{med['pandas read_csv'] / med[name]:12.1f}x"
        )


if __name__ == "__main__":
    main()
