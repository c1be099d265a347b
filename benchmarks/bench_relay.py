"""The relay end to end, side by side with the per-message Redis Streams design.

``python -m benchmarks.bench_relay [--rows N] [--naive-rows M] [--rounds R]``

Both on the same generated historical CSV (``data.generate``, no bad rows) and one private
``redis-server`` (append-only file off: both designs pay the same nothing for durability):

- **relay**: ``engine --speed max --exit-at-end`` (its parse cache warm, so the figure is the
  transport, not the CSV parse) -> ring -> ``python -m relay`` -> Redis stream (an Arrow IPC entry
  a batch) -> ``python -m processor --redis`` writing both logs; timed from the engine's start to
  the remote processor's exit; the remote logs are asserted byte-identical to a local
  processor's on the same run.
- **per message** (the public peer solution's design): a producer that XADDs one entry per quote
  (the fields as strings) and a consumer that reads them with XREADGROUP COUNT 10, writes the
  contract's lines (``benchmarks.naive.format_record``) and XACKs each message; timed from the
  first XADD to the last XACK, on the first ``--naive-rows`` records in arrival order (it is
  slow), and its line count is asserted.

The records/s of each and their ratio are printed. Two cores run everything: the engine, the
relay, Redis and the processor compete for them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis

from benchmarks.naive import Record, format_record, read_sorted
from tools.pipeline import ROOT, unique_ring
from tools.redisserver import INSTALL_HINT, RedisServer, available


def _start(module: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def _wait(proc: subprocess.Popen[bytes], what: str) -> None:
    _, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} exited {proc.returncode}: {err.decode()[-2000:]}")


def relay_run(csv: Path, server: RedisServer, work: Path, stream: str) -> float:
    ring = unique_ring("bench-relay")
    out_r, out_l = work / f"{stream}-remote", work / f"{stream}-local"
    for d in (out_r, out_l):
        d.mkdir()
    local = _start(
        "processor",
        "--ring",
        ring,
        "--name",
        "local",
        "--mid-log",
        str(out_l / "mid.log"),
        "--error-log",
        str(out_l / "err.log"),
        "--exit-at-end",
    )
    relay = _start(
        "relay", "--ring", ring, "--redis", server.url, "--stream", stream, "--exit-at-end"
    )
    remote = _start("processor", "--redis", server.url, "--stream", stream, "--name", "remote",
                    "--mid-log", str(out_r / "mid.log"), "--error-log", str(out_r / "err.log"),
                    "--exit-at-end")  # fmt: skip
    start = time.perf_counter()
    engine = _start("engine", "--mode", "historical", "--historical", str(csv), "--ring", ring,
                    "--state-dir", str(work / "state"), "--speed", "max", "--exit-at-end",
                    "--wait-for-consumers", "2")  # fmt: skip
    _wait(remote, "the remote processor")
    elapsed = time.perf_counter() - start
    for proc, what in ((engine, "engine"), (relay, "relay"), (local, "local processor")):
        _wait(proc, what)
    for name in ("mid.log", "err.log"):
        if (out_r / name).read_bytes() != (out_l / name).read_bytes():
            raise AssertionError(f"the remote {name} differs from the local one")
    return elapsed


def per_message_run(rows: list[Record], url: str, stream: str, out: Path) -> float:
    """One XADD per quote; XREADGROUP COUNT 10; one XACK per message; the lines written."""
    client: Any = redis.Redis.from_url(url)
    client.xgroup_create(stream, "g", id="0", mkstream=True)
    lines: list[str] = []

    def consume() -> None:
        got = 0
        while got < len(rows):
            reply = client.xreadgroup("g", "c", {stream: ">"}, count=10, block=1000)
            for entry_id, f in reply[0][1] if reply else []:
                record: Record = (
                    _parse_ts(f[b"ts"]), f[b"ticker"].decode(), float(f[b"bid"]),
                    float(f[b"ask"]), float(f[b"latency"]), 0.0, 0.0,
                )  # fmt: skip
                lines.append(format_record(record, 20.0, "20")[1])
                client.xack(stream, "g", entry_id)
                got += 1

    start = time.perf_counter()
    consumer = threading.Thread(target=consume)
    consumer.start()
    producer: Any = redis.Redis.from_url(url)
    for ts, ticker, bid, ask, latency, _, _ in rows:
        producer.xadd(stream, {"ts": ts.isoformat(sep=" "), "ticker": ticker, "bid": repr(bid),
                               "ask": repr(ask), "latency": repr(latency)})  # fmt: skip
    consumer.join()
    elapsed = time.perf_counter() - start
    assert len(lines) == len(rows), "the per-message consumer lost messages"
    (out / f"{stream}.lines").write_text("".join(lines))
    return elapsed


def _parse_ts(raw: bytes) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(raw.decode())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--naive-rows", type=int, default=50_000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    if not available():
        print(INSTALL_HINT)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-m", "data.generate", "--rows", str(args.rows),
                        "--kind", "historical", "--bad-rows", "0", "--out-dir", str(work)],
                       cwd=ROOT, check=True, capture_output=True)  # fmt: skip
        csv = next(work.glob("historical*.csv"))
        rows = read_sorted(str(csv))[: args.naive_rows]
        relay_s, naive_s = [], []
        with RedisServer(work / "redis") as server:
            client: Any = redis.Redis.from_url(server.url)
            relay_run(csv, server, work, "warm")  # fills the engine's parse cache
            for k in range(args.rounds):
                relay_s.append(relay_run(csv, server, work, f"r{k}"))
                naive_s.append(per_message_run(rows, server.url, f"n{k}", work))
                client.flushdb()
        relay_rate = args.rows / statistics.median(relay_s)
        naive_rate = args.naive_rows / statistics.median(naive_s)
        print(f"rows {args.rows:,} (relay), {args.naive_rows:,} (per message); "
              f"{args.rounds} interleaved rounds, medians; 2 cores for everything")  # fmt: skip
        print(
            f"relay end to end (engine start -> remote processor exit): "
            f"{relay_rate:,.0f} records/s  rounds {[round(args.rows / s) for s in relay_s]}"
        )
        print(
            f"per-message design (XADD each, XREADGROUP 10, XACK each): {naive_rate:,.0f} "
            f"records/s  rounds {[round(args.naive_rows / s) for s in naive_s]}"
        )
        print(f"ratio: {relay_rate / naive_rate:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
