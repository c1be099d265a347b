"""End to end: the pipeline (engine + processor at ``--speed max``) against the naive design.

``python -m benchmarks.e2e [--sizes 100k,1M,10M] [--naive-sizes 100k,1M] [--repeat 3] [--json]``

For each size it generates a realistic historical CSV (``python -m data.generate --kind
historical --bad-rows 0``) in a temporary directory, reads it once so that the page cache is
warm, then runs, interleaved round after round (the order rotating) so that every ratio compares
runs made side by side:

``pipeline``
    ``tools.pipeline.replay``: ``python -m engine --speed max --exit-at-end`` and
    ``python -m processor --exit-at-end`` as separate programs on one ring, from the start of
    both to the exit of both (interpreter start-up, the CSV load and sort included).
``naive``
    ``benchmarks.naive``: csv module, a stable sort, one ``multiprocessing.Queue`` message per
    row, per-line f-strings and ``Decimal``; from the spawn of its two processes to their exit.
``cached`` (at the naive sizes)
    the pipeline again on the same file, its engine finding the parse cache an earlier replay
    left in its state directory (checkpoint removed: the replay starts from the top): what
    replaying a recorded day a second time costs. Not the goal's figure (that is ``pipeline``).

The project is byte-compiled first (``byte_compile``): programs start as an installed copy does.
Each run is checked: both logs have one line per input row, and where both designs ran their
logs are compared byte for byte (every round). Peak RSS of each process is the kernel's
high-water mark ``VmHWM``: polled from ``/proc/<pid>/status`` every 10 ms until the pipeline's
processes exit (:class:`PeakRss`); the naive processes read their own just before they exit.
CPU time of the pipeline's processes comes from ``os.wait4`` as they are reaped. The figures
are medians over ``--repeat`` rounds. The naive design takes minutes at 10M rows, so by
default it runs at 100k and 1M only.

Growth: time against size should be a fixed start-up cost plus a linear part; the summary fits
``seconds = fixed + per_record * rows`` and reports each size's deviation from the fit and the
per-record cost between successive sizes.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import filecmp
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import tools.pipeline as pipeline

ROOT = Path(__file__).resolve().parents[1]
GOAL_AT_1M = 30.0  # the pipeline at least this many times faster than naive at 1M rows
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z \w+ \w+ (\"[^\"]*\"|\S+)")


def parse_size(text: str) -> int:
    """``100k`` -> 100000, ``1M`` -> 1000000, ``2_000`` -> 2000 (decimal suffixes).

    >>> [parse_size(t) for t in ("100k", "1M", "10M", "2_500")]
    [100000, 1000000, 10000000, 2500]
    """
    t = text.strip().replace("_", "")
    scale = {"k": 1_000, "K": 1_000, "M": 1_000_000, "G": 1_000_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if scale > 1 else t) * scale)


def size_list(text: str) -> list[int]:
    """A comma list of sizes (see :func:`parse_size`); empty text gives an empty list."""
    return [parse_size(p) for p in text.split(",") if p.strip()]


def size_label(n: int) -> str:
    """``1000000`` -> ``1M``, ``100000`` -> ``100k``.

    >>> size_label(10_000_000), size_label(100_000), size_label(1234)
    ('10M', '100k', '1234')
    """
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


# -- inputs ---------------------------------------------------------------------------------


def generate_csv(rows: int, out_dir: Path, seed: int | None = None) -> Path:
    """A realistic historical CSV of ``rows`` rows, none rejectable, in ``out_dir``."""
    cmd = [sys.executable, "-m", "data.generate", "--rows", str(rows), "--out-dir", str(out_dir),
           "--kind", "historical", "--bad-rows", "0"]  # fmt: skip
    if seed is not None:
        cmd += ["--seed", str(seed)]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return out_dir / "historical_sample.csv"


def warm(path: Path) -> None:
    """Read a file once so that every contender reads it from the page cache."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def count_lines(path: Path) -> int:
    """Newlines in a file."""
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 22), b""))


def same_logs(a_dir: Path, b_dir: Path) -> bool:
    """Whether both ``mid_prices.log`` and both ``errors.log`` are byte for byte equal."""
    return all(
        filecmp.cmp(a_dir / name, b_dir / name, shallow=False)
        for name in ("mid_prices.log", "errors.log")
    )


# -- the pipeline, with each process's peak RSS ------------------------------------------


def vm_hwm_kib(pid: int) -> int | None:
    """Peak resident set size (``VmHWM``) of process ``pid`` so far, in KiB; None once it is
    gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


class PeakRss:
    """A thread polling ``VmHWM`` of registered processes every ``interval`` seconds until
    they exit; ``peak[name]`` is the last (highest) value seen, in KiB.

    The kernel's high-water mark is monotonic, so the last reading before exit misses at most
    what grew in the last interval. (``ru_maxrss`` from ``wait4`` cannot serve: for a child
    started by fork + exec it includes the parent's RSS at the fork.)
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak: dict[str, int] = {}
        self._pids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def add(self, name: str, pid: int) -> None:
        """Watch process ``pid`` under ``name``."""
        with self._lock:
            self._pids[name] = pid
        self._poll()

    def _poll(self) -> None:
        with self._lock:
            for name, pid in self._pids.items():
                kib = vm_hwm_kib(pid)
                if kib is not None:
                    self.peak[name] = max(kib, self.peak.get(name, 0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def _instrumented(usage: dict[str, Any], rss: PeakRss) -> Iterator[None]:
    """While active, ``tools.pipeline.replay``'s processes are watched by ``rss`` (as
    ``engine`` and ``processor``) and reaped with ``os.wait4``, which also returns the
    kernel's accounting of each: ``usage[what] = rusage`` (CPU time)."""
    original_start, original_wait = pipeline.start, pipeline.wait

    def start(module: str, args: Sequence[str], log: Path | None = None) -> Any:
        proc = original_start(module, args, log)
        rss.add(module, proc.pid)
        return proc

    def wait(proc: Any, what: str, timeout: float) -> None:
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        usage[what] = rusage
        if expired.is_set():
            raise RuntimeError(f"{what} did not finish within {timeout}s")
        if proc.returncode != 0:
            raise RuntimeError(f"{what} exited with {proc.returncode}")

    pipeline.start, pipeline.wait = start, wait
    try:
        yield
    finally:
        pipeline.start, pipeline.wait = original_start, original_wait


def _log_times(stderr: str) -> dict[str, float]:
    """Wall-clock time (epoch seconds) of the first log line of each message."""
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        m = _LOG_TIME.match(line)
        if m:
            stamp = datetime.fromisoformat(m.group(1) + "+00:00").timestamp()
            out.setdefault(m.group(2).strip('"'), stamp)
    return out


def phases(t0: float, engine_stderr: str, processor_stderr: str) -> dict[str, float]:
    """Where the pipeline's wall time went, from the programs' log lines (seconds after t0).

    ``engine up``: interpreter start and imports until the engine's first log line;
    ``loaded``: CSV parsed and sorted; ``ring ready``; ``started`` (the processor attached);
    ``published``: the last record published; ``processor done``: its summary line.
    """
    eng, proc = _log_times(engine_stderr), _log_times(processor_stderr)
    marks = {
        "engine up": min(eng.values(), default=t0),
        "processor up": min(proc.values(), default=t0),
        "loaded": eng.get("historical input loaded", t0),
        "ring ready": eng.get("ring ready", t0),
        "processor attached": proc.get("attached", t0),
        "started": eng.get("started", t0),
        "published": eng.get("historical replay complete", t0),
        "processor done": proc.get("summary", t0),
        "engine done": eng.get("stopped", t0),
    }
    return {k: round(v - t0, 3) for k, v in marks.items()}


PACKAGES = ("common", "engine", "processor", "ringbuffer", "tools", "benchmarks")


def byte_compile() -> bool:
    """Write the project's bytecode caches, as any run with Python's defaults leaves them.

    With ``PYTHONDONTWRITEBYTECODE`` set (as in some CI shells) nothing writes them, and every
    program start would compile the project from source (50-100 ms here), a cost no installed
    program pays. Returns whether all compiled.
    """
    return all(compileall.compile_dir(ROOT / p, quiet=1) for p in PACKAGES)


def run_pipeline(
    csv: Path, out_dir: Path, timeout: float = 1800.0, cache_in: Path | None = None
) -> dict[str, Any]:
    """One ``tools.pipeline.replay`` of ``csv``; its time, counts, peak RSS and phases.

    With ``cache_in``, the engine's state directory is that folder and only the parse cache in
    it is kept between runs (checkpoint and rejects go, so the replay starts from the top);
    otherwise the state goes with the run.
    """
    shutil.rmtree(out_dir, ignore_errors=True)
    if cache_in is not None and cache_in.exists():
        for p in cache_in.iterdir():
            if p.name == "cache":
                continue
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
    usage: dict[str, Any] = {}
    wall0 = time.time()
    with PeakRss() as rss, _instrumented(usage, rss):
        rep = pipeline.replay(csv, out_dir, timeout=timeout, state_dir=cache_in)
    mids, errors = count_lines(rep.mid_log), count_lines(rep.error_log)
    if cache_in is None:
        shutil.rmtree(rep.state_dir, ignore_errors=True)  # the engine's Arrow cache: big
    return {
        "seconds": rep.seconds,
        "mids": mids,
        "errors": errors,
        "peak_rss_kib": dict(sorted(rss.peak.items())),
        "cpu_seconds": {k: round(v.ru_utime + v.ru_stime, 3) for k, v in usage.items()},
        "phases": phases(wall0, rep.engine_stderr, rep.processor_stderr),
    }


def run_naive(csv: Path, out_dir: Path, timeout: float = 3600.0) -> dict[str, Any]:
    """One naive replay (``python -m benchmarks.naive --json`` in a fresh interpreter)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.naive", "--csv", str(csv), "--out-dir", str(out_dir),
         "--json"],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the benchmark --------------------------------------------------------------------------


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median time (lower middle)."""
    return sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]


def _check_counts(name: str, rows: int, run: dict[str, Any]) -> None:
    if run["mids"] + run["errors"] != rows:
        raise RuntimeError(
            f"{name}: {run['mids']:,} mid + {run['errors']:,} error lines for {rows:,} rows"
        )


def measure_size(
    rows: int,
    tmp: Path,
    *,
    naive: bool,
    repeat: int,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Both contenders (the naive one if ``naive``) on one generated CSV of ``rows`` rows."""
    work = tmp / f"e2e-{rows}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        csv = generate_csv(rows, work)
        warm(csv)
        size = csv.stat().st_size
        out(f"  {size_label(rows)} rows: generated {size / 1e6:,.0f} MB in "
            f"{time.perf_counter() - t:.1f}s")  # fmt: skip
        runs: dict[str, list[dict[str, Any]]] = {"pipeline": [], "naive": [], "cached": []}
        makers = {
            "pipeline": lambda: run_pipeline(csv, work / "pipeline"),
            "naive": lambda: run_naive(csv, work / "naive"),
            "cached": lambda: run_pipeline(csv, work / "cached", cache_in=work / "cache-state"),
        }
        names = ["pipeline", "naive", "cached"] if naive else ["pipeline"]
        if naive:  # an untimed first replay leaves the engine's parse cache for "cached"
            _check_counts("cache", rows, makers["cached"]())
        for r in range(repeat):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                run = makers[name]()
                _check_counts(name, rows, run)
                runs[name].append(run)
                out(f"    round {r + 1}: {name:8} {run['seconds']:8.2f}s")
            if naive:
                for other in ("pipeline", "cached"):
                    if not same_logs(work / other, work / "naive"):
                        raise RuntimeError(
                            f"{size_label(rows)}: the logs of {other} and naive differ"
                        )
                out("    logs byte-identical: yes")
        result: dict[str, Any] = {"rows": rows, "csv_bytes": size}
        for name in names:
            med = _median(runs[name])
            result[name] = {
                **med,
                "records_per_s": rows / med["seconds"],
                "all_seconds": [x["seconds"] for x in runs[name]],
            }
        if naive:
            result["byte_identical"] = True
            result["ratio"] = result["naive"]["seconds"] / result["pipeline"]["seconds"]
            result["ratio_paired"] = [
                n["seconds"] / p["seconds"]
                for p, n in zip(runs["pipeline"], runs["naive"], strict=True)
            ]
            result["cached_ratio"] = result["naive"]["seconds"] / result["cached"]["seconds"]
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def linearity(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Least-squares fit ``seconds = fixed + per_record * rows`` of the pipeline's medians,
    each size's deviation from it, and the per-record cost between successive sizes."""
    xs = [float(r["rows"]) for r in results]
    ys = [r["pipeline"]["seconds"] for r in results]
    if len(xs) < 2:
        return {}
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    fixed = my - slope * mx
    steps = [
        {
            "from": size_label(int(a)),
            "to": size_label(int(b)),
            "us_per_record": (yb - ya) / (b - a) * 1e6,
        }
        for a, b, ya, yb in zip(xs, xs[1:], ys, ys[1:], strict=False)
    ]
    dev = [y / (fixed + slope * x) - 1 for x, y in zip(xs, ys, strict=True)]
    costs = [s["us_per_record"] for s in steps]
    return {
        "fixed_seconds": fixed,
        "us_per_record": slope * 1e6,
        "deviation": dev,
        "steps": steps,
        # linear enough: the marginal cost per record varies by less than 2x between steps
        "roughly_linear": bool(costs) and max(costs) <= 2 * min(costs) and min(costs) > 0,
    }


def measure(
    sizes: Sequence[int],
    naive_sizes: Sequence[int],
    repeat: int,
    out: Callable[[str], None] = print,
    tmp_root: str | None = None,
) -> dict[str, Any]:
    """Every size (the naive design at ``naive_sizes``); the rows of the report."""
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-", dir=tmp_root) as tmp:
        for rows in sizes:
            results.append(
                measure_size(rows, Path(tmp), naive=rows in naive_sizes, repeat=repeat, out=out)
            )
    return {"sizes": results, "linearity": linearity(results), "goal_at_1M": GOAL_AT_1M}


def table(report: dict[str, Any]) -> list[str]:
    """The report as printable lines."""
    lines = [
        f"{'rows':>6} {'design':<9}{'seconds':>9}{'records/s':>13}{'vs naive':>10}"
        f"{'peak RSS MiB (each process)':>40}"
    ]
    for r in report["sizes"]:
        for name in ("pipeline", "naive", "cached"):
            if name not in r:
                if name == "naive":
                    label = size_label(r["rows"])
                    lines.append(f"{label:>6} {'naive':<9}{'not run (too slow)':>32}")
                continue
            x = r[name]
            rss = ", ".join(f"{k} {v / 1024:,.0f}" for k, v in x["peak_rss_kib"].items())
            vs = {"pipeline": r.get("ratio"), "cached": r.get("cached_ratio")}.get(name)
            vs = f"{vs:.1f}x" if vs else "-"
            lines.append(
                f"{size_label(r['rows']):>6} {name:<9}{x['seconds']:9.2f}"
                f"{x['records_per_s']:13,.0f}{vs:>10}{rss:>40}"
            )
    lin = report.get("linearity")
    if lin:
        steps = ", ".join(f"{s['from']}->{s['to']} {s['us_per_record']:.3f}" for s in lin["steps"])
        dev = ", ".join(f"{d:+.0%}" for d in lin["deviation"])
        lines.append(
            f"pipeline growth: fit {lin['fixed_seconds']:.2f}s + "
            f"{lin['us_per_record']:.3f} us/record (deviation per size {dev}); "
            f"marginal us/record {steps}; "
            f"roughly linear: {'yes' if lin['roughly_linear'] else 'NO'}"
        )
    for r in report["sizes"]:
        if "phases" in r.get("pipeline", {}):
            ph = r["pipeline"]["phases"]
            lines.append(
                f"pipeline phases at {size_label(r['rows'])} (s after start): "
                + ", ".join(f"{k} {v:.2f}" for k, v in ph.items())
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the end-to-end benchmark and print the table (or ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=size_list, default=size_list("100k,1M,10M"))
    ap.add_argument("--naive-sizes", type=size_list, default=size_list("100k,1M"))
    ap.add_argument("--repeat", type=int, default=3, help="rounds per size (median shown)")
    ap.add_argument("--tmp", help="directory for the generated CSVs (default: the system's)")
    ap.add_argument("--json", action="store_true", help="print JSON after the table")
    args = ap.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    byte_compile()
    report = measure(args.sizes, args.naive_sizes, args.repeat, tmp_root=args.tmp)
    print()
    for line in table(report):
        print(line)
    if args.json:
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
