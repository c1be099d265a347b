"""The streaming engine as a file grows: time, time to the first record, peak RSS, disk.

``python -m benchmarks.stream_growth --csv PATH [--csv PATH ...] [--cached] [--json]``

For each CSV: ``python -m engine --speed max --exit-at-end`` with a fresh state directory and
one reader on the ring (this process, reading every record as fast as it can), timed from the
engine's spawn to its exit; the first record's arrival at the reader; the engine's peak RSS
(``VmHWM``, polled every 10 ms); the state directory's disk use (the spilled runs). With
``--cached`` each file is replayed a second time from the start (checkpoint removed): the runs
are reused and no CSV is read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ringbuffer
from benchmarks.e2e import PeakRss


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def replay(csv: Path, state: Path, ring: str) -> dict[str, Any]:
    """One replay of ``csv`` with a reader on the ring."""
    cmd = [sys.executable, "-m", "engine", "--mode", "historical", "--historical", str(csv),
           "--speed", "max", "--exit-at-end", "--state-dir", str(state), "--ring", ring,
           "--wait-for-consumers", "1"]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    first = None
    records = 0
    with PeakRss() as peak:
        peak.add("engine", proc.pid)
        reader = ringbuffer.attach(ring, consumer="bench", timeout=60.0)
        try:
            while True:
                batch = reader.read(max_records=65536, timeout=1.0)
                if batch is None:
                    if reader.ended:
                        break
                    continue
                if first is None:
                    first = time.perf_counter() - t0
                records += batch.num_rows
        finally:
            reader.close()
        rc = proc.wait()
    return {
        "csv": str(csv), "rc": rc, "records": records,
        "seconds": round(time.perf_counter() - t0, 3),
        "first_record_s": round(first, 3) if first is not None else None,
        "engine_peak_rss_mib": round(peak.peak.get("engine", 0) / 1024, 1),
        "state_dir_mib": round(_du(state) / 2**20, 1),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, action="append", required=True)
    ap.add_argument("--cached", action="store_true", help="also replay again from the runs")
    ap.add_argument("--state-root", type=Path, help="where state directories go (removed after)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = []
    for csv in args.csv:
        root = Path(tempfile.mkdtemp(dir=args.state_root))
        try:
            ring = f"growth{os.getpid()}"
            rows = [dict(replay(csv, root / "state", ring), run="cold")]
            if args.cached:
                (root / "state" / "checkpoint.json").unlink()
                rows.append(dict(replay(csv, root / "state", ring), run="cached"))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        for r in rows:
            print(f"{r['run']:6} {r['records']:>11,} rows  {r['seconds']:8.2f} s  first record "
                  f"{r['first_record_s']} s  engine peak RSS {r['engine_peak_rss_mib']} MiB  "
                  f"state dir {r['state_dir_mib']} MiB  rc={r['rc']}  {r['csv']}", flush=True)
        out += rows
    if args.json:
        print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
