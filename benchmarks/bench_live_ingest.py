"""Live ingest throughput: quotes per second from a websocket server over loopback into
``LiveSource.poll``.

``python -m benchmarks.bench_live_ingest --quotes 200000`` runs four cases, each server in its
own process so that it does not share the GIL with the source:

* a bare server (this module with ``--serve``, on ``engine.wsserver.WsServer``) sending
  pre-encoded frames of 1 quote object and of 100-object arrays (quotes from
  ``benchmarks.bench_live_parse.quotes``) as fast as the client takes them;
* ``python -m engine.feed --speed max`` on a generated live CSV, with ``--frame object`` and
  ``--frame array`` (arrays hold the quotes of one timestamp).

The rate is quotes over the time from the first frame's arrival to the return of the ``poll``
that delivered the last record, so connecting and process start-up are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common.cli import loop_factory
from common.log import set_level
from engine.live import LiveSource
from engine.wsserver import WsServer

ROOT = Path(__file__).resolve().parents[1]


# --- the bare server (run as a subprocess) ----------------------------------------------------


async def _serve(frames: list[bytes]) -> None:
    from websockets.asyncio.server import ServerConnection

    done = asyncio.Event()

    async def handler(ws: ServerConnection, n: int) -> None:
        for data in frames:
            await ws.send(data, text=True)
        await ws.wait_closed()
        done.set()

    server = WsServer(handler)
    await server.listen()
    print(f"PORT {server.port}", flush=True)
    await done.wait()
    await server.shutdown()


def serve_main(quotes: int, per_frame: int) -> None:
    """Serve ``quotes`` quotes in frames of ``per_frame`` objects to one client, then exit."""
    from benchmarks.bench_live_parse import quotes as make_quotes

    objs = make_quotes(quotes, strings=False)
    if per_frame == 1:
        frames = [json.dumps(q).encode() for q in objs]
    else:
        frames = [json.dumps(objs[i : i + per_frame]).encode() for i in range(0, quotes, per_frame)]
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(_serve(frames))


# --- the client side --------------------------------------------------------------------------


def _start(cmd: list[str]) -> tuple[subprocess.Popen[str], int]:
    """Start a server process; returns it and its port (read from its output)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stream = proc.stdout if "--serve" in cmd else proc.stderr
    assert stream is not None
    for line in stream:
        if line.startswith("PORT "):
            return proc, int(line.split()[1])
        if " listening " in line:
            return proc, int(line.rsplit("port=", 1)[1].split()[0])
    raise RuntimeError(f"server exited before listening: {' '.join(cmd)}")


def ingest(url: str, quotes: int, timeout: float = 300.0) -> tuple[float, int]:
    """Quotes per second into ``LiveSource.poll`` and the number of frames."""
    src = LiveSource(url, idle_timeout=30.0)
    src.start()
    got, first_ns, deadline = 0, None, time.monotonic() + timeout
    try:
        while got < quotes:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {got}/{quotes} quotes after {timeout} s")
            table, rejected = src.poll(0.1)
            if rejected:
                raise RuntimeError(f"unexpected rejects: {rejected[:3]}")
            if table is not None:
                if first_ns is None:
                    first_ns = int(table.column("arrival")[0].as_py())
                got += table.num_rows
        end_ns = time.time_ns()
    finally:
        src.stop()
    assert first_ns is not None
    return quotes / ((end_ns - first_ns) / 1e9), src.stats["frames"]


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> None:
    """Run the cases and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quotes", type=int, default=200_000)
    ap.add_argument("--serve", type=int, metavar="PER_FRAME", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve_main(args.quotes, args.serve)
        return

    set_level("WARNING")  # the connect/disconnect lines of every case are not the point here
    py = sys.executable
    command = f"python -m benchmarks.bench_live_ingest --quotes {args.quotes}"
    print(f"command: {command}")
    print(f"{'server':52} {'frames':>8} {'quotes/s':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        from data.generate import write_file

        csv = Path(tmp) / "live.csv"
        write_file(csv, args.quotes, 20251002, "live", 0)
        cases = [
            ("bare server, 1-object frames", [py, "-m", __spec__.name, "--serve", "1"]),
            ("bare server, 100-object arrays", [py, "-m", __spec__.name, "--serve", "100"]),
            ("engine.feed --speed max --frame object", ["--frame", "object"]),
            ("engine.feed --speed max --frame array (per timestamp)", ["--frame", "array"]),
        ]
        for label, cmd in cases:
            if cmd[0] == py:
                cmd = [*cmd, "--quotes", str(args.quotes)]
            else:
                cmd = [
                    py,
                    "-m",
                    "engine.feed",
                    "--csv",
                    str(csv),
                    "--port",
                    "0",
                    "--speed",
                    "max",
                    *cmd,
                ]
            proc, port = _start(cmd)
            try:
                rate, frames = ingest(f"ws://127.0.0.1:{port}", args.quotes)
            finally:
                _stop(proc)
            print(f"{label:52} {frames:>8,} {rate:>12,.0f}", flush=True)


if __name__ == "__main__":
    main()
