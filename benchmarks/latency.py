"""Publish-to-read latency through the ring at fixed rates, one reader process.

``python -m benchmarks.latency [--rates 10k,100k,1M] [--seconds 3] [--interval-us 1000]
[--wait default|busy|S,Y[,MIN,MAX]] [--json]``

For each rate, this process creates a ring of quote records (``QUOTE_SCHEMA``, 77 bytes each)
and a reader process attaches to it. The writer then paces batches: every ``--interval-us`` it
publishes ``rate * interval`` records, each carrying in its ``timestamp`` column the
``CLOCK_MONOTONIC`` nanoseconds taken just before the ``publish`` call (one clock for every
process). The reader stamps the same clock as soon as each ``read`` returns and keeps
``read time - timestamp`` of every record. Reported: p50, p99, p99.9 and the maximum in
microseconds, over ``--seconds`` of stream per rate, with the rate achieved (the writer catches
up at once if the machine delays it, so it is close to the rate asked).

Both sides use the same wait strategy (default: the ring's default: spin, yield, then sleep with
backoff up to 1 ms). The reader checks that it got every record in order (count and ``seq``
checksum); a mismatch fails the run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

import ringbuffer
from benchmarks.e2e import parse_size, size_list
from benchmarks.ring_vs_queue import parse_wait
from benchmarks.transport import CTX, SCHEMA, TICKERS, make_columns, now_ns, wait_label
from ringbuffer import DEFAULT_WAIT, WaitStrategy

RING_PREFIX = "bench-lat-"
WAIT_S = 30.0
CAPACITY = 1 << 18
PERCENTILES = (50.0, 99.0, 99.9)


@dataclass(frozen=True)
class Latency:
    """Publish-to-read latency of one rate."""

    rate: int  # records per second asked for
    achieved: float  # records per second published
    records: int
    batch: int  # records per publish
    wait: str
    p50_us: float
    p99_us: float
    p999_us: float
    max_us: float

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


def reader(ring: str, total: int, wait: WaitStrategy, conn: Connection) -> None:
    """Child: attach, signal, read ``total`` records stamping each read; send the percentiles."""
    try:
        r = ringbuffer.attach(ring, "latency", timeout=WAIT_S, wait=wait)
        b = None
        try:
            conn.send(("attached",))
            lat = np.empty(total, dtype=np.int64)
            n = 0
            seq_sum = 0
            in_order = True
            while n < total:
                b = r.read(max_records=65536, timeout=WAIT_S)
                t = now_ns()
                if b is None:
                    break
                k = b.num_rows
                stamps = b.column("timestamp").to_numpy().view(np.int64)
                lat[n : n + k] = t - stamps
                seq = b.column("seq").to_numpy()
                in_order &= int(seq[0]) == n and int(seq[-1]) == n + k - 1
                seq_sum += int(seq.sum())
                n += k
            lat = lat[:n]
            pct = np.percentile(lat, PERCENTILES) / 1e3 if n else [np.nan] * 3
            conn.send(
                ("done", n, seq_sum, in_order, [float(x) for x in pct],
                 float(lat.max()) / 1e3 if n else np.nan)
            )  # fmt: skip
        finally:
            b = None
            r.close()
    except BaseException as exc:
        conn.send(("error", repr(exc)))
        raise


def _expect(conn: Connection, what: str, timeout: float = WAIT_S) -> tuple[Any, ...]:
    if not conn.poll(timeout):
        raise RuntimeError(f"latency reader sent no {what!r} within {timeout}s")
    msg = conn.recv()
    if msg[0] == "error":
        raise RuntimeError(f"latency reader failed: {msg[1]}")
    if msg[0] != what:
        raise RuntimeError(f"latency reader sent {msg!r}, expected {what!r}")
    return msg


def measure_rate(
    rate: int, seconds: float, interval_us: int = 1000, wait: WaitStrategy = DEFAULT_WAIT
) -> Latency:
    """Publish ``rate`` records/s for ``seconds`` in paced batches; the reader's latencies."""
    interval_ns = interval_us * 1000
    batch = max(1, round(rate * interval_us / 1e6))
    interval_ns = round(batch * 1e9 / rate)  # exact rate for a whole batch
    n_batches = max(1, round(seconds * 1e9 / interval_ns))
    total = n_batches * batch
    pool = make_columns(batch)
    ring = f"{RING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    w = ringbuffer.create(ring, SCHEMA, CAPACITY, wait=wait)
    here, there = CTX.Pipe()
    p = CTX.Process(target=reader, args=(ring, total, wait, there), daemon=True)
    try:
        w.symbol_codes(list(TICKERS))
        p.start()
        _expect(here, "attached")
        cols = {k: v.copy() for k, v in pool.items()}
        seq, stamp = cols["seq"], cols["timestamp"]
        base = np.arange(batch, dtype=np.uint64)
        sleep, clock, publish = time.sleep, now_ns, w.publish
        t0 = clock() + 10_000_000
        for i in range(n_batches):
            due = t0 + i * interval_ns
            left = due - clock()
            if left > 0:
                sleep(left / 1e9)
            np.add(base, np.uint64(i * batch), out=seq)
            stamp.fill(clock())
            publish(cols)
        elapsed = (clock() - t0) / 1e9
        _, n, seq_sum, in_order, pct, mx = _expect(here, "done", WAIT_S + seconds)
        want_sum = total * (total - 1) // 2
        if n != total or seq_sum != want_sum or not in_order:
            raise RuntimeError(
                f"latency reader got {n:,} of {total:,} records (seq sum {seq_sum} vs "
                f"{want_sum}, in order: {in_order})"
            )
        w.end()
        p.join(WAIT_S)
        p50, p99, p999 = pct  # one value per PERCENTILES
        return Latency(rate, total / elapsed, total, batch, wait_label(wait), p50, p99, p999, mx)
    finally:
        if p.is_alive():
            p.kill()
            p.join(5.0)
        w.close()


def measure(
    rates: Sequence[int], seconds: float, interval_us: int = 1000, wait: WaitStrategy = DEFAULT_WAIT
) -> list[Latency]:
    """Every rate in turn."""
    return [measure_rate(r, seconds, interval_us, wait) for r in rates]


def table(results: Sequence[Latency]) -> list[str]:
    """Printable lines."""
    lines = [
        f"{'rate/s':>10}{'achieved':>12}{'batch':>7}{'records':>11}{'wait':>10}"
        f"{'p50 us':>9}{'p99 us':>9}{'p99.9 us':>10}{'max us':>9}"
    ]
    for x in results:
        lines.append(
            f"{x.rate:>10,}{x.achieved:>12,.0f}{x.batch:>7,}{x.records:>11,}{x.wait:>10}"
            f"{x.p50_us:9.1f}{x.p99_us:9.1f}{x.p999_us:10.1f}{x.max_us:9.0f}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Measure each rate and print the table (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=size_list, default=size_list("10k,100k,1M"))
    ap.add_argument("--seconds", type=float, default=3.0, help="stream per rate (default 3)")
    ap.add_argument("--interval-us", type=parse_size, default=1000, help="between publishes")
    ap.add_argument("--wait", type=parse_wait, default=DEFAULT_WAIT)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = measure(args.rates, args.seconds, args.interval_us, args.wait)
    if args.json:
        print(json.dumps([x.as_dict() for x in results], indent=1))
    else:
        for line in table(results):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
