"""The ring against multiprocessing.Queue: the same quote batches, one writer, R readers.

``python -m benchmarks.ring_vs_queue [--records N] [--batch B[,B...]] [--readers 1,2,4]
[--repeat K] [--wait SPEC ...] [--no-queue] [--json]`` prints, for each batch size and reader
count, records/s and MB/s of every contender (see ``benchmarks.transport``), the ratio
ring/Queue, the ring's rate as a fraction of memcpy, and the CPU time writer and readers spent
per 1000 records. Every reader receives every record and checks the count, two checksums and
the order; a wrong result stops the run with an error.

All contenders run in the same invocation, interleaved (repeat k runs them in a rotated order)
so that every ratio compares runs made side by side, each with fresh reader processes. Each
figure is the median of ``--repeat`` runs (the upper middle one for an even count), with the
[min-max] of the times beside it; the memcpy reference is its best run, as a bound. On a small
machine shared with other work the spread is real: read it, and the CPU columns (which other
load barely moves), before trusting a digit of the wall-clock ratios.

``--wait`` adds ring contenders with other wait strategies (writer and readers):
``default``, ``busy`` (never sleep) or ``SPINS,YIELDS[,MIN_SLEEP,MAX_SLEEP]`` (seconds).
The first one given is the ring in the ratios; ``--no-queue`` leaves the Queue out.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import statistics
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from ringbuffer import BUSY_SPIN, DEFAULT_WAIT, WaitStrategy

from .transport import (
    BYTES_PER_RECORD,
    MessageQueueSession,
    QueueSession,
    RingSession,
    Run,
    Session,
    Source,
    leftover_rings,
    memcpy_reference,
    wait_label,
)


def parse_wait(spec: str) -> WaitStrategy:
    """A wait strategy from ``default``, ``busy`` or ``SPINS,YIELDS[,MIN_SLEEP,MAX_SLEEP]``.

    >>> w = parse_wait("0,8,50e-6,1e-3")
    >>> (w.spins, w.yields, w.min_sleep, w.max_sleep)
    (0, 8, 5e-05, 0.001)
    """
    if spec == "default":
        return DEFAULT_WAIT
    if spec == "busy":
        return BUSY_SPIN
    parts = spec.split(",")
    if not 2 <= len(parts) <= 4:
        raise argparse.ArgumentTypeError(f"bad wait strategy {spec!r}")
    kw: dict[str, Any] = {"spins": int(parts[0]), "yields": int(parts[1])}
    if len(parts) > 2:
        kw["min_sleep"] = float(parts[2])
    if len(parts) > 3:
        kw["max_sleep"] = float(parts[3])
    return WaitStrategy(**kw)


def int_list(text: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``; accepts ``_`` and ``k``/``M`` suffixes.

    >>> int_list("4096,16k,1M,1_000")
    [4096, 16384, 1048576, 1000]
    """
    out = []
    for part in text.split(","):
        p = part.strip().replace("_", "")
        scale = {"k": 1 << 10, "M": 1 << 20}.get(p[-1:], 1)
        out.append(int(p[:-1] if scale > 1 else p) * scale)
    return out


def _median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def _cpu(runs: list[Run]) -> float:
    return statistics.median(r.cpu_us_per_krec for r in runs)


def _row(
    label: str,
    readers: str,
    runs: list[Run],
    queue: list[Run] | None,
    memcpy: Run | None,
    ratios: list[float] | None = None,
) -> str:
    """One table line: median time [range], rates, ratio to the Queue, fraction of memcpy,
    CPU per 1000 records (writer + readers) and the Queue's CPU over this one's."""
    med = _median_run(runs)
    secs = [r.seconds for r in runs]
    spread = f"{med.seconds:7.3f} [{min(secs):.3f}-{max(secs):.3f}]"
    vs = "-" if queue is None else f"{_median_run(queue).seconds / med.seconds:.1f}x"
    if ratios and len(ratios) > 1:
        vs += f" [{min(ratios):.1f}-{max(ratios):.1f}]"
    of = "-" if memcpy is None else f"{memcpy.seconds / med.seconds:.0%}"
    cpu = _cpu(runs)
    cpu_vs = "-" if queue is None else f"{_cpu(queue) / cpu:.1f}x"
    return (
        f"{readers:>7}  {label:<22}{spread:>24}{med.records_per_s / 1e6:9.1f}"
        f"{med.mb_per_s:9.0f}  {vs:<16}{of:>8}{cpu:10.0f}{cpu_vs:>8}"
    )


HEADER = (
    f"{'readers':>7}  {'contender':<22}{'seconds [min-max]':>24}{'Mrec/s':>9}"
    f"{'MB/s':>9}  {'vs queue':<16}{'of memcpy':>8}{'cpu us/k':>10}{'cpu vs':>8}"
)


def contenders(
    src: Source, readers: int, args: argparse.Namespace, waits: list[WaitStrategy]
) -> list[Callable[[], Session]]:
    """Session factories: a ring per wait strategy, then (unless ``--no-queue``) the batched
    Queue, always last."""
    ring = partial(
        RingSession,
        src,
        readers,
        capacity=args.capacity,
        max_records=args.read_max,
        warm=not args.cold,
    )
    queue = partial(QueueSession, src, readers, capacity=args.capacity, warm=0 if args.cold else 4)
    rings: list[Callable[[], Session]] = [partial(ring, wait=w) for w in waits]
    return rings if args.no_queue else [*rings, queue]


def measure(args: argparse.Namespace, out: Callable[[str], None]) -> dict[str, Any]:
    """Run every contender as asked; print the tables through ``out``; return the results."""
    waits = args.wait or [DEFAULT_WAIT]
    pool = args.pool or min(args.records, 4_000_000)
    base = Source.make(pool, args.batch[0], args.records)
    results: dict[str, Any] = {
        "config": {
            "records": args.records,
            "pool": pool,
            "batches": args.batch,
            "readers": args.readers,
            "repeat": args.repeat,
            "capacity": args.capacity,
            "waits": [wait_label(w) for w in waits],
            "read_max": args.read_max,
            "warm": not args.cold,
            "bytes_per_record": BYTES_PER_RECORD,
        },
        "runs": [],
        "summary": [],
    }
    out(
        f"records: {BYTES_PER_RECORD} bytes each (QUOTE_SCHEMA); {args.records:,} per run "
        f"(a pool of {pool:,} distinct, {pool * BYTES_PER_RECORD / 1e6:.0f} MB, sent in laps); "
        f"ring capacity {args.capacity:,}"
    )
    out(
        f"each row: median of {args.repeat} runs [min-max seconds]; memcpy rows: best of "
        f"{3 * args.repeat}; 'vs queue' = ratio of medians [range of the per-repeat ratios]"
    )
    out(
        "cpu us/k: CPU time of writer + all readers per 1000 records (median; barely affected "
        "by other load); cpu vs: the Queue's over this one's"
    )
    out("rates are of the stream: records (MB) per second delivered to EVERY reader")
    load = os.getloadavg()[0]
    out(f"load average (1 min) at start: {load:.2f} on {os.cpu_count()} cores")

    def keep(run: Run, rep: int) -> Run:
        results["runs"].append({**run.as_dict(), "repeat": rep})
        return run

    for batch in args.batch:
        src = base.with_batch(batch)
        refs: dict[str, list[Run]] = {"memcpy": [], "np copy/batch": []}
        for rep in range(args.repeat):
            for _ in range(3):
                for run in memcpy_reference(src, args.capacity):
                    refs[run.contender].append(keep(run, rep))
                gc.collect()
        memcpy = min(refs["memcpy"], key=lambda r: r.seconds)  # the bound: its best run
        out(f"\nbatch {batch:,} records ({batch * BYTES_PER_RECORD / 1e6:.2f} MB)")
        out(HEADER)
        for name, runs in refs.items():
            best = min(runs, key=lambda r: r.seconds)
            out(_row(f"{name} (best)", "-", [best], None, memcpy))
        for readers in args.readers:
            makers = contenders(src, readers, args, waits)
            by: list[list[Run]] = [[] for _ in makers]
            for rep in range(args.repeat):
                order = list(range(len(makers)))
                order = order[rep % len(order) :] + order[: rep % len(order)]
                for i in order:
                    by[i].append(keep(makers[i]().run(), rep))
                    gc.collect()
            queues = None if args.no_queue else by.pop()
            queue = None if queues is None else _median_run(queues)
            for runs in by:
                med = _median_run(runs)
                row: dict[str, Any] = {
                    "batch": batch,
                    "readers": readers,
                    "contender": med.contender,
                    "records_per_s": med.records_per_s,
                    "mb_per_s": med.mb_per_s,
                    "fraction_of_memcpy": memcpy.seconds / med.seconds,
                }
                paired = None
                if queues is not None and queue is not None:
                    paired = [q.seconds / r.seconds for r, q in zip(runs, queues, strict=True)]
                    row.update(
                        queue_records_per_s=queue.records_per_s,
                        ring_over_queue=queue.seconds / med.seconds,
                        ring_over_queue_paired=paired,
                        cpu_us_per_krec=_cpu(runs),
                        queue_cpu_us_per_krec=_cpu(queues),
                    )
                out(_row(runs[0].contender, str(readers), runs, queues, memcpy, paired))
                results["summary"].append(row)
            if queues is not None:
                out(_row("queue", str(readers), queues, queues, memcpy))
    if args.msg_records:
        msg_src = base.with_total(args.msg_records).with_batch(1)
        runs = [
            keep(MessageQueueSession(msg_src, capacity=args.capacity).run(), rep)
            for rep in range(args.repeat)
        ]
        med = _median_run(runs)
        out(f"\nper-message Queue: one tuple per quote, 1 reader, {args.msg_records:,} records")
        out(HEADER)
        out(_row("queue/msg", "1", runs, None, None))
        results["summary"].append(
            {
                "batch": 1,
                "readers": 1,
                "contender": "queue/msg",
                "records_per_s": med.records_per_s,
                "mb_per_s": med.mb_per_s,
            }
        )
    first = results["summary"][0]["contender"] if results["summary"] else None
    ring_rows = [
        s for s in results["summary"] if s["contender"] == first and "ring_over_queue" in s
    ]
    if ring_rows:
        out(
            f"\nring/Queue (ratio of median times; goal >= 5x with 1 reader, >= 8x with 4), "
            f"ring = {first}:"
        )
        out(f"{'batch':>8}" + "".join(f"{f'R={r}':>9}" for r in args.readers))
        for batch in args.batch:
            cells = {s["readers"]: s["ring_over_queue"] for s in ring_rows if s["batch"] == batch}
            out(f"{batch:>8}" + "".join(f"{cells[r]:8.1f}x" for r in args.readers))
    load_end = os.getloadavg()[0]
    out(f"load average (1 min) at the end: {load_end:.2f}")
    results["config"]["load_average"] = [load, load_end]
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, measure, print; 0 on success."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--records",
        type=lambda s: int_list(s)[0],
        default=16_000_000,
        help="records sent to every reader per run (default 16M)",
    )
    ap.add_argument(
        "--pool",
        type=lambda s: int_list(s)[0],
        default=0,
        help="distinct records generated, sent in laps (default min(records, 4M))",
    )
    ap.add_argument(
        "--batch",
        type=int_list,
        default=[16384],
        help="records per batch; a comma list runs each (default 16384)",
    )
    ap.add_argument("--readers", type=int_list, default=[1, 2, 4], help="default 1,2,4")
    ap.add_argument("--repeat", type=int, default=3, help="runs per contender (median shown)")
    ap.add_argument(
        "--capacity",
        type=lambda s: int_list(s)[0],
        default=1 << 20,
        help="ring capacity in records; Queues hold capacity/batch batches",
    )
    ap.add_argument(
        "--wait",
        type=parse_wait,
        action="append",
        help="ring wait strategy (repeatable): default, busy, or S,Y[,MIN,MAX]",
    )
    ap.add_argument(
        "--read-max",
        type=lambda s: int_list(s)[0],
        default=None,
        help="max_records per ring read (default: the batch size)",
    )
    ap.add_argument(
        "--msg-records",
        type=lambda s: int_list(s)[0],
        default=200_000,
        help="records for the per-message Queue (0 skips it)",
    )
    ap.add_argument(
        "--no-queue", action="store_true", help="rings only (to compare wait strategies)"
    )
    ap.add_argument(
        "--cold",
        action="store_true",
        help="no warm-up: page faults of the ring's first lap are timed",
    )
    ap.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    args = ap.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every finally runs and no ring is left in /dev/shm.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    lines: list[str] = []
    results = measure(args, lines.append if args.json else print)
    left = leftover_rings()
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
    if left:
        print(f"shared memory left behind: {left}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
