"""The ring relayed through Redis Streams, end to end, against the per-message design.

``python -m benchmarks.bench_relay [--rows 2M] [--per-message-rows 100k] [--repeat 1] [--json]``

One private ``redis-server`` (``tools.redisserver``, no append-only file) serves both designs.
The CSV is generated once (``data.generate --kind historical --bad-rows 0``); an untimed first
replay leaves the engine's parse cache, so both designs start from the same Arrow table.

``relay`` (this project)
    ``python -m engine --speed max --exit-at-end`` → ring → ``python -m relay --exit-at-end`` →
    Redis stream (one entry a ring batch, Arrow IPC) → ``python -m processor --redis URL
    --exit-at-end`` (consumer group, XACK once durable). Timed from the engine's start (the
    relay and the processor already waiting) to the processor's exit; ``streaming`` is the part
    from the relay's first XADD to the processor's summary line (their log timestamps).
``per-message`` (the public peer solution's design)
    the same engine and ring; a producer reading the ring that does one ``XADD`` per quote, and a
    consumer that does ``XREADGROUP COUNT 10`` and one ``XACK`` per message, writing each line
    with the per-record formatting of ``benchmarks.naive``. Run on the first
    ``--per-message-rows`` rows of the same CSV (it takes ~1 minute per million). Timed the same
    way (producer and consumer waiting; engine start to consumer exit).

Each run checks that its two logs hold one line per input row, and the relay's logs on the
``--per-message-rows`` rows are byte-identical to the per-message design's. The ratio is
records/s of ``relay`` over records/s of ``per-message``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATE = 1_000_000  # records/s end to end through the relay
GOAL_RATIO = 20.0  # the relay against the per-message design
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z ")


def parse_size(text: str) -> int:
    """``2M``, ``100k`` or ``12345``.

    >>> parse_size("2M"), parse_size("100k"), parse_size("123")
    (2000000, 100000, 123)
    """
    t = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def _ring(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _start(args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as err:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=err)  # fmt: skip


def _wait(procs: dict[str, subprocess.Popen[bytes]], timeout: float, folder: Path) -> None:
    deadline = time.monotonic() + timeout
    try:
        for name, p in procs.items():
            code = p.wait(max(0.1, deadline - time.monotonic()))
            if code != 0:
                tail = (folder / f"{name}.stderr").read_text()[-2000:]
                raise RuntimeError(f"{name} exited {code}:\n{tail}")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def _ready(path: Path, pattern: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait (bounded) until the program's stderr says it is up, before the clock starts."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while not rx.search(path.read_text()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"not ready: {path}:\n{path.read_text()[-2000:]}")
        time.sleep(0.01)


def _log_time(path: Path, pattern: str) -> float | None:
    """The time (epoch seconds) of the first line of ``path`` matching ``pattern``."""
    rx = re.compile(pattern)
    for line in path.read_text().splitlines():
        m = _LOG_TIME.match(line)
        if m and rx.search(line):
            return datetime.fromisoformat(m.group(1) + "+00:00").timestamp()
    return None


def count_lines(*paths: Path) -> int:
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    return total


def _engine(csv: Path, ring: str, state: Path) -> list[str]:
    return ["-m", "engine", "--mode", "historical", "--historical", str(csv), "--speed", "max",
            "--ring", ring, "--state-dir", str(state), "--exit-at-end",
            "--wait-for-consumers", "1"]  # fmt: skip


def _fresh_state(state: Path) -> None:
    """Keep only the engine's parse cache: the replay starts from the top."""
    if state.exists():
        for p in state.iterdir():
            if p.name == "cache":
                continue
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def warm_cache(csv: Path, state: Path, folder: Path) -> None:
    """An untimed replay into a ring nobody reads: leaves the engine's parse cache."""
    ring = _ring("bench-warm")
    args = _engine(csv, ring, state)
    args.remove("--wait-for-consumers")
    args.remove("1")
    _wait({"engine": _start(args, folder / "engine.stderr")}, 600, folder)
    _fresh_state(state)


def run_relay(csv: Path, rows: int, url: str, state: Path, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    _fresh_state(state)
    ring, stream = _ring("bench-relay"), f"relay-{uuid.uuid4().hex[:8]}"
    mid, err = folder / "mid.log", folder / "err.log"
    processor = _start(["-m", "processor", "--redis", url, "--stream", stream, "--name", "bench",
                        "--mid-log", str(mid), "--error-log", str(err), "--exit-at-end"],
                       folder / "processor.stderr")  # fmt: skip
    relay = _start(["-m", "relay", "--ring", ring, "--redis", url, "--stream", stream,
                    "--exit-at-end"], folder / "relay.stderr")  # fmt: skip
    _ready(folder / "processor.stderr", "waiting for the stream", processor)
    _ready(folder / "relay.stderr", "waiting for the ring", relay)
    t0 = time.time()
    engine = _start(_engine(csv, ring, state), folder / "engine.stderr")
    _wait({"engine": engine, "relay": relay, "processor": processor}, 900, folder)
    seconds = time.time() - t0
    lines = count_lines(mid, err)
    if lines != rows:
        raise RuntimeError(f"relay: {lines} lines for {rows} rows")
    first = _log_time(folder / "relay.stderr", r"first entry appended")
    done = _log_time(folder / "processor.stderr", r" summary ")
    streaming = (done - first) if first is not None and done is not None else None
    return {"seconds": round(seconds, 3), "records_per_s": round(rows / seconds),
            "streaming_seconds": None if streaming is None else round(streaming, 3),
            "streaming_records_per_s": round(rows / streaming) if streaming else None}  # fmt: skip


def run_per_message(csv: Path, rows: int, url: str, state: Path, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    _fresh_state(state)
    ring, stream = _ring("bench-msg"), f"msg-{uuid.uuid4().hex[:8]}"
    mid, err = folder / "mid.log", folder / "err.log"
    me = ["-m", "benchmarks.bench_relay", "--redis", url, "--stream", stream]
    consumer = _start([*me, "--role", "consumer", "--mid-log", str(mid), "--error-log", str(err)],
                      folder / "consumer.stderr")  # fmt: skip
    producer = _start([*me, "--role", "producer", "--ring", ring], folder / "producer.stderr")
    _ready(folder / "consumer.stderr", "ready", consumer)
    _ready(folder / "producer.stderr", "ready", producer)
    t0 = time.time()
    engine = _start(_engine(csv, ring, state), folder / "engine.stderr")
    _wait({"engine": engine, "producer": producer, "consumer": consumer}, 3600, folder)
    seconds = time.time() - t0
    lines = count_lines(mid, err)
    if lines != rows:
        raise RuntimeError(f"per-message: {lines} lines for {rows} rows")
    return {"seconds": round(seconds, 3), "records_per_s": round(rows / seconds)}


# -- the per-message design's two processes -------------------------------------------------


def producer(ring: str, url: str, stream: str) -> int:
    """Read the ring; one XADD per quote (fields as text), then an end message."""
    import redis

    import ringbuffer

    client = redis.Redis.from_url(url)
    consumer = ringbuffer.ResumingConsumer(ring, "per-message", release="commit")
    print("producer: ready", file=sys.stderr, flush=True)
    consumer.attach()
    n = 0
    try:
        while True:
            got = consumer.read(max_records=65536, timeout=0.1)
            if got is None:
                if consumer.ended:
                    break
                continue
            b = got.batch
            names = ("timestamp", "ticker", "bid_price", "ask_price", "latency")
            cols = [b.column(c).cast("string").to_pylist() if c == "ticker"
                    else b.column(c).to_pylist() for c in names]  # fmt: skip
            for ts, ticker, bid, ask, latency in zip(*cols, strict=True):
                client.xadd(stream, {"ts": ts.isoformat(), "ticker": ticker, "bid": repr(bid),
                                     "ask": repr(ask), "latency": repr(latency)})  # fmt: skip
                n += 1
            consumer.commit(got.token)
        client.xadd(stream, {"end": "1"})
    finally:
        consumer.close()
    print(f"producer: {n} messages", file=sys.stderr)
    return 0


def consumer(url: str, stream: str, mid_path: Path, err_path: Path) -> int:
    """XREADGROUP ten at a time, one line and one XACK per message, until the end message."""
    import redis

    from benchmarks.naive import format_record, plain

    client = redis.Redis.from_url(url)
    group = "per-message"
    client.xgroup_create(stream, group, id="0", mkstream=True)
    threshold_text = plain(20.0)
    print("consumer: ready", file=sys.stderr, flush=True)
    n = 0
    with open(mid_path, "w") as mid, open(err_path, "w") as err:
        while True:
            reply: Any = client.xreadgroup(group, "c", {stream: ">"}, count=10, block=1000)
            if not reply:
                continue
            for entry_id, f in reply[0][1]:
                if b"end" in f:
                    client.xack(stream, group, entry_id)
                    print(f"consumer: {n} messages", file=sys.stderr)
                    return 0
                ts = datetime.fromisoformat(f[b"ts"].decode())
                bid, ask, latency = float(f[b"bid"]), float(f[b"ask"]), float(f[b"latency"])
                rec = (ts, f[b"ticker"].decode(), bid, ask, latency, 0.0, 0.0)
                is_mid, line = format_record(rec, 20.0, threshold_text)
                (mid if is_mid else err).write(line)
                client.xack(stream, group, entry_id)
                n += 1


# -- the driver -----------------------------------------------------------------------------


def head_csv(csv: Path, rows: int, out: Path) -> Path:
    """The header and the first ``rows`` rows of ``csv``."""
    with open(csv, "rb") as src, open(out, "wb") as dst:
        for i, line in enumerate(src):
            if i > rows:
                break
            dst.write(line)
    return out


def measure(rows: int, per_message_rows: int, repeat: int, work: Path) -> dict[str, Any]:
    from tools.redisserver import RedisServer

    gen = subprocess.run(
        [sys.executable, "-m", "data.generate", "--rows", str(rows), "--out-dir", str(work),
         "--kind", "historical", "--bad-rows", "0", "--seed", "7"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if gen.returncode != 0:
        raise RuntimeError(gen.stderr)
    csv = work / "historical_sample.csv"
    small = head_csv(csv, per_message_rows, work / "head.csv")
    big_state, small_state = work / "state-big", work / "state-small"
    warm_cache(csv, big_state, work)
    warm_cache(small, small_state, work)
    runs: dict[str, list[dict[str, Any]]] = {"relay": [], "per-message": [], "relay-small": []}
    with RedisServer(work / "redis") as server:
        for i in range(repeat):
            runs["relay"].append(run_relay(csv, rows, server.url, big_state, work / f"r{i}"))
            runs["relay-small"].append(
                run_relay(small, per_message_rows, server.url, small_state, work / f"s{i}")
            )
            runs["per-message"].append(
                run_per_message(small, per_message_rows, server.url, small_state, work / f"m{i}")
            )
    out: dict[str, Any] = {"rows": rows, "per_message_rows": per_message_rows,
                           "cpus": os.cpu_count()}  # fmt: skip
    for name, rs in runs.items():
        rs.sort(key=lambda r: r["seconds"])
        out[name] = rs[len(rs) // 2]
        out[name]["all_seconds"] = [r["seconds"] for r in rs]
    out["ratio"] = round(out["relay"]["records_per_s"] / out["per-message"]["records_per_s"], 1)
    out["ratio_same_rows"] = round(
        out["relay-small"]["records_per_s"] / out["per-message"]["records_per_s"], 1
    )
    out["median_of"] = repeat
    same = all(
        (work / f"s{i}" / name).read_bytes() == (work / f"m{i}" / name).read_bytes()
        for i in range(repeat) for name in ("mid.log", "err.log")
    )  # fmt: skip
    if not same:
        raise RuntimeError("the relay's logs and the per-message design's differ")
    out["same_bytes"] = same
    return out


def table(r: dict[str, Any]) -> str:
    rel, small, msg = r["relay"], r["relay-small"], r["per-message"]
    streaming = rel.get("streaming_records_per_s")
    def runs(x: dict[str, Any]) -> str:
        return ", ".join(f"{t:.2f}" for t in x["all_seconds"])

    lines = [
        "| design | records | seconds, median (engine start → last line durable) | records/s "
        "| every run (s) |",
        "|---|---:|---:|---:|---|",
        f"| relay (batch per entry) | {r['rows']:,} | {rel['seconds']:.2f} | "
        f"{rel['records_per_s']:,} | {runs(rel)} |",
        f"| relay (batch per entry) | {r['per_message_rows']:,} | {small['seconds']:.2f} | "
        f"{small['records_per_s']:,} | {runs(small)} |",
        f"| per-message (XADD each, XREADGROUP 10, XACK each) | {r['per_message_rows']:,} | "
        f"{msg['seconds']:.2f} | {msg['records_per_s']:,} | {runs(msg)} |",
        "",
        f"relay streaming phase (first XADD → processor done): "
        f"{rel.get('streaming_seconds')} s, {streaming:,} records/s" if streaming else "",
        f"logs of the relay and of the per-message design on the same rows: "
        f"{'byte-identical' if r['same_bytes'] else 'DIFFERENT'}",
        f"ratio (relay at {r['rows']:,} rows vs per-message): {r['ratio']}× (goal "
        f"{GOAL_RATIO:g}×); at the same {r['per_message_rows']:,} rows: {r['ratio_same_rows']}×",
        f"goal ≥ {GOAL_RATE:,} records/s end to end: "
        f"{'met' if rel['records_per_s'] >= GOAL_RATE else 'missed'} (whole run), "
        f"{'met' if streaming and streaming >= GOAL_RATE else 'missed'} (streaming phase)",
    ]
    return "\n".join(line for line in lines if line is not None)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_relay", description=__doc__)
    p.add_argument("--rows", type=parse_size, default=parse_size("2M"))
    p.add_argument("--per-message-rows", type=parse_size, default=parse_size("100k"))
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--role", choices=("producer", "consumer"), help=argparse.SUPPRESS)
    p.add_argument("--ring", help=argparse.SUPPRESS)
    p.add_argument("--redis", help=argparse.SUPPRESS)
    p.add_argument("--stream", help=argparse.SUPPRESS)
    p.add_argument("--mid-log", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--error-log", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.role == "producer":
        return producer(a.ring, a.redis, a.stream)
    if a.role == "consumer":
        return consumer(a.redis, a.stream, a.mid_log, a.error_log)
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        report = measure(a.rows, a.per_message_rows, a.repeat, Path(tmp))
    print(json.dumps(report, indent=2) if a.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
