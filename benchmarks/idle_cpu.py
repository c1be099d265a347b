"""CPU cost of waiting: a reader on an idle ring, and a writer blocked on a reader that never reads.

``python -m benchmarks.idle_cpu [--seconds 3] [--wait SPEC ...] [--json]`` runs each case in a
child process and reads the child's CPU time (user + system, all threads) from
``/proc/<pid>/stat`` before and after a window of ``--seconds``; it prints the CPU time as a
percentage of one core. The goal with the default wait strategy: under 5 % each.

``idle reader``
    the child attaches to a ring that this process created and never publishes to, and calls
    ``read(timeout=None)``; the window starts once it has attached.
``blocked writer``
    the child creates a ring of 1024 records; this process attaches a consumer that never
    reads; the child publishes 2048 records and blocks after the first 1024; the window starts
    once it has begun to publish. Afterwards the check that it really was blocked: its cursor
    is still 1024.

``--wait`` as in ``benchmarks.ring_vs_queue`` (``default``, ``busy``, ``S,Y[,MIN,MAX]``),
repeatable; default: the default strategy only. ``/proc`` counts CPU time in clock ticks
(usually 10 ms), so a 3 s window resolves about 0.3 % of a core.
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
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np

import ringbuffer
from ringbuffer import DEFAULT_WAIT, WRITER_WAIT, WaitStrategy

from .ring_vs_queue import parse_wait
from .transport import CTX, RING_PREFIX, WAIT_S, leftover_rings, wait_label

GOAL_PERCENT = 5.0
BLOCK_CAPACITY = 1024
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far, in seconds.

    >>> 0.0 <= cpu_seconds(os.getpid()) < 1e6
    True
    """
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rfind(b")") + 2 :].split()  # after comm, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)


@dataclass(frozen=True)
class Measurement:
    """CPU time a waiting process used over a wall-clock window."""

    case: str
    wait: str
    cpu_seconds: float
    wall_seconds: float

    @property
    def percent(self) -> float:
        """CPU time as a percentage of one core."""
        return 100.0 * self.cpu_seconds / self.wall_seconds

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {**asdict(self), "percent": self.percent, "goal_percent": GOAL_PERCENT}


def _window(p: BaseProcess, seconds: float) -> tuple[float, float]:
    """CPU seconds the started process ``p`` used over ``seconds`` of wall time, and that time."""
    pid = p.pid
    if pid is None:
        raise RuntimeError(f"process {p.name} has not been started")
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return cpu_seconds(pid) - c0, time.monotonic() - t0


def _expect(conn: Connection, what: str) -> Any:
    if not conn.poll(WAIT_S):
        raise RuntimeError(f"the child sent no {what!r} within {WAIT_S}s")
    msg = conn.recv()
    if msg[0] != what:
        raise RuntimeError(f"the child sent {msg!r}, expected {what!r}")
    return msg


def _stop(p: Any) -> None:
    p.join(WAIT_S)
    if p.is_alive():
        p.terminate()
        p.join(5.0)
    if p.exitcode != 0:
        raise RuntimeError(f"child pid {p.pid} exited with {p.exitcode}")


def idle_reader(ring: str, wait: WaitStrategy, conn: Connection) -> None:
    """Child: attach, signal, wait for data that comes only as the end of the stream."""
    r = ringbuffer.attach(ring, "idle", timeout=WAIT_S, wait=wait)
    try:
        conn.send(("ready",))
        batch = r.read(timeout=None)
        conn.send(("done", batch is None and r.ended))
    finally:
        r.close()


def blocked_writer(ring: str, wait: WaitStrategy, conn: Connection) -> None:
    """Child: create a small ring, wait for the consumer, publish twice its capacity."""
    w = ringbuffer.create(ring, {"seq": "uint64"}, BLOCK_CAPACITY, wait=wait)
    try:
        conn.send(("created",))
        _expect(conn, "go")
        conn.send(("publishing",))
        w.publish({"seq": np.arange(2 * BLOCK_CAPACITY, dtype=np.uint64)})
        w.end()
        conn.send(("done", w.cursor))
    finally:
        w.close()


def measure_idle_reader(seconds: float, wait: WaitStrategy = DEFAULT_WAIT) -> Measurement:
    """CPU of a reader process waiting on a ring that stays empty for ``seconds``."""
    ring = f"{RING_PREFIX}idle-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    w = ringbuffer.create(ring, {"seq": "uint64"}, BLOCK_CAPACITY)
    p = None
    try:
        here, there = CTX.Pipe()
        p = CTX.Process(target=idle_reader, args=(ring, wait, there), daemon=True)
        p.start()
        _expect(here, "ready")
        cpu, wall = _window(p, seconds)
        w.end()
        if not _expect(here, "done")[1]:
            raise RuntimeError("the idle reader did not see the end of the stream")
        _stop(p)
        return Measurement("idle reader", wait_label(wait), cpu, wall)
    finally:
        if p is not None and p.is_alive():
            p.kill()
            p.join(5.0)
        w.close()


def measure_blocked_writer(seconds: float, wait: WaitStrategy = WRITER_WAIT) -> Measurement:
    """CPU of a writer process blocked for ``seconds`` on a consumer that does not read."""
    ring = f"{RING_PREFIX}blocked-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    here, there = CTX.Pipe()
    p = CTX.Process(target=blocked_writer, args=(ring, wait, there), daemon=True)
    p.start()
    r = None
    try:
        _expect(here, "created")
        r = ringbuffer.attach(ring, "stuck", timeout=WAIT_S)
        here.send(("go",))
        _expect(here, "publishing")
        cpu, wall = _window(p, seconds)
        cursor = r.lag() + r.position
        if cursor != BLOCK_CAPACITY:
            raise RuntimeError(f"the writer was not blocked: cursor {cursor}")
        r.close()  # detached: it no longer gates, so the writer finishes
        r = None
        if _expect(here, "done")[1] != 2 * BLOCK_CAPACITY:
            raise RuntimeError("the writer did not publish everything after the reader left")
        _stop(p)
        return Measurement("blocked writer", wait_label(wait), cpu, wall)
    finally:
        if r is not None:
            r.close()
        if p.is_alive():
            p.kill()
            p.join(5.0)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure both cases for each wait strategy and print a table; 0 on success."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="window per case (default 3)")
    ap.add_argument(
        "--wait",
        type=parse_wait,
        action="append",
        help="wait strategy (repeatable): default, busy, or S,Y[,MIN,MAX]",
    )
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    if not args.wait:  # each side with the ring's own default
        results.append(measure_idle_reader(args.seconds))
        results.append(measure_blocked_writer(args.seconds))
    for wait in args.wait or []:
        results.append(measure_idle_reader(args.seconds, wait))
        results.append(measure_blocked_writer(args.seconds, wait))
    if args.json:
        json.dump([m.as_dict() for m in results], sys.stdout, indent=1)
        print()
    else:
        print(f"{'case':<16}{'wait':<22}{'cpu s':>8}{'wall s':>8}{'% of a core':>13}  goal")
        for m in results:
            met = "met" if m.percent < GOAL_PERCENT else "NOT met"
            print(
                f"{m.case:<16}{m.wait:<22}{m.cpu_seconds:8.2f}{m.wall_seconds:8.2f}"
                f"{m.percent:12.2f}%  < {GOAL_PERCENT:g}%: {met}"
            )
    left = leftover_rings()
    if left:
        print(f"shared memory left behind: {left}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
