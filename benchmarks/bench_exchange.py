"""The venue's matching core, side by side: alone, with its journal, against the peers' books.

``python -m benchmarks.bench_exchange [--commands N] [--redis-commands M] [--rounds R]
[--batch K] [--json PATH]``

The stream is :func:`exchange.generate` (seed 1, about 1,000 resting orders a side; the mix is in
``exchange/_workload.py``). Contenders, measured in interleaved rounds on fresh books, medians:

- **core**: ``Matcher.apply`` for each command, events included (the venue's GC policy on);
- **core + journal**: ``Venue.submit`` for each command; every ``--batch`` commands one write
  and the fsync of that batch in a second thread while the next batch is matched (the pipelined
  group commit), in a temporary folder on this machine's disk;
- **sortedcontainers book** (``benchmarks.peer_books.SortedBook``): as the peers write it
  (Decimal prices and quantities, a dict per trade, Python's default GC), and the same
  structures on the core's integers and GC policy (the data structures alone). Both report
  trades only, no level or top events: they do less work than the core;
- **Redis book**: the seeds' design against a private ``redis-server`` on loopback
  (``benchmarks.peer_books.RedisBook``), on the first ``--redis-commands`` commands, with the core
  on the same commands for the ratio.

Each contender's trades (id, price, quantity, maker, taker) are asserted equal to the core's, the
books' final depth too, and the journal's venue must end with the core's state hash: a fast wrong
answer fails. The core's per-command latency (p50, p99, p99.9) comes from a separate pass that
times each ``apply``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.peer_books import as_decimals, trade_rows
from exchange import GcFreezer, Matcher, Trade, Venue, generate, parse_symbols, state_hash
from exchange._workload import CommandAt
from tools.redisserver import RedisServer, available

SYMBOLS = parse_symbols("BTC-USDT:0.01:0.0001")


def _trades(events: list[Any]) -> list[tuple[int, int, int, int, int]]:
    return [
        (e.trade_id, e.price, e.quantity, e.maker_order_id, e.taker_order_id)
        for e in events
        if type(e) is Trade
    ]


def run_core(stream: list[CommandAt], warm: int) -> tuple[float, Matcher]:
    matcher = Matcher(list(SYMBOLS))
    freezer = GcFreezer()
    apply, tick = matcher.apply, freezer.tick
    for command, at in stream[:warm]:
        apply(command, at)
    start = time.perf_counter()
    for command, at in stream[warm:]:
        apply(command, at)
        tick()
    return time.perf_counter() - start, matcher


def run_journal(
    stream: list[CommandAt], warm: int, batch: int
) -> tuple[float, tuple[int, str], int]:
    """The venue's matching path with its journal: every ``batch`` commands a write, and the
    fsync of that batch in a second thread while the next batch is matched (the pipelined group
    commit of the network layer: a batch is acknowledged once its fsync returned)."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-venue-", dir=".") as folder,
        ThreadPoolExecutor(1, thread_name_prefix="fsync") as syncer,
    ):
        venue = Venue.open(Path(folder), SYMBOLS, snapshot_every=10**12)
        submit = venue.submit
        for command, at in stream[:warm]:
            submit(command, at)
        venue.commit()
        commits = 0
        in_flight: Future[None] | None = None
        start = time.perf_counter()
        n = 0
        for command, at in stream[warm:]:
            submit(command, at)
            n += 1
            if n == batch:
                n = 0
                upto = venue.flush()
                if in_flight is not None:
                    in_flight.result()  # the previous batch is durable: acknowledge it
                in_flight = syncer.submit(venue.sync, upto)
                commits += 1
        if in_flight is not None:
            in_flight.result()
        venue.commit()
        elapsed = time.perf_counter() - start
        assert venue.durable_seq == venue.seq
        state = (venue.seq, venue.state_hash())
        venue.close(snapshot=False)
    return elapsed, state, commits + 1


def run_sorted(stream: list[Any], warm: int, as_written: bool) -> tuple[float, Any, list[Any]]:
    """The peers' book; ``as_written``: on Decimals, with Python's default GC (as published),
    else on the core's integers with the core's GC policy (the data structures alone)."""
    from benchmarks.peer_books import SortedBook

    book = SortedBook(as_written=as_written)
    tick = (lambda: None) if as_written else GcFreezer().tick
    trades: list[Any] = []
    for command, at in stream[:warm]:
        trades += book.apply(command, at)
    start = time.perf_counter()
    for command, at in stream[warm:]:
        trades += book.apply(command, at)
        tick()
    return time.perf_counter() - start, book, trades


def latencies(stream: list[CommandAt], warm: int) -> dict[str, float]:
    matcher = Matcher(list(SYMBOLS))
    freezer = GcFreezer()
    for command, at in stream[:warm]:
        matcher.apply(command, at)
    clock, apply, tick = time.perf_counter_ns, matcher.apply, freezer.tick
    samples = []
    for command, at in stream[warm:]:
        t0 = clock()
        apply(command, at)
        samples.append(clock() - t0)
        tick()
    samples.sort()

    def pct(p: float) -> float:
        return samples[min(len(samples) - 1, int(p * len(samples)))] / 1000

    return {"p50_us": pct(0.50), "p99_us": pct(0.99), "p99.9_us": pct(0.999)}


def core_trades(stream: list[CommandAt]) -> tuple[list[Any], Matcher]:
    matcher = Matcher(list(SYMBOLS))
    trades: list[Any] = []
    for command, at in stream:
        trades += _trades(matcher.apply(command, at))
    return trades, matcher


def bench_redis(stream: list[CommandAt], rounds: int) -> dict[str, Any]:
    import redis

    from benchmarks.peer_books import RedisBook

    expected, _ = core_trades(stream)
    core_s, redis_s = [], []
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        for _ in range(rounds):
            elapsed, _ = run_core(stream, 0)
            core_s.append(elapsed)
            book = RedisBook(client)
            trades: list[Any] = []
            start = time.perf_counter()
            for command, at in stream:
                trades += book.apply(command, at)
            redis_s.append(time.perf_counter() - start)
            assert trades == expected, "the Redis book traded differently"
        client.close()
    n = len(stream)
    return {
        "commands": n,
        "core_per_s": n / statistics.median(core_s),
        "redis_per_s": n / statistics.median(redis_s),
        "ratio": statistics.median(redis_s) / statistics.median(core_s),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=300_000)
    parser.add_argument("--redis-commands", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    stream = generate(args.commands, seed=1, depth=1000)
    warm = 2000
    expected, reference = core_trades(stream)
    times: dict[str, list[float]] = {"core": [], "journal": [], "peer": [], "peer_lean": []}
    spec = SYMBOLS["BTC-USDT"]
    decimal_stream = as_decimals(stream, spec.tick, spec.lot)
    commits = 0
    for _ in range(args.rounds):
        elapsed, matcher = run_core(stream, warm)
        times["core"].append(elapsed)
        elapsed, (seq, journal_hash), commits = run_journal(stream, warm, args.batch)
        times["journal"].append(elapsed)
        assert journal_hash == state_hash(matcher, seq), "the journaled venue ended differently"
        elapsed, _, trades = run_sorted(decimal_stream, warm, as_written=True)
        times["peer"].append(elapsed)
        assert trade_rows(trades, spec.tick, spec.lot) == expected, "the peer book differs"
        elapsed, book, trades = run_sorted(stream, warm, as_written=False)
        times["peer_lean"].append(elapsed)
        assert trades == expected, "the sortedcontainers book traded differently"
        final = reference.books["BTC-USDT"]
        core_depth = {side.name: side.depth(10**9) for side in (final.bids, final.asks)}
        assert book.depth() == core_depth, "the sortedcontainers book ended differently"
    measured = len(stream) - warm
    rate = {k: measured / statistics.median(v) for k, v in times.items()}
    out: dict[str, Any] = {
        "command": "python -m benchmarks.bench_exchange " + " ".join(argv or sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "commands": measured,
        "trades": len(expected),
        "rates": rate,
        "rounds": {k: [measured / t for t in v] for k, v in times.items()},
        "latency": latencies(stream, warm),
        "journal_commits": commits,
        "core_vs_peer": rate["core"] / rate["peer"],
        "core_vs_peer_lean": rate["core"] / rate["peer_lean"],
        "journal_vs_core": rate["journal"] / rate["core"],
    }
    if available():
        out["redis"] = bench_redis(stream[: args.redis_commands], max(1, args.rounds // 2))
    else:
        out["redis"] = "skipped: redis-server not installed (apt-get install redis-server)"
    lat = out["latency"]
    print(f"{measured:,} commands after {warm:,} warm-up, {len(expected):,} trades; "
          f"{args.rounds} interleaved rounds, medians")  # fmt: skip
    print("| contender | commands/s | vs core |\n|---|---:|---:|")
    print(f"| core (events included) | {rate['core']:,.0f} | 1.00 |")
    print(f"| core + journal, fsync every {args.batch} | {rate['journal']:,.0f} | "
          f"{rate['journal'] / rate['core']:.2f} |")  # fmt: skip
    print(f"| sortedcontainers book as the peers write it (Decimal, default GC) | "
          f"{rate['peer']:,.0f} | {rate['peer'] / rate['core']:.2f} |")  # fmt: skip
    print(f"| the same structures on the core's integers and GC policy | "
          f"{rate['peer_lean']:,.0f} | {rate['peer_lean'] / rate['core']:.2f} |")  # fmt: skip
    if isinstance(out["redis"], dict):
        r = out["redis"]
        print(f"| Redis sorted sets + hashes, {r['commands']:,} commands | {r['redis_per_s']:,.0f}"
              f" | 1/{r['ratio']:.0f} (core on the same: {r['core_per_s']:,.0f}/s) |")  # fmt: skip
    else:
        print(out["redis"])
    print(f"core per command: p50 {lat['p50_us']:.2f} µs, p99 {lat['p99_us']:.2f} µs, "
          f"p99.9 {lat['p99.9_us']:.2f} µs")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
