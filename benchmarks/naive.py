"""The usual design, written as simply as its users write it: the contender of the e2e benchmark.

``python -m benchmarks.naive --csv PATH --out-dir DIR [--latency-threshold MS] [--json]``
replays a historical CSV the way a Python user without this project would, and writes
``mid_prices.log`` and ``errors.log`` in the contract's exact format (section 3):

``producer`` (a process)
    reads the CSV with the ``csv`` module, one row at a time (``datetime.fromisoformat`` for the
    timestamp, ``float`` for the numbers), sorts the rows by arrival ``timestamp + latency``
    (integer nanoseconds; Python's sort is stable, so equal arrivals keep their file order),
    then puts ONE ``multiprocessing.Queue`` message per row (a tuple) and ``None`` at the end.
``consumer`` (a process)
    gets one tuple at a time, formats its line with f-strings and ``decimal.Decimal`` (the mid
    is exact: ``(Decimal(repr(bid)) + Decimal(repr(ask))) / 2``), and writes it to one of the
    two logs (buffered text files).

It does not validate rows (no rejects): the benchmark feeds it generated files without bad rows
(``--bad-rows 0``), and leaving the checks out only makes it faster. Timestamps keep microseconds
(all the generated files have). Everything here is the standard library, so the two processes
start as quickly as Python can.

The driver (this module's ``main``, or :func:`run_naive`) spawns both processes, times them from
just before the spawn to the exit of both, and collects each one's peak RSS (``VmHWM`` of
``/proc/self/status``, read by each process just before it exits) and counts. ``--json`` prints
one JSON object (what :func:`run_naive` returns) for a parent process to read.

The per-record functions (:func:`stamp_text`, :func:`plain`, :func:`mid_text`,
:func:`format_record`) are also the "per-record Python loop" contender of
``benchmarks.processor_bench``.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import sys
import time
from datetime import datetime, timedelta
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

#: A message: (timestamp, ticker, bid, ask, latency, bid_amount, ask_amount).
Record = tuple[datetime, str, float, float, float, float, float]

CTX = mp.get_context("spawn")
INF = float("inf")
EPOCH = datetime(1970, 1, 1)
ONE_US = timedelta(microseconds=1)
DEFAULT_THRESHOLD = 20.0
QUEUE_SIZE = 100_000  # messages in flight: bounded memory, like the ring


def peak_rss_kib() -> int:
    """This process's peak resident set size so far (``VmHWM``), in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


# -- per-record formatting (contract section 3) ---------------------------------------------


def stamp_text(ts: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS.mmm``, the fraction cut to milliseconds.

    >>> stamp_text(datetime(2025, 10, 2, 23, 59, 50, 6407))
    '2025-10-02 23:59:50.006'
    """
    return f"{ts:%Y-%m-%d %H:%M:%S}.{ts.microsecond // 1000:03d}"


def plain(x: float) -> str:
    """The shortest decimal that reads back as ``x``, plain, without a trailing ``.0``.

    >>> plain(24.435913010256233), plain(20.0), plain(3.9e-08), plain(-1.5)
    ('24.435913010256233', '20', '0.000000039', '-1.5')
    """
    if x != x or x in (INF, -INF):
        return repr(x)
    text = format(Decimal(repr(x)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def mid_text(bid: float, ask: float) -> str:
    """``(bid + ask) / 2`` exactly for the decimals of the prices, as the shortest plain decimal
    of the nearest float, with at least one digit after the point.

    >>> mid_text(1.1308, 1.1309), mid_text(2.055, 2.056), mid_text(3.8e-08, 3.9e-08)
    ('1.13085', '2.0555', '0.0000000385')
    >>> mid_text(100.0, 100.0), mid_text(1e16, 1e16)
    ('100.0', '10000000000000000.0')
    """
    mid = float((Decimal(repr(bid)) + Decimal(repr(ask))) / 2)
    text = repr(mid)
    if "e" in text:
        text = format(Decimal(text), "f")
    if "." not in text:
        text += ".0"
    return text


def format_record(rec: Record, threshold: float, threshold_text: str) -> tuple[bool, str]:
    """``(is_mid, line)`` of one historical record.

    >>> t = datetime(2025, 1, 1)
    >>> format_record((t, "X", 1.0, 2.0, 25.0, 0.0, 0.0), 20.0, "20")
    (False, 'No mid price at 2025-01-01 00:00:00.000 as latency 25ms is bigger than 20ms\\n')
    >>> format_record((t, "X", 0.0, 2.0, 5.0, 0.0, 0.0), 20.0, "20")
    (False, 'No mid price at 2025-01-01 00:00:00.000 as quote is invalid (bid 0, ask 2)\\n')
    >>> format_record((t, "X", 1.0, 2.0, 20.0, 0.0, 0.0), 20.0, "20")
    (True, '2025-01-01 00:00:00.000, 1.5\\n')
    """
    ts, _ticker, bid, ask, latency = rec[:5]
    stamp = stamp_text(ts)
    if latency > threshold:
        return False, (
            f"No mid price at {stamp} as latency {plain(latency)}ms "
            f"is bigger than {threshold_text}ms\n"
        )
    if not (0 < bid < INF and 0 < ask < INF):
        return False, (
            f"No mid price at {stamp} as quote is invalid (bid {plain(bid)}, ask {plain(ask)})\n"
        )
    return True, f"{stamp}, {mid_text(bid, ask)}\n"


# -- the two processes ----------------------------------------------------------------------


def read_sorted(path: str) -> list[Record]:
    """The CSV's rows as records, sorted by arrival (stable)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [name.strip().lower() for name in next(reader)]
        i_ts, i_tk, i_bid, i_ask, i_lat = (
            header.index(name)
            for name in ("timestamp", "ticker", "bid_price", "ask_price", "latency")
        )
        i_bam = header.index("bid_amount") if "bid_amount" in header else None
        i_aam = header.index("ask_amount") if "ask_amount" in header else None
        keyed: list[tuple[int, Record]] = []
        for row in reader:
            ts = datetime.fromisoformat(row[i_ts])
            latency = float(row[i_lat])
            arrival = (ts - EPOCH) // ONE_US * 1000 + round(latency * 1e6)
            rec = (
                ts, row[i_tk], float(row[i_bid]), float(row[i_ask]), latency,
                float(row[i_bam]) if i_bam is not None else float("nan"),
                float(row[i_aam]) if i_aam is not None else float("nan"),
            )  # fmt: skip
            keyed.append((arrival, rec))
    keyed.sort(key=lambda pair: pair[0])  # stable: equal arrivals keep file order
    return [rec for _, rec in keyed]


def producer(path: str, q: Any, report: Connection) -> None:
    """Read and sort the CSV, put one message per row, then ``None``."""
    records = read_sorted(path)
    put = q.put
    for rec in records:
        put(rec)
    put(None)
    q.close()
    q.join_thread()  # every message is in the pipe
    report.send({"records": len(records), "peak_rss_kib": peak_rss_kib()})


def consumer(q: Any, mid_path: str, error_path: str, threshold: float, report: Connection) -> None:
    """Format each message into its log line, one at a time, until ``None``."""
    threshold_text = plain(threshold)
    n_mid = n_err = 0
    with (
        open(mid_path, "w", encoding="utf-8", newline="\n") as mid,
        open(error_path, "w", encoding="utf-8", newline="\n") as err,
    ):
        get = q.get
        while (rec := get()) is not None:
            is_mid, line = format_record(rec, threshold, threshold_text)
            if is_mid:
                mid.write(line)
                n_mid += 1
            else:
                err.write(line)
                n_err += 1
    report.send({"mids": n_mid, "errors": n_err, "peak_rss_kib": peak_rss_kib()})


# -- the driver -----------------------------------------------------------------------------


def _result(conn: Connection, proc: Any, what: str, timeout: float) -> dict[str, Any]:
    if not conn.poll(timeout):
        raise RuntimeError(f"naive {what} sent nothing within {timeout}s (exit {proc.exitcode})")
    return conn.recv()


def run_naive(
    csv_path: Path, out_dir: Path, threshold: float = DEFAULT_THRESHOLD, timeout: float = 3600.0
) -> dict[str, Any]:
    """Run producer and consumer on ``csv_path``, logs into ``out_dir``; wait for both.

    Returns ``seconds`` (spawn of both to exit of both), ``records``, ``mids``, ``errors``,
    the paths of both logs and each process's ``peak_rss_kib``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    mid, err = out_dir / "mid_prices.log", out_dir / "errors.log"
    q = CTX.Queue(maxsize=QUEUE_SIZE)
    p_recv, p_send = CTX.Pipe(duplex=False)
    c_recv, c_send = CTX.Pipe(duplex=False)
    t0 = time.perf_counter()
    prod = CTX.Process(target=producer, args=(str(csv_path), q, p_send), daemon=True)
    cons = CTX.Process(
        target=consumer, args=(q, str(mid), str(err), threshold, c_send), daemon=True
    )
    procs = (prod, cons)
    try:
        for p in procs:
            p.start()
        p_send.close()
        c_send.close()
        prod_out = _result(p_recv, prod, "producer", timeout)
        cons_out = _result(c_recv, cons, "consumer", timeout)
        for p in procs:
            p.join(timeout)
        seconds = time.perf_counter() - t0
        for p, what in ((prod, "producer"), (cons, "consumer")):
            if p.exitcode != 0:
                raise RuntimeError(f"naive {what} exited with {p.exitcode}")
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        q.close()
        q.cancel_join_thread()
    if prod_out["records"] != cons_out["mids"] + cons_out["errors"]:
        raise RuntimeError(f"naive: {prod_out} records sent, {cons_out} lines written")
    return {
        "seconds": seconds,
        "records": prod_out["records"],
        "mids": cons_out["mids"],
        "errors": cons_out["errors"],
        "mid_log": str(mid),
        "error_log": str(err),
        "peak_rss_kib": {
            "producer": prod_out["peak_rss_kib"],
            "consumer": cons_out["peak_rss_kib"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Run the naive replay; print a summary (or ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, required=True, help="historical CSV (no bad rows)")
    ap.add_argument("--out-dir", type=Path, required=True, help="where the two logs go")
    ap.add_argument("--latency-threshold", type=float, default=DEFAULT_THRESHOLD, metavar="MS")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = ap.parse_args(argv)
    out = run_naive(args.csv, args.out_dir, args.latency_threshold)
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"{out['records']:,} records in {out['seconds']:.2f}s "
            f"({out['records'] / out['seconds']:,.0f}/s): {out['mids']:,} mid lines, "
            f"{out['errors']:,} error lines; peak RSS producer "
            f"{out['peak_rss_kib']['producer'] / 1024:.0f} MiB, consumer "
            f"{out['peak_rss_kib']['consumer'] / 1024:.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
