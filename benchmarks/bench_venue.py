"""The venue on the network, side by side in one run: Wood TCP, REST, ``/ws/quotes`` fan-out, and
the seeds' design (a request per order to an HTTP service whose book lives in Redis).

``python -m benchmarks.bench_venue [--seconds S] [--json PATH]``

Every figure comes from ``python -m exchange.load`` (the same traders, seed 1, the mix of
``exchange/load.py``) against a venue started for that row alone (``python -m exchange``, ports
0, a fresh ``--data-dir`` in a temporary folder on this machine's disk: journal fsync on, every
acknowledgement after its group commit is durable). The load generator, the venue (and for the
fan-out the 100 websocket subscribers, in this process) share the same machine: on 2 cores the
load generator takes CPU from the venue, so these are lower bounds of what the venue does alone.

- **Wood, max**: 8 connections, each keeping 128 (then 16) commands in flight (closed loop;
  latency from the write). **Wood, fixed rate**: 8 connections, 10,000 commands/s open loop
  (latency from each command's due time, so stalls are not hidden: no coordinated omission),
  for ``--seconds`` and then for 12 s: past 100,000 commands, where the venue writes its first
  snapshot (on its event loop: every acknowledgement waits for it).
- **REST, max**: 16 keep-alive connections, one request in flight each. **REST, fixed**: 500/s
  and 2,000/s open loop.
- **/ws/quotes fan-out**: 100 subscribers (the ``websockets`` client) while 8 Wood traders send
  5,000 commands/s, then as fast as they can; quotes/s each subscriber received (the slowest one
  counts: its quotes over its first-to-last quote), and whether any was disconnected.
- **Seeds' design**: ``benchmarks.redis_venue`` (FastAPI/uvicorn, ``RedisBook``: one Redis round
  trip per step) on a private ``redis-server``, with its append-only file fsynced on every write
  (``appendfsync always``: durable as the venue is) and with no persistence at all (its best
  case); the same REST load; the ratio of the venue's REST to it.

A "command" is a new order or a cancel; each is acknowledged (Wood: its ``NEW``/``CANCELED``
report or an error; REST: its response). The venue's log is scanned for snapshots written during
a row: a snapshot is written on the event loop and stalls every acknowledgement while it lasts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common.cli import loop_factory
from tests.support.programs import ROOT, Proc
from tools.redisserver import RedisServer, available

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LISTENING = r"listening http=(\d+) private=(\d+) public=(\d+)"


@contextmanager
def venue(folder: Path) -> Iterator[tuple[Proc, int, int]]:
    proc = Proc(
        "exchange",
        ["--http-port", "0", "--private-port", "0", "--public-port", "0",
         "--data-dir", str(folder)],
    )  # fmt: skip
    try:
        match = re.search(LISTENING, proc.wait_log(LISTENING))
        assert match
        yield proc, int(match.group(1)), int(match.group(2))
    finally:
        proc.kill()


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all CPUs, /proc/stat; idle and iowait out)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS


def process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes ``pids`` used so far."""
    total = 0.0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def load(*args: str, seconds: float, servers: list[int]) -> dict[str, Any]:
    """Run ``exchange.load`` to the end; its result, plus where the machine's CPU went: the
    server processes ``servers`` (% of one CPU), the load generator (% of one CPU), and everything
    else on the machine (% of the whole machine: other work disturbing the row)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "load.json"
        busy0, servers0 = machine_busy(), process_cpu(servers)
        self0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [sys.executable, "-m", "exchange.load", *args, "--duration", str(seconds),
             "--seed", "1", "--json", str(out)],
            cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120,
        )  # fmt: skip
        wall = time.perf_counter() - wall0
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        busy = machine_busy() - busy0
        server_s = process_cpu(servers) - servers0
        if done.returncode != 0:
            raise RuntimeError(f"exchange.load {args} failed:\n{done.stderr}{done.stdout}")
        result: dict[str, Any] = json.loads(out.read_text())
    load_s = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    self_s = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    others = max(0.0, busy - server_s - load_s - self_s)
    result["cpu"] = {
        "server_pct": round(100 * server_s / wall),
        "load_pct": round(100 * load_s / wall),
        "others_pct_of_machine": round(100 * others / (wall * (os.cpu_count() or 1))),
    }
    return result


def snapshots(proc: Proc) -> int:
    return proc.stderr().count("snapshot written")


def row(name: str, r: dict[str, Any], note: str = "") -> dict[str, Any]:
    lat = r["latency_ms"]
    return {
        "name": name,
        "per_s": r["acknowledged_per_s"],
        "orders_per_s": r["orders_per_s"],
        "p50_ms": lat.get("p50"),
        "p99_ms": lat.get("p99"),
        "p999_ms": lat.get("p99.9"),
        "max_ms": lat.get("max"),
        "commands": r["acknowledged"],
        "cpu": r["cpu"],
        "note": note,
    }


def bench_wood(tmp: Path, seconds: float) -> list[dict[str, Any]]:
    """The Wood rows; the last runs 10,000/s long enough to cross the venue's first snapshot
    (every 100,000 commands by default), to show what a snapshot costs the acknowledgements."""
    rows = []
    cases = (("max", 128, seconds), ("max", 16, seconds), ("10000", 1, seconds),
             ("10000", 1, max(seconds, 12.0)))  # fmt: skip
    for n, (rate, window, length) in enumerate(cases):
        with venue(tmp / f"wood-{n}") as (proc, _, private):
            r = load("--private", f"127.0.0.1:{private}", "--connections", "8", "--rate", rate,
                     "--window", str(window), seconds=length, servers=[proc.pid])  # fmt: skip
            time.sleep(0.2)
            snaps = snapshots(proc)
        what = f"max ({window} in flight each)" if rate == "max" else f"{int(rate):,}/s open loop"
        if length != seconds:
            what += f", {length:g} s"
        note = f"{snaps} snapshot(s) written during the row" if snaps else ""
        rows.append(row(f"Wood TCP, 8 connections, {what}", r, note))
    return rows


def bench_rest(
    url: str, label: str, rates: tuple[int, ...], seconds: float, servers: list[int]
) -> list[dict]:
    rows = []
    r = load("--protocol", "rest", "--url", url, "--connections", "16", "--rate", "max",
             seconds=seconds, servers=servers)  # fmt: skip
    rows.append(row(f"{label}, 16 connections, max", r))
    for rate in rates:
        r = load("--protocol", "rest", "--url", url, "--connections", "16", "--rate", str(rate),
                 seconds=seconds, servers=servers)  # fmt: skip
        behind = r["behind_schedule"]
        note = f"saturated: {behind:,} due commands never sent" if behind else ""
        rows.append(row(f"{label}, 16 connections, {rate:,}/s open loop", r, note))
    return rows


async def fan_out(
    http: int, private: int, subscribers: int, rate: str, seconds: float, venue_pid: int
) -> dict:
    from websockets.asyncio.client import connect

    counts = [0] * subscribers
    closed: list[str] = []
    started = asyncio.Event()
    first: list[float | None] = [None] * subscribers
    last = [0.0] * subscribers

    async def subscriber(i: int) -> None:
        try:
            async with connect(f"ws://127.0.0.1:{http}/ws/quotes", max_size=None) as ws:
                async for message in ws:
                    if started.is_set():
                        now = time.perf_counter()
                        if first[i] is None:
                            first[i] = now
                        last[i] = now
                        counts[i] += (
                            message.count('"ticker"')
                            if isinstance(message, str)
                            else message.count(b'"ticker"')
                        )
        except Exception as e:
            closed.append(f"{type(e).__name__}: {e}")
        else:
            if started.is_set():
                closed.append("closed by the venue")

    tasks = [asyncio.create_task(subscriber(i)) for i in range(subscribers)]
    await asyncio.sleep(1.0)  # every subscriber connected and past its first quotes
    started.set()
    t0 = time.perf_counter()
    venue0, self0 = process_cpu([venue_pid]), resource.getrusage(resource.RUSAGE_SELF)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exchange.load", "--private", f"127.0.0.1:{private}",
        "--connections", "8", "--rate", rate, "--duration", str(seconds), "--seed", "1",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await child.communicate()
    wall = time.perf_counter() - t0
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    venue_cpu = process_cpu([venue_pid]) - venue0
    own_cpu = self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime
    if child.returncode != 0:
        raise RuntimeError(f"exchange.load failed:\n{err.decode()}{out.decode()}")
    await asyncio.sleep(1.0)  # what is in flight arrives
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    spans = [last[i] - (first[i] or t0) for i in range(subscribers)]
    each = min(c / s if s > 0 else 0.0 for c, s in zip(counts, spans, strict=True))
    return {
        "rate": rate,
        "subscribers": subscribers,
        "disconnected": len(closed),
        "reasons": sorted(set(closed))[:3],
        "min_quotes": min(counts),
        "max_quotes": max(counts),
        "quotes_per_s_each": each,
        "quotes_per_s_total": each * subscribers,
        "load": out.decode().splitlines()[2] if out else "",
        "venue_cpu_pct": round(100 * venue_cpu / wall),
        "subscribers_cpu_pct": round(100 * own_cpu / wall),
    }


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="each row's load (5)")
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-venue-", dir=ROOT) as folder:
        tmp = Path(folder)
        rows += bench_wood(tmp, args.seconds)
        with venue(tmp / "rest") as (proc, http, _):
            rows += bench_rest(f"http://127.0.0.1:{http}", "venue REST", (500, 2000),
                               args.seconds, [proc.pid])  # fmt: skip
        fans = []
        for rate in ("5000", "max"):
            with (
                venue(tmp / f"fanout-{rate}") as (proc, http, private),
                asyncio.Runner(loop_factory=loop_factory()) as runner,
            ):
                fans.append(
                    runner.run(
                        fan_out(http, private, args.subscribers, rate, args.seconds, proc.pid)
                    )
                )
        redis_rows: list[dict[str, Any]] = []
        if available():
            for durable in (True, False):
                label = "seeds' Redis service, " + ("AOF fsync always" if durable else "no fsync")
                with RedisServer(tmp / f"redis-{durable}", appendonly=durable) as server:
                    service = Proc("benchmarks.redis_venue", ["--redis-url", server.url])
                    try:
                        match = re.search(r"http=(\d+)", service.wait_log(r"listening http="))
                        assert match
                        assert server.proc is not None
                        redis_rows += bench_rest(
                            f"http://127.0.0.1:{match.group(1)}",
                            label,
                            (500,),
                            args.seconds,
                            [service.pid, server.proc.pid],
                        )
                    finally:
                        service.kill()
        rows += redis_rows

    by_name = {r["name"]: r for r in rows}
    ours = by_name["venue REST, 16 connections, max"]["per_s"]
    print(f"# The venue on the network: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"machine: {machine()}; the load generator, the venue and (fan-out) the 100 websocket")
    print("subscribers run on this same machine and share its CPUs: these are lower bounds.")
    print(f"each row {args.seconds:g} s of load, seed 1; journal fsync on (group commit).")
    print()
    print(
        "| path | acked commands/s | new orders/s | p50 ms | p99 ms | p99.9 ms | max ms "
        "| CPU server / load gen / others | note |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        cpu = r["cpu"]
        print(
            f"| {r['name']} | {r['per_s']:,.0f} | {r['orders_per_s']:,.0f} | {ms(r['p50_ms'])} "
            f"| {ms(r['p99_ms'])} | {ms(r['p999_ms'])} | {ms(r['max_ms'])} "
            f"| {cpu['server_pct']}% / {cpu['load_pct']}% / {cpu['others_pct_of_machine']}% "
            f"| {r['note']} |"
        )
    print()
    print("CPU: the server (venue; Redis service + redis-server) and the load generator in % of")
    print("one CPU over the row; others: the rest of the machine's busy time (other processes,")
    print("the kernel's own work) in % of all its CPUs: a row with a high figure was disturbed.")
    print()
    for fan in fans:
        print(
            f"/ws/quotes fan-out: {fan['subscribers']} subscribers, 8 Wood traders at "
            f"{fan['rate']} commands/s: {fan['quotes_per_s_each']:,.0f} quotes/s delivered to "
            f"every subscriber ({fan['quotes_per_s_total']:,.0f} quotes/s in all; per subscriber "
            f"{fan['min_quotes']:,}..{fan['max_quotes']:,} quotes; disconnected: "
            f"{fan['disconnected']}{' ' + str(fan['reasons']) if fan['reasons'] else ''})"
        )
        print(f"  the traders meanwhile: {fan['load']}")
        print(
            f"  CPU while the traders ran (their start-up included): venue "
            f"{fan['venue_cpu_pct']}%, the {fan['subscribers']} subscribers (this process) "
            f"{fan['subscribers_cpu_pct']}% of one CPU"
        )
    ratios = {}
    for r in redis_rows:
        if r["name"].endswith(", max") and r["per_s"]:
            ratios[r["name"]] = ours / r["per_s"]
            print(f"venue REST / {r['name']}: {ours / r['per_s']:.1f}x the orders/s")
    if not redis_rows:
        print("seeds' design: skipped (no redis-server)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "fan_out": fans, "ratios": ratios,
                                         "machine": machine()}, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
