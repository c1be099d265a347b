"""The side-by-side comparison suite: every contender measured in one run, one table of ratios.

``python -m benchmarks.compare [--quick] [--json PATH] [--chart PATH]`` (``make compare``)

Sections, each run in this order and each comparing contenders measured side by side in this
run (interleaved rounds, medians), each checking its outputs (counts, checksums or bytes), so a
fast wrong answer fails:

1. idle CPU (``benchmarks.idle_cpu``): a reader on an idle ring, a writer blocked on a reader;
   goal under 5 % of a core each.
2. transport (``benchmarks.ring_vs_queue.measure``, ``benchmarks.transport``): the ring against
   one batched ``multiprocessing.Queue`` per reader with 1, 2 and 4 readers, against one Queue
   message per quote, and the ring's rate as a fraction of memcpy; goals ring/Queue >= 5x with
   1 reader and >= 8x with 4.
3. publish-to-read latency through the ring at 10k, 100k and 1M records/s
   (``benchmarks.latency``): p50, p99, p99.9.
4. historical load + stable sort by arrival (``engine.historical.load_historical``) against
   pandas (``read_csv``, ``to_datetime``, ``sort_values(kind="stable")``), each in a fresh
   process (``benchmarks.bench_load.measure``).
5. the processor on records already in the ring against a bare Polars ``write_csv`` and a
   per-record Python loop (``benchmarks.processor_bench``); goal >= 0.8x Polars.
6. end to end at ``--speed max`` (engine + processor programs) against the naive design
   (``benchmarks.e2e``, ``benchmarks.naive``) at 100k and 1M rows, and the pipeline's growth to
   10M rows with each process's peak RSS; goal >= 30x at 1M rows.

``--quick`` uses small sizes (a minute or two in all; the goals are for the full sizes).
``--json PATH`` writes every figure, ``--chart PATH`` a PNG of the ratios, latencies, growth and
memory. The machine (CPU, cores, Python, package versions), the load average before and after
each section and the exact command are printed and saved. A section that fails (an error or a
wrong result) is reported as FAILED and makes the exit code 1; a missed goal does not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import ringbuffer
from benchmarks import bench_load, e2e, idle_cpu, latency, processor_bench, ring_vs_queue
from benchmarks.e2e import size_label

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("numpy", "pyarrow", "polars", "pandas", "matplotlib", "websockets")
LOAD_GOAL = 5.0  # load + sort at least this many times faster than pandas (read, to_datetime, sort)


@dataclass
class Row:
    """One line of the table: a measure, its figures, the ratio and its goal."""

    section: str
    measure: str
    figures: str
    ratio: float | None = None  # ours over the contender's rate (higher is better)
    goal: str = "-"
    met: bool | None = None  # None: no goal

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class Sizes:
    """The sizes of one run: full or ``--quick``."""

    transport_records: int
    transport_repeat: int
    msg_records: int
    idle_seconds: float
    latency_seconds: float
    load_rows: int
    load_repeat: int
    proc_rows: int
    proc_repeat: int
    loop_rows: int
    e2e_sizes: tuple[int, ...]
    naive_sizes: tuple[int, ...]
    e2e_repeat: int
    ratio_at: int  # the size of the end-to-end goal


FULL = Sizes(8_000_000, 3, 200_000, 3.0, 3.0, 1_000_000, 3, 1_000_000, 5, 100_000,
             (100_000, 1_000_000, 10_000_000), (100_000, 1_000_000), 3, 1_000_000)  # fmt: skip
QUICK = Sizes(1_000_000, 1, 20_000, 1.0, 1.0, 200_000, 1, 200_000, 2, 20_000,
              (50_000, 200_000), (50_000, 200_000), 1, 1_000_000)  # fmt: skip


def rate(x: float) -> str:
    """Records per second, short.

    >>> rate(12_345_678), rate(52_846), rate(999)
    ('12.3M/s', '52.8k/s', '999/s')
    """
    if x >= 1e6:
        return f"{x / 1e6:.1f}M/s"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k/s"
    return f"{x:.0f}/s"


# -- the machine ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python, package versions and the project's commit."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            names = (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
            cpu = next(names, "?")
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kib = int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1])
            mem = f"{kib / 1024**2:.1f} GiB"
    except (OSError, StopIteration):
        pass
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = "-"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
        "commit": commit or "?",
        "env": {k: os.environ[k] for k in ("PYTHONDONTWRITEBYTECODE",) if k in os.environ},
    }


# -- the sections ------------------------------------------------------------------------------

Section = Callable[[Sizes, Callable[[str], None]], tuple[list[Row], Any]]


def section_idle(sz: Sizes, out: Callable[[str], None]) -> tuple[list[Row], Any]:
    """CPU of an idle reader and of a blocked writer."""
    results = [
        idle_cpu.measure_idle_reader(sz.idle_seconds),
        idle_cpu.measure_blocked_writer(sz.idle_seconds),
    ]
    rows = [
        Row(
            "idle CPU", m.case, f"{m.percent:.2f}% of a core ({m.cpu_seconds:.2f}s CPU in "
            f"{m.wall_seconds:.1f}s)", None, f"< {idle_cpu.GOAL_PERCENT:g}%",
            m.percent < idle_cpu.GOAL_PERCENT,
        )
        for m in results
    ]
    return rows, [m.as_dict() for m in results]


def section_transport(sz: Sizes, out: Callable[[str], None]) -> tuple[list[Row], Any]:
    """Ring against batched and per-message Queues and memcpy (``ring_vs_queue.measure``)."""
    args = argparse.Namespace(
        records=sz.transport_records, pool=0, batch=[16384], readers=[1, 2, 4],
        repeat=sz.transport_repeat, capacity=1 << 20, wait=None, read_max=None,
        msg_records=sz.msg_records, no_queue=False, cold=False, json=True,
    )  # fmt: skip
    res = ring_vs_queue.measure(args, lambda line: out("    " + line))
    by = {(s["contender"], s["readers"]): s for s in res["summary"]}
    goals = {1: 5.0, 4: 8.0}
    rows = []
    for readers in (1, 2, 4):
        s = by[("ring", readers)]
        goal = goals.get(readers)
        ratio = s["ring_over_queue"]
        paired = s.get("ring_over_queue_paired") or []
        spread = f" [{min(paired):.1f}-{max(paired):.1f}]" if len(paired) > 1 else ""
        rows.append(Row(
            "transport", f"ring vs batched Queue, {readers} reader{'s' * (readers > 1)}",
            f"ring {rate(s['records_per_s'])}, Queue {rate(s['queue_records_per_s'])} "
            f"to every reader; ratio range{spread or ' -'}",
            ratio, f">= {goal:g}x" if goal else "-", ratio >= goal if goal else None,
        ))  # fmt: skip
    ring1, msg = by[("ring", 1)], by.get(("queue/msg", 1))
    if msg is not None:
        rows.append(Row(
            "transport", "ring vs one Queue message per quote, 1 reader",
            f"ring {rate(ring1['records_per_s'])}, Queue/msg {rate(msg['records_per_s'])}",
            ring1["records_per_s"] / msg["records_per_s"],
        ))  # fmt: skip
    rows.append(Row(
        "transport", "ring (1 reader) as a fraction of memcpy",
        f"ring {ring1['mb_per_s']:,.0f} MB/s; "
        f"memcpy {ring1['mb_per_s'] / ring1['fraction_of_memcpy']:,.0f} MB/s",
        ring1["fraction_of_memcpy"],
    ))  # fmt: skip
    return rows, res


def section_latency(sz: Sizes, out: Callable[[str], None]) -> tuple[list[Row], Any]:
    """Publish-to-read latency at three rates."""
    results = latency.measure([10_000, 100_000, 1_000_000], sz.latency_seconds)
    for line in latency.table(results):
        out("    " + line)
    rows = [
        Row(
            "latency", f"publish-to-read at {rate(x.rate)} (batches of {x.batch})",
            f"p50 {x.p50_us:.0f} us, p99 {x.p99_us:.0f} us, p99.9 {x.p999_us:.0f} us, "
            f"max {x.max_us:.0f} us ({x.records:,} records, wait {x.wait})",
        )
        for x in results
    ]
    return rows, [x.as_dict() for x in results]


def section_load(sz: Sizes, out: Callable[[str], None]) -> tuple[list[Row], Any]:
    """``load_historical`` against pandas on one realistic CSV, each run in a fresh process."""
    names = ("load_historical", "pandas full", "pandas read_csv")
    with tempfile.TemporaryDirectory(prefix="bench-cmp-load-") as tmp:
        csv = e2e.generate_csv(sz.load_rows, Path(tmp))
        e2e.warm(csv)
        times: dict[str, list[float]] = {n: [] for n in names}
        for r in range(sz.load_repeat):
            for name in names[r % 3 :] + names[: r % 3]:
                got = bench_load.measure(name, csv, Path(tmp) / "state")
                if int(got["rows"]) != sz.load_rows:
                    raise RuntimeError(f"{name}: {got['rows']} rows of {sz.load_rows}")
                times[name].append(got["seconds"])
                out(f"    round {r + 1}: {name:16} {got['seconds']:7.3f}s")
    med = {n: statistics.median(v) for n, v in times.items()}
    n = sz.load_rows
    rows = []
    for other, key, goal in (("full (read, to_datetime, sort)", "pandas full", LOAD_GOAL),
                             ("read_csv alone", "pandas read_csv", None)):  # fmt: skip
        ratio = med[key] / med["load_historical"]
        rows.append(Row(
            "load", f"load + stable sort, {size_label(n)} rows, vs pandas {other}",
            f"load_historical {med['load_historical']:.2f}s ({rate(n / med['load_historical'])}), "
            f"{other} {med[key]:.2f}s ({rate(n / med[key])})",
            ratio, f">= {goal:g}x" if goal else "-", ratio >= goal if goal else None,
        ))  # fmt: skip
    return rows, {"rows": n, "seconds": times, "median": med}


def section_processor(sz: Sizes, out: Callable[[str], None]) -> tuple[list[Row], Any]:
    """The processor on records already in the ring against Polars and a per-record loop."""
    rep = processor_bench.measure(sz.proc_rows, sz.proc_repeat, sz.loop_rows, out=out)
    for line in processor_bench.table(rep):
        out("    " + line)
    r, n = rep["records_per_s"], size_label(rep["rows"])
    polars = r["polars write_csv"]
    goal = f">= {processor_bench.GOAL:g}x"
    rows = [
        Row("processor", f"read+render+write (in process), {n} records, vs Polars write_csv",
            f"ours {rate(r['read+render+write'])}, Polars {rate(polars)}",
            rep["over_polars"]["read+render+write"], goal, rep["goal_met"]),
        Row("processor", f"processor program (start to exit), {n} records, vs Polars write_csv",
            f"program {rate(r['processor program'])} "
            f"({rep['seconds']['processor program']:.2f}s, peak RSS "
            f"{rep['program_peak_rss_kib'] / 1024:.0f} MiB), Polars {rate(polars)}",
            rep["over_polars"]["processor program"]),
        Row("processor", f"read+render+write vs per-record Python loop, {n} records",
            f"ours {rate(r['read+render+write'])}, loop {rate(r['per-record loop'])} "
            f"(on {rep['loop_rows']:,} records)",
            rep["over_loop"]["read+render+write"]),
    ]  # fmt: skip
    return rows, rep


def section_e2e(sz: Sizes, out: Callable[[str], None]) -> tuple[list[Row], Any]:
    """End to end against the naive design; growth with size."""
    rep = e2e.measure(sz.e2e_sizes, sz.naive_sizes, sz.e2e_repeat, out=out)
    for line in e2e.table(rep):
        out("    " + line)
    rows = []
    for s in rep["sizes"]:
        n = size_label(s["rows"])
        p = s["pipeline"]
        rss = ", ".join(f"{k} {v / 1024:,.0f}" for k, v in p["peak_rss_kib"].items())
        if "naive" in s:
            goal = e2e.GOAL_AT_1M if s["rows"] == sz.ratio_at else None
            nv = s["naive"]
            nrss = ", ".join(f"{k} {v / 1024:,.0f}" for k, v in nv["peak_rss_kib"].items())
            rows.append(Row(
                "end to end", f"pipeline vs naive, {n} rows (logs byte-identical)",
                f"pipeline {p['seconds']:.2f}s ({rate(p['records_per_s'])}), naive "
                f"{nv['seconds']:.2f}s ({rate(nv['records_per_s'])}); peak RSS MiB: {rss}; "
                f"naive {nrss}",
                s["ratio"], f">= {goal:g}x" if goal else "-",
                s["ratio"] >= goal if goal else None,
            ))  # fmt: skip
            if "cached" in s:
                c = s["cached"]
                rows.append(Row(
                    "end to end", f"pipeline with its parse cache (a second replay of the file) "
                    f"vs naive, {n} rows",
                    f"pipeline {c['seconds']:.2f}s ({rate(c['records_per_s'])}), naive "
                    f"{nv['seconds']:.2f}s",
                    s["cached_ratio"],
                ))  # fmt: skip
        else:
            rows.append(Row(
                "end to end", f"pipeline alone, {n} rows (naive not run: too slow)",
                f"pipeline {p['seconds']:.2f}s ({rate(p['records_per_s'])}); "
                f"peak RSS MiB: {rss}",
            ))  # fmt: skip
    lin = rep.get("linearity")
    if lin:
        steps = ", ".join(f"{s['from']}->{s['to']} {s['us_per_record']:.2f}" for s in lin["steps"])
        rows.append(Row(
            "end to end", "growth of the pipeline's time with rows",
            f"fit {lin['fixed_seconds']:.2f}s + {lin['us_per_record']:.3f} us/record; "
            f"marginal us/record {steps}",
            None, "roughly linear", lin["roughly_linear"],
        ))  # fmt: skip
    return rows, rep


SECTIONS: dict[str, Section] = {
    "idle CPU": section_idle,
    "transport": section_transport,
    "latency": section_latency,
    "load": section_load,
    "processor": section_processor,
    "end to end": section_e2e,
}


def my_leftover_rings() -> list[str]:
    """Segments in /dev/shm of the benchmark rings this process made (removed if found)."""
    rings = ringbuffer.segments("bench-")
    mine = [ringbuffer.segment_path(r) for r in rings if f"-{os.getpid()}-" in r]
    for p in mine:
        p.unlink(missing_ok=True)
    return sorted(p.name for p in mine)


# -- output -----------------------------------------------------------------------------------


def table(rows: list[Row]) -> list[str]:
    """The one table of the run."""
    w_measure = max(len(r.measure) for r in rows)
    head = f"{'section':<11} {'measure':<{w_measure}} {'ratio':>8} {'goal':>15} {'met':>7}  figures"
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = "-" if r.ratio is None else (
            f"{r.ratio:.0%}" if "memcpy" in r.measure else f"{r.ratio:.1f}x"
        )  # fmt: skip
        met = {True: "yes", False: "NO", None: "-"}[r.met]
        if r.section == "FAILED":
            met = "FAILED"
        lines.append(
            f"{r.section:<11} {r.measure:<{w_measure}} {ratio:>8} {r.goal:>15} {met:>7}  "
            f"{r.figures}"
        )
    return lines


def chart(path: Path, rows: list[Row], raw: dict[str, Any], info: dict[str, Any], cmd: str) -> None:
    """A PNG: ratios against goals, latency percentiles, end-to-end growth, peak memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    def plain_log(axis: Any, subs: tuple[float, ...] = (1.0, 2.0, 5.0)) -> None:
        axis.set_major_locator(LogLocator(subs=subs))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())

    def times(x: float) -> str:
        return f"{x:.2g}x" if x < 1 else f"{x:.1f}x" if x < 100 else f"{x:.0f}x"

    fig, axes = plt.subplots(2, 2, figsize=(16, 11), gridspec_kw={"width_ratios": [1.35, 1]})
    ax = axes[0][0]
    bars = [(r, r.ratio) for r in rows if r.ratio is not None and "memcpy" not in r.measure]
    labels = [r.measure.replace(" (logs byte-identical)", "") for r, _ in bars][::-1]
    values = [ratio for _, ratio in bars][::-1]
    colour_of = {True: "#2e7d32", False: "#c62828", None: "#78909c"}
    colours = [colour_of[r.met] for r, _ in bars][::-1]
    y = range(len(bars))
    ax.barh(list(y), values, color=colours)
    ax.set_xscale("log")
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels, fontsize=8)
    ax.axvline(1.0, color="black", lw=0.8)
    for i, (r, ratio) in enumerate(bars[::-1]):
        at = ratio
        if r.goal.startswith(">="):
            g = float(r.goal.split()[1].rstrip("x"))
            ax.plot([g, g], [i - 0.42, i + 0.42], color="black", lw=2)
            at = max(at, g)
        ax.text(at * 1.1, i, times(ratio), va="center", fontsize=8)
    ax.set_xlim(min([*values, 1.0]) / 2, max(values) * 4)
    plain_log(ax.xaxis, (1.0,))
    ax.set_title("ours / contender (x, log scale); black tick = goal;\n"
                 "green met, red missed, grey no goal", fontsize=10)  # fmt: skip

    ax = axes[0][1]
    lat = raw.get("latency") or []
    if lat:
        xs = range(len(lat))
        width = 0.27
        for k, (key, name) in enumerate((("p50_us", "p50"), ("p99_us", "p99"),
                                         ("p999_us", "p99.9"))):  # fmt: skip
            vals = [x[key] for x in lat]
            pos = [i + (k - 1) * width for i in xs]
            ax.bar(pos, vals, width, label=name)
            for p_, v in zip(pos, vals, strict=True):
                ax.text(p_, v * 1.05, f"{v:.0f}", ha="center", fontsize=7)
        ax.set_yscale("log")
        plain_log(ax.yaxis)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([f"{rate(x['rate'])}\n(batch {x['batch']})" for x in lat])
        ax.set_ylabel("microseconds")
        ax.legend(fontsize=8)
    ax.set_title("ring publish-to-read latency, 1 reader (default wait)", fontsize=10)

    e2e_raw = raw.get("end to end") or {}
    sizes = e2e_raw.get("sizes", [])
    ax = axes[1][0]
    if sizes:
        for name, style in (("pipeline", "o-"), ("cached", "^:"), ("naive", "s--")):
            pts = [(s["rows"], s[name]["seconds"]) for s in sizes if name in s]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=name)
                for x_, y_ in pts:
                    ax.annotate(
                        f"{y_:.1f}s", (x_, y_), textcoords="offset points",
                        xytext=(6, -10 if name == "pipeline" else 6), fontsize=8,
                    )
        lin = e2e_raw.get("linearity") or {}
        if lin:
            xs_ = [s["rows"] for s in sizes]
            fit = [lin["fixed_seconds"] + lin["us_per_record"] * 1e-6 * x for x in xs_]
            ax.plot(xs_, fit, ":", color="grey", label="fit: fixed + linear")
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log(ax.yaxis)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: size_label(int(v))))
        ax.set_xticks([s["rows"] for s in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("rows")
        ax.set_ylabel("wall seconds (start to exit)")
        ax.legend(fontsize=8)
    ax.set_title("end to end at --speed max: pipeline vs naive", fontsize=10)

    ax = axes[1][1]
    if sizes:
        procs: list[tuple[str, str]] = [("pipeline", "engine"), ("pipeline", "processor"),
                                        ("naive", "producer"), ("naive", "consumer")]  # fmt: skip
        xs = range(len(sizes))
        width = 0.2
        for k, (design, proc) in enumerate(procs):
            vals = [s[design]["peak_rss_kib"][proc] / 1024 if design in s else 0 for s in sizes]
            pos = [i + (k - 1.5) * width for i in xs]
            ax.bar(pos, vals, width, label=f"{design} {proc}")
            for p_, v in zip(pos, vals, strict=True):
                if v:
                    ax.text(p_, v * 1.05, f"{v:.0f}", ha="center", fontsize=7)
                elif design == "naive":
                    ax.text(p_, 12, "not run", ha="center", va="bottom", rotation=90, fontsize=7)
        ax.set_yscale("log")
        plain_log(ax.yaxis)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([size_label(s["rows"]) + " rows" for s in sizes])
        ax.set_ylabel("peak RSS, MiB")
        ax.legend(fontsize=8)
    ax.set_title("peak RSS of each process", fontsize=10)

    fig.suptitle(
        f"quote-replay comparison ({info['commit']}): {info['cpu']}, {info['cores']} cores, "
        f"Python {info['python']}\n{cmd}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run every section, print the table; write JSON and chart if asked."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: a minute or two")
    ap.add_argument("--json", type=Path, metavar="PATH", help="write every figure as JSON")
    ap.add_argument("--chart", type=Path, metavar="PATH", help="write a PNG chart")
    ap.add_argument("--only", action="append", choices=list(SECTIONS), help="run these sections")
    args = ap.parse_args(argv)
    sz = QUICK if args.quick else FULL
    cmd = "python -m benchmarks.compare" + "".join(
        " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    info = machine()
    started = time.time()
    print(f"command: {cmd}")
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['memory']}, {info['os']}; "
        f"Python {info['python']}; "
        + ", ".join(f"{k} {v}" for k, v in info["packages"].items())
        + f"; commit {info['commit']}"
        + (f"; env {info['env']}" if info["env"] else "")
    )
    print(f"sizes: {'quick' if args.quick else 'full'} {sz}")
    print(f"bytecode: the project byte-compiled ({'ok' if e2e.byte_compile() else 'FAILED'}), as "
          "Python's default leaves it; programs then start without compiling it")
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    loads: dict[str, list[float]] = {}
    failed = []
    for name, fn in SECTIONS.items():
        if args.only and name not in args.only:
            continue
        before = os.getloadavg()[0]
        print(f"\n== {name} (load average {before:.2f})", flush=True)
        t = time.perf_counter()
        try:
            got, raw[name] = fn(sz, lambda line: print(line, flush=True))
            rows += got
        except Exception as exc:
            traceback.print_exc()
            failed.append(name)
            rows.append(Row("FAILED", name, f"{type(exc).__name__}: {exc}"[:300]))
        loads[name] = [before, os.getloadavg()[0]]
        print(f"   {name}: {time.perf_counter() - t:.0f}s, load average after "
              f"{loads[name][1]:.2f}", flush=True)  # fmt: skip
    print(f"\n== the table ({time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {cmd})")
    for line in table(rows):
        print(line)
    goals = [r for r in rows if r.met is not None]
    print(f"goals met: {sum(bool(r.met) for r in goals)} of {len(goals)}"
          + (f"; FAILED sections: {', '.join(failed)}" if failed else ""))  # fmt: skip
    left = my_leftover_rings()
    if left:
        print(f"shared memory left behind: {left}", file=sys.stderr)
        failed.append("leftover rings")
    report = {
        "command": cmd,
        "machine": info,
        "quick": args.quick,
        "sizes": asdict(sz),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": time.time() - started,
        "load_average": loads,
        "rows": [r.as_dict() for r in rows],
        "raw": raw,
        "failed": failed,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
        print(f"wrote {args.json}")
    if args.chart:
        args.chart.parent.mkdir(parents=True, exist_ok=True)
        chart(args.chart, rows, raw, info, cmd)
        print(f"wrote {args.chart}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
