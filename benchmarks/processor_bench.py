"""The processor's throughput on records already in the ring, against Polars and a Python loop.

``python -m benchmarks.processor_bench [--rows 1M] [--repeat 5] [--loop-rows 100k] [--json]``

It generates a realistic historical CSV (``python -m data.generate --bad-rows 0``), loads and
sorts it with the engine's loader, and publishes every record into a ring with room for all of
them (capacity ``2**k >= rows``) as the engine would (``QUOTE_SCHEMA``: seq, mode, pos, ticker
codes), then ends the stream. Then, round after round (the order rotating, so that every ratio
compares runs made side by side), each contender takes all the records:

``processor program``
    ``python -m processor --exit-at-end`` under a fresh consumer name, timed from the start of
    the process to its exit (interpreter start-up, attach, the fsyncs of its commit cycles).
``read+render+write``
    the processor's loop in this process, without start-up: ``read(65536)`` from the ring,
    ``processor.parallel.RenderPool`` (``render`` on two worker threads, as in the program),
    append both logs to files (buffered, no fsync), commit the ring position.
``polars write_csv``
    a bare ``polars.DataFrame({"timestamp": ..., "mid": (bid + ask) / 2}).write_csv(path)`` of
    the same rows from memory: datetime text and a float mid (not the contract's exact text).
``per-record loop``
    per record, in Python: read from the ring, ``to_pylist``, format each line with f-strings and
    ``Decimal`` (``benchmarks.naive.format_record``), write; run on the first ``--loop-rows``
    records only (it is slow) and reported per record.

Checks: the program's logs equal the in-process loop's byte for byte and hold one line per
record; Polars wrote a header and one line per record; the per-record loop's lines equal the
lines ``render`` gives for the same records. Figures are medians over ``--repeat`` rounds.
The goal: the processor at least 0.8 times the rate of the bare Polars write.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

import ringbuffer
from benchmarks.e2e import PeakRss, count_lines, generate_csv, parse_size
from benchmarks.naive import format_record, plain
from common.schema import QUOTE_SCHEMA, Mode
from engine.historical import load_historical
from engine.sources import columns_of
from processor.parallel import RenderPool
from processor.rules import Rendered, render

ROOT = Path(__file__).resolve().parents[1]
THRESHOLD = 20.0
READ_MAX = 65536
GOAL = 0.8  # the processor's rate over Polars write_csv's
RING_PREFIX = "bench-proc-"
CONTENDERS = ("processor program", "read+render+write", "polars write_csv")


def ring_name(prefix: str = RING_PREFIX) -> str:
    """A ring name no other run uses."""
    return f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def load_records(csv: Path) -> dict[str, Any]:
    """The CSV's valid records, sorted by arrival, as the engine's record columns."""
    parsed = load_historical(csv)
    if parsed.rejected_count:
        raise RuntimeError(f"{csv}: {parsed.rejected_count} rows rejected")
    return columns_of(parsed.table)


def publish_all(w: ringbuffer.Writer, cols: dict[str, Any], batch: int = READ_MAX) -> int:
    """Publish the records as the engine does (seq, mode, pos, ticker codes); returns the count."""
    n = len(cols["timestamp"])
    ticker = cols["ticker"]
    codes = w.symbol_codes(ticker.dictionary)[ticker.indices.to_numpy(zero_copy_only=False)]
    ring_cols = {k: v for k, v in cols.items() if k != "ticker"}
    ring_cols.update(
        ticker=codes,
        seq=np.arange(n, dtype=np.uint64),
        mode=np.full(n, Mode.HISTORICAL, dtype=np.uint8),
        pos=np.arange(n, dtype=np.int64),
    )
    for at in range(0, n, batch):
        w.publish({k: v[at : at + batch] for k, v in ring_cols.items()})
    return n


# -- the contenders ---------------------------------------------------------------------------


def run_program(ring: str, name: str, out_dir: Path, timeout: float = 600.0) -> dict[str, Any]:
    """``python -m processor --exit-at-end`` as consumer ``name``, start to exit."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mid, err = out_dir / "mid_prices.log", out_dir / "errors.log"
    cmd = [sys.executable, "-m", "processor", "--ring", ring, "--name", name,
           "--mid-log", str(mid), "--error-log", str(err), "--exit-at-end",
           "--latency-threshold", plain(THRESHOLD)]  # fmt: skip
    with open(out_dir / "processor.stderr", "w") as log, PeakRss() as rss:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        rss.add("processor", proc.pid)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"processor exited with {proc.returncode}; see {out_dir}")
    return {
        "seconds": seconds,
        "out": out_dir,
        "peak_rss_kib": rss.peak.get("processor", 0),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }


def run_inprocess(ring: str, name: str, out_dir: Path) -> dict[str, Any]:
    """Read, render and write every record in this process; times the loop only."""
    out_dir.mkdir(parents=True, exist_ok=True)
    r = ringbuffer.attach(ring, name, timeout=10.0, release="commit")
    n = 0
    batch = None
    try:
        with (
            RenderPool[int](THRESHOLD) as pool,
            open(out_dir / "mid_prices.log", "wb") as mid,
            open(out_dir / "errors.log", "wb") as err,
        ):

            def write(results: Iterable[tuple[Rendered, int]]) -> None:
                for out, position in results:
                    for part in out.mid_parts:
                        mid.write(part)
                    for part in out.error_parts:
                        err.write(part)
                    r.commit(position)  # as the program: records stay until written

            t0 = time.perf_counter()
            while (batch := r.read(max_records=READ_MAX, timeout=1.0)) is not None:
                pool.submit(batch, r.position)
                write(pool.ready())
                n += batch.num_rows
            write(pool.drain())
            seconds = time.perf_counter() - t0
        if not r.ended:
            raise RuntimeError("in-process reader: the ring stopped without its end")
    finally:
        batch = None
        r.close()
    return {"seconds": seconds, "records": n, "out": out_dir}


def run_polars(cols: dict[str, Any], path: Path) -> dict[str, Any]:
    """A bare Polars CSV write of (timestamp, (bid + ask) / 2) to ``path``."""
    t0 = time.perf_counter()
    frame = pl.DataFrame(
        {
            "timestamp": pl.Series(cols["timestamp"]).cast(pl.Datetime("ns", "UTC")),
            "mid": (cols["bid_price"] + cols["ask_price"]) / 2,
        }
    )
    frame.write_csv(path)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "lines": count_lines(path)}


def loop_lines(batch: pa.RecordBatch) -> tuple[list[str], list[str]]:
    """Per-record formatting of a batch: (mid lines, error lines)."""
    mids: list[str] = []
    errors: list[str] = []
    threshold_text = plain(THRESHOLD)
    cols = batch.select(["mode", "timestamp", "bid_price", "ask_price", "latency"]).to_pydict()
    no_amount = float("nan")  # format_record ignores the amounts: not read from the ring
    for mode, ts, bid, ask, lat in zip(
        cols["mode"], cols["timestamp"], cols["bid_price"], cols["ask_price"], cols["latency"],
        strict=True,
    ):  # fmt: skip
        if mode != Mode.HISTORICAL:
            raise ValueError("the loop handles historical records only")
        rec = (ts, "", bid, ask, lat, no_amount, no_amount)
        is_mid, line = format_record(rec, THRESHOLD, threshold_text)
        (mids if is_mid else errors).append(line)
    return mids, errors


def run_loop(ring: str, name: str, rows: int, out_dir: Path) -> dict[str, Any]:
    """The per-record loop over the first ``rows`` records of the ring, written to files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    r = ringbuffer.attach(ring, name, timeout=10.0)
    n = 0
    batch = None
    try:
        with (
            open(out_dir / "mid_prices.log", "w", encoding="utf-8", newline="\n") as mid,
            open(out_dir / "errors.log", "w", encoding="utf-8", newline="\n") as err,
        ):
            t0 = time.perf_counter()
            while n < rows:
                batch = r.read(max_records=min(READ_MAX, rows - n), timeout=1.0)
                if batch is None:
                    break
                mids, errors = loop_lines(batch)
                for line in mids:
                    mid.write(line)
                for line in errors:
                    err.write(line)
                n += batch.num_rows
            seconds = time.perf_counter() - t0
    finally:
        batch = None
        r.close()
    return {"seconds": seconds, "records": n, "out": out_dir}


def expected_prefix(ring: str, name: str, rows: int) -> tuple[bytes, bytes]:
    """``render``'s output for the first ``rows`` records (what the loop must have written)."""
    r = ringbuffer.attach(ring, name, timeout=10.0)
    mid: list[bytes] = []
    err: list[bytes] = []
    n = 0
    batch = None
    try:
        while n < rows and (
            batch := r.read(max_records=min(READ_MAX, rows - n), timeout=1.0)
        ) is not None:
            out = render(batch, THRESHOLD)
            mid.append(out.mid)
            err.append(out.errors)
            n += batch.num_rows
    finally:
        batch = None
        r.close()
    return b"".join(mid), b"".join(err)


# -- the benchmark ----------------------------------------------------------------------------


def _same(a: Path, b: Path) -> bool:
    return all(
        filecmp.cmp(a / f, b / f, shallow=False) for f in ("mid_prices.log", "errors.log")
    )


def measure(
    rows: int,
    repeat: int,
    loop_rows: int,
    out: Callable[[str], None] = print,
    tmp_root: str | None = None,
) -> dict[str, Any]:
    """Every contender on the same ``rows`` records; the report."""
    capacity = 1 << max(1, (rows - 1).bit_length())
    loop_rows = min(loop_rows, rows)
    with tempfile.TemporaryDirectory(prefix="bench-proc-", dir=tmp_root) as tmp_s:
        tmp = Path(tmp_s)
        t = time.perf_counter()
        cols = load_records(generate_csv(rows, tmp))
        (tmp / "historical_sample.csv").unlink()
        out(f"  {rows:,} records generated and loaded in {time.perf_counter() - t:.1f}s")
        ring = ring_name()
        w = ringbuffer.create(ring, QUOTE_SCHEMA, capacity)
        try:
            t = time.perf_counter()
            n = publish_all(w, cols)
            w.end()
            out(f"  published {n:,} records into ring {ring} (capacity {capacity:,}) "
                f"in {time.perf_counter() - t:.2f}s; stream ended")  # fmt: skip
            want_mid, want_err = expected_prefix(ring, "expect", loop_rows)
            times: dict[str, list[float]] = {c: [] for c in (*CONTENDERS, "per-record loop")}
            rss: list[int] = []
            cpu: list[float] = []
            for rnd in range(repeat):
                order = CONTENDERS[rnd % 3 :] + CONTENDERS[: rnd % 3]
                got: dict[str, dict[str, Any]] = {}
                for c in order:
                    d = tmp / f"r{rnd}-{c.split()[0]}"
                    if c == "processor program":
                        got[c] = run_program(ring, f"prog{rnd}", d)
                        rss.append(got[c]["peak_rss_kib"])
                        cpu.append(got[c]["cpu_seconds"])
                    elif c == "read+render+write":
                        got[c] = run_inprocess(ring, f"inproc{rnd}", d)
                        if got[c]["records"] != n:
                            raise RuntimeError(f"in-process: {got[c]['records']:,} of {n:,}")
                    else:
                        d.mkdir()
                        got[c] = run_polars(cols, d / "polars.csv")
                        if got[c]["lines"] != n + 1:
                            raise RuntimeError(f"polars wrote {got[c]['lines']:,} lines")
                    times[c].append(got[c]["seconds"])
                prog, inproc = got["processor program"]["out"], got["read+render+write"]["out"]
                lines = count_lines(inproc / "mid_prices.log") + count_lines(
                    inproc / "errors.log"
                )
                if lines != n:
                    raise RuntimeError(f"read+render+write: {lines:,} lines for {n:,} records")
                if not _same(prog, inproc):
                    raise RuntimeError("the processor program's logs differ from the loop's")
                loop = run_loop(ring, f"loop{rnd}", loop_rows, tmp / f"r{rnd}-loop")
                lp = loop["out"]
                if loop["records"] != loop_rows or (
                    (lp / "mid_prices.log").read_bytes() != want_mid
                    or (lp / "errors.log").read_bytes() != want_err
                ):
                    raise RuntimeError("the per-record loop's lines differ from render's")
                times["per-record loop"].append(loop["seconds"] * n / loop_rows)  # scaled to n
                out(f"    round {rnd + 1}: " + ", ".join(
                    f"{c} {times[c][-1]:.3f}s" for c in times
                ) + " (checked)")  # fmt: skip
                for p in tmp.glob(f"r{rnd}-*"):
                    shutil.rmtree(p, ignore_errors=True)
        finally:
            w.close()
    med = {c: statistics.median(v) for c, v in times.items()}
    rates = {c: n / s for c, s in med.items()}
    base = rates["polars write_csv"]
    return {
        "rows": n,
        "loop_rows": loop_rows,
        "repeat": repeat,
        "seconds": med,
        "all_seconds": times,
        "records_per_s": rates,
        "over_polars": {c: r / base for c, r in rates.items()},
        "over_loop": {c: r / rates["per-record loop"] for c, r in rates.items()},
        "program_peak_rss_kib": max(rss) if rss else None,
        "program_cpu_seconds": statistics.median(cpu) if cpu else None,
        "goal": GOAL,
        "goal_met": rates["read+render+write"] / base >= GOAL,
        "goal_met_program": rates["processor program"] / base >= GOAL,
    }


def table(report: dict[str, Any]) -> list[str]:
    """The report as printable lines."""
    lines = [f"{'contender':<20}{'seconds':>9}{'records/s':>14}{'vs polars':>11}{'vs loop':>10}"]
    for c, s in report["seconds"].items():
        lines.append(
            f"{c:<20}{s:9.3f}{report['records_per_s'][c]:14,.0f}"
            f"{report['over_polars'][c]:10.2f}x{report['over_loop'][c]:9.1f}x"
        )
    lines.append(
        f"(per-record loop: measured on {report['loop_rows']:,} records, scaled to "
        f"{report['rows']:,}); goal read+render+write >= {report['goal']}x polars write_csv: "
        f"{'met' if report['goal_met'] else 'NOT met'}; the whole program (start-up included): "
        f"{'met' if report['goal_met_program'] else 'not met'}"
    )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table (or also ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=parse_size, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5, help="rounds (median shown)")
    ap.add_argument("--loop-rows", type=parse_size, default=100_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    report = measure(args.rows, args.repeat, args.loop_rows)
    print()
    for line in table(report):
        print(line)
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
