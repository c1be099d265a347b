"""Pacing lateness at ``--speed 1``: how late the engine publishes each due batch.

    python -m benchmarks.pacing_lateness [--csv data/historical_sample.csv] [--speed 1] [--runs 3]

Runs the engine (a real process) with a consumer attached, and reads the lateness percentiles
the engine logs at exit (measured per batch against its due time). Goal: p99 < 2 ms.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading

import ringbuffer
from tools.pipeline import ROOT, unique_ring

LATE = re.compile(r"late_p50_ms=([\d.e-]+) late_p99_ms=([\d.e-]+)")


def drain(ring: str, counts: list[int]) -> None:
    r = ringbuffer.attach(ring, "lateness", timeout=30)
    try:
        while (b := r.read(timeout=30)) is not None:
            counts.append(b.num_rows)
    finally:
        r.close()


def one_run(csv: str, speed: str) -> tuple[float, float, int]:
    ring = unique_ring("pacing")
    counts: list[int] = []
    t = threading.Thread(target=drain, args=(ring, counts))
    t.start()
    with tempfile.TemporaryDirectory() as state:
        res = subprocess.run(
            [sys.executable, "-m", "engine", "--mode", "historical", "--historical", csv,
             "--speed", speed, "--ring", ring, "--state-dir", state, "--exit-at-end",
             "--wait-for-consumers", "1"],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    t.join(60)
    if res.returncode != 0 or not (m := LATE.search(res.stderr)):
        raise SystemExit(f"engine failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return float(m.group(1)), float(m.group(2)), sum(counts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--csv", default=str(ROOT / "data" / "historical_sample.csv"))
    p.add_argument("--speed", default="1")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; csv {args.csv}")
    print("run  records  late p50 ms  late p99 ms  goal p99 < 2 ms")
    for i in range(args.runs):
        p50, p99, n = one_run(args.csv, args.speed)
        print(f"{i + 1:3d}  {n:7d}  {p50:11.3f}  {p99:11.3f}  {'met' if p99 < 2 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
