"""``python -m processor.plot``: pictures of what a processor wrote, to PNG and to one
self-contained HTML file.

Three figures:

- ``mid_prices.png``: the mid price over time of chosen tickers (``--tickers``), else of the
  busiest ``--top`` N, one panel each (their prices differ by orders of magnitude), from the
  ``--parquet`` output or a ``mid_prices.log`` in the extended format (the spec format carries
  no ticker: then the panel says so);
- ``latency.png``: the latency distribution of a historical replay, the threshold marked and the
  share of records above it. The full distribution is in the replayed CSV's ``latency`` column
  (``--input``): every row with a valid latency. Without ``--input`` only ``errors.log`` is left,
  which names the latency of the records *above* the threshold only: the figure then shows that
  tail, and the share is those lines over every record of both logs;
- ``records_per_second.png``: records per second over the replay, by the records' own
  timestamps (the logs carry no wall-clock time), split into mids written, records dropped for
  their latency and invalid quotes; the bucket width adapts to the replay's span (10 ms to 1 h).

``plots.html`` holds the three as inline PNGs (base64) with the numbers: no external asset.
The threshold is ``--latency-threshold``, else the one ``errors.log`` names (the replay's),
else ``$LATENCY_THRESHOLD``, else 20.

Reads are vectorised (polars: a log is read as one column of lines and cut with string
expressions), so 10M records take seconds. Exit codes (contract section 4): 0 written, 2 a
usage error (a missing or unreadable input, a file that is not what its flag says, an unknown
ticker), 1 a runtime failure.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from common.cli import Parser, UsageError, run_program
from common.log import get_logger
from processor.config import DEFAULT_THRESHOLD, THRESHOLD_ENV, parse_threshold

COMPONENT = "plot"
TIMESTAMP = "%Y-%m-%d %H:%M:%S%.3f"
#: Points drawn per ticker at most (evenly spaced picks beyond: the figure's pixels cannot
#: show more).
MAX_POINTS = 20_000
#: Bucket widths (seconds) for records per second: the first giving at most MAX_BUCKETS buckets.
BUCKETS = (0.01, 0.1, 1.0, 10.0, 60.0, 600.0, 3600.0)
MAX_BUCKETS = 400
FIGURES = ("mid_prices.png", "latency.png", "records_per_second.png")


@dataclass
class Data:
    """What the inputs hold, as columns."""

    mids: pl.DataFrame | None = None  # time, ticker?, mid
    mid_source: str = ""
    has_tickers: bool = False
    errors: pl.DataFrame | None = None  # time, latency (null for an invalid quote)
    latencies: np.ndarray | None = None  # from the input CSV
    threshold: float = DEFAULT_THRESHOLD
    threshold_source: str = "default"
    notes: list[str] = field(default_factory=list)


def read_lines(path: Path, flag: str) -> pl.Series:
    """The lines of ``path`` as one string column (no quoting, no header)."""
    try:
        if path.stat().st_size == 0:
            return pl.Series("line", [], dtype=pl.String)
        frame = pl.read_csv(
            path, has_header=False, separator="\x1f", quote_char=None, new_columns=["line"],
            schema_overrides=[pl.String], truncate_ragged_lines=True,
        )  # fmt: skip
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such file") from None
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UsageError(f"{flag} {path}: cannot read: {exc}") from None
    return frame.get_column("line").fill_null("")


def parse_time(col: pl.Expr) -> pl.Expr:
    return col.str.strptime(pl.Datetime("ms"), TIMESTAMP, strict=False)


def read_mid_log(path: Path) -> tuple[pl.DataFrame, bool]:
    """``(time, ticker?, mid)`` of a mid_prices.log, spec or extended (told by its first line);
    whether it has tickers. A line that does not parse is a usage error naming it."""
    lines = read_lines(path, "--mid-log")
    extended = len(lines) > 0 and ", " in lines[0][25:]
    rest = pl.col("line").str.slice(25)
    columns = [parse_time(pl.col("line").str.slice(0, 23)).alias("time")]
    if extended:  # the mid is after the last ", " (a ticker may hold one)
        mid = rest.str.extract(r", ([^,]*)$", 1)
        ticker = rest.str.slice(0, rest.str.len_chars() - mid.str.len_chars() - 2)
        columns += [ticker.alias("ticker"), mid.cast(pl.Float64, strict=False).alias("mid")]
    else:
        columns.append(rest.cast(pl.Float64, strict=False).alias("mid"))
    frame = lines.to_frame().select(columns)
    check_parsed(frame, path, "--mid-log", "a mid_prices.log line")
    return frame, extended


def check_parsed(frame: pl.DataFrame, path: Path, flag: str, what: str) -> None:
    bad = frame.select(pl.any_horizontal(pl.all().is_null()).arg_true().first()).item()
    if bad is not None:
        raise UsageError(f"{flag} {path}: line {bad + 1} is not {what}")


def read_error_log(path: Path) -> tuple[pl.DataFrame, float | None]:
    """``(time, latency)`` of an errors.log (latency null for an invalid quote) and the
    threshold its latency lines name (None when there is none)."""
    lines = read_lines(path, "--error-log")
    line = pl.col("line")
    # "No mid price at <23-character timestamp> as latency <l>ms is bigger than <t>ms" or
    # "... as quote is invalid (bid <b>, ask <a>)"
    is_latency = line.str.slice(39, 12) == " as latency "
    parts = line.str.slice(51).str.split_exact("ms is bigger than ", 1).struct
    frame = lines.to_frame().select(
        parse_time(line.str.slice(16, 23)).alias("time"),
        pl.when(is_latency).then(parts.field("field_0").cast(pl.Float64, strict=False))
        .alias("latency"),
        pl.when(is_latency).then(parts.field("field_1")).alias("threshold"),
        (line.str.starts_with("No mid price at ")
         & (is_latency | (line.str.slice(39, 22) == " as quote is invalid ("))).alias("ok"),
        is_latency.alias("is_latency"),
    )  # fmt: skip
    bad = frame.select(
        (~pl.col("ok") | pl.col("time").is_null()
         | (pl.col("is_latency") & pl.col("latency").is_null())).arg_true().first()
    ).item()  # fmt: skip
    if bad is not None:
        raise UsageError(f"--error-log {path}: line {bad + 1} is not an errors.log line")
    named = frame.get_column("threshold").drop_nulls()
    threshold = None
    if len(named):
        text = named[0].removesuffix("ms")
        threshold = parse_threshold(text, f"--error-log {path}: the threshold")
    return frame.select("time", "latency"), threshold


def read_parquet(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path, columns=["timestamp", "ticker", "mid"])
    except FileNotFoundError:
        raise UsageError(f"--parquet {path}: no such file") from None
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UsageError(f"--parquet {path}: not the processor's Parquet output: {exc}") from None
    return frame.select(
        pl.col("timestamp").dt.replace_time_zone(None).dt.cast_time_unit("ms").alias("time"),
        "ticker", "mid",
    )  # fmt: skip


def read_latencies(path: Path) -> np.ndarray:
    """The valid latencies (finite, >= 0, ms) of a historical CSV's ``latency`` column."""
    try:
        frame = (
            pl.scan_csv(path, infer_schema=False)
            .select(pl.col("latency").cast(pl.Float64, strict=False))
            .filter(pl.col("latency").is_finite() & (pl.col("latency") >= 0))
            .collect()
        )
    except FileNotFoundError:
        raise UsageError(f"--input {path}: no such file") from None
    except pl.exceptions.ColumnNotFoundError:
        raise UsageError(f"--input {path}: no latency column (a historical CSV has one)") from None
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UsageError(f"--input {path}: cannot read: {exc}") from None
    return frame.get_column("latency").to_numpy()


def load(args: argparse.Namespace) -> Data:
    data = Data()
    if args.parquet is not None:
        data.mids, data.has_tickers = read_parquet(args.parquet), True
        data.mid_source = str(args.parquet)
    elif args.mid_log is not None or Path("mid_prices.log").exists():
        path = args.mid_log or Path("mid_prices.log")
        data.mids, data.has_tickers = read_mid_log(path)
        data.mid_source = str(path)
        if not data.has_tickers:
            data.notes.append(f"{path} is in the spec format (no ticker): mids are not drawn; "
                              "run the processor with --format extended or --parquet")  # fmt: skip
    if args.error_log is not None or Path("errors.log").exists():
        data.errors, named = read_error_log(args.error_log or Path("errors.log"))
    else:
        named = None
    if data.mids is None and data.errors is None and args.input is None:
        raise UsageError("nothing to plot: give --mid-log, --parquet, --error-log or --input "
                         "(no mid_prices.log or errors.log here)")  # fmt: skip
    if args.input is not None:
        data.latencies = read_latencies(args.input)
    if args.latency_threshold is not None:
        data.threshold = parse_threshold(args.latency_threshold, "--latency-threshold")
        data.threshold_source = "--latency-threshold"
    elif named is not None:
        data.threshold, data.threshold_source = named, "errors.log"
    elif THRESHOLD_ENV in os.environ:
        data.threshold = parse_threshold(os.environ[THRESHOLD_ENV], f"environment {THRESHOLD_ENV}")
        data.threshold_source = f"${THRESHOLD_ENV}"
    return data


def choose_tickers(data: Data, tickers: list[str] | None, top: int) -> list[str]:
    if data.mids is None or not data.has_tickers:
        if tickers:
            raise UsageError("--tickers needs tickers: a mid log in the extended format "
                             "or --parquet")  # fmt: skip
        return []
    counts = data.mids.group_by("ticker").len().sort(["len", "ticker"], descending=[True, False])
    if tickers:
        known = set(counts.get_column("ticker").to_list())
        unknown = [t for t in tickers if t not in known]
        if unknown:
            raise UsageError(f"--tickers: not in {data.mid_source}: {', '.join(unknown)}")
        return tickers
    return counts.get_column("ticker").head(top).to_list()


# ---- figures --------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _time_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _note(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes,
            color="#57606a")  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def figure_mids(data: Data, tickers: list[str]) -> Any:
    plt = _pyplot()
    n = max(1, len(tickers))
    fig, axes = plt.subplots(n, 1, figsize=(11, 1.2 + 2.1 * n), sharex=True, squeeze=False)
    if not tickers:
        why = data.notes[0] if data.notes else "no mid prices to draw"
        if data.mids is None:
            why = "no mid price input (--mid-log or --parquet)"
        elif data.has_tickers:
            why = "no mid price records"
        _note(axes[0][0], why)
    else:
        assert data.mids is not None
        picked = data.mids.filter(pl.col("ticker").is_in(tickers)).sort("time", maintain_order=True)
        parts = picked.partition_by("ticker", as_dict=True, maintain_order=True)
        for ax, ticker in zip(axes[:, 0], tickers, strict=True):
            part = parts[(ticker,)]
            t, y = part.get_column("time").to_numpy(), part.get_column("mid").to_numpy()
            if len(t) > MAX_POINTS:
                keep = np.linspace(0, len(t) - 1, MAX_POINTS).astype(np.int64)
                t, y = t[keep], y[keep]
            ax.step(t, y, where="post", lw=0.9, color="#0969da")
            ax.set_title(f"{ticker}  ({len(part):,} mids)", loc="left", fontsize=10)
            ax.grid(alpha=0.3)
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        _time_axis(axes[-1][0])
        axes[-1][0].set_xlabel("record timestamp (UTC)")
    fig.suptitle(f"Mid price over time: {data.mid_source or 'no input'}", x=0.01, ha="left")
    fig.tight_layout()
    return fig


def latency_summary(data: Data) -> dict[str, float | int | str]:
    """The latency figures: source, records, records above the threshold, their share."""
    t = data.threshold
    if data.latencies is not None:
        lat = data.latencies
        above = int(np.count_nonzero(lat > t))
        return {"source": "input CSV", "records": len(lat), "above": above,
                "share": above / len(lat) if len(lat) else 0.0}  # fmt: skip
    if data.errors is not None:
        above = int(data.errors.get_column("latency").is_not_null().sum())
        records = len(data.errors) + (0 if data.mids is None else len(data.mids))
        return {"source": "errors.log (tail only)", "records": records, "above": above,
                "share": above / records if records else 0.0}  # fmt: skip
    return {"source": "none", "records": 0, "above": 0, "share": 0.0}


def figure_latency(data: Data, summary: dict[str, float | int | str]) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.2))
    if data.latencies is not None:
        lat = data.latencies
    elif data.errors is not None:
        lat = data.errors.get_column("latency").drop_nulls().to_numpy()
    else:
        lat = np.empty(0)
    t = data.threshold
    if len(lat) == 0:
        _note(ax, "no latencies: give the replayed CSV with --input (or an errors.log)")
    else:
        bins = np.linspace(lat.min(), max(lat.max(), t * 1.05, lat.min() + 1e-9), 121)
        counts, edges = np.histogram(lat, bins=bins)
        colours = np.where(edges[:-1] >= t, "#cf222e", "#0969da")
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=colours, lw=0)
        ax.axvline(t, color="#cf222e", ls="--", lw=1.2)
        share = float(summary["share"])
        ax.text(0.99, 0.95,
                f"threshold {t:g} ms ({data.threshold_source})\n"
                f"{share:.2%} above: {int(summary['above']):,} of {int(summary['records']):,}",
                ha="right", va="top", transform=ax.transAxes,
                bbox={"facecolor": "white", "edgecolor": "#d0d7de"})  # fmt: skip
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("records")
        ax.grid(alpha=0.3)
    title = "Latency distribution"
    if summary["source"] == "errors.log (tail only)":
        title += ": errors.log names only the records above the threshold (give --input)"
    else:
        title += f": {summary['source']}"
    ax.set_title(title, loc="left", fontsize=11)
    fig.tight_layout()
    return fig


def rates(data: Data) -> tuple[float, np.ndarray, dict[str, np.ndarray]]:
    """Bucket width (s), bucket starts (datetime64[ms]) and records per second per kind."""
    kinds: dict[str, np.ndarray] = {}
    if data.mids is not None:
        kinds["mid written"] = data.mids.get_column("time").to_numpy().astype("int64")
    if data.errors is not None:
        ms = data.errors.get_column("time").to_numpy().astype("int64")
        latency = data.errors.get_column("latency").is_not_null().to_numpy()
        kinds["dropped: latency"] = ms[latency]
        kinds["invalid quote"] = ms[~latency]
    present = [v for v in kinds.values() if len(v)]
    if not present:
        return 1.0, np.empty(0, "datetime64[ms]"), {}
    lo = min(int(v.min()) for v in present)
    hi = max(int(v.max()) for v in present)
    width = next((w for w in BUCKETS if (hi - lo) / (w * 1000) < MAX_BUCKETS), BUCKETS[-1])
    step = int(width * 1000)
    n = (hi - lo) // step + 1
    out = {k: np.bincount((v - lo) // step, minlength=n) / width for k, v in kinds.items()}
    starts = (lo + np.arange(n) * step).astype("datetime64[ms]")
    return width, starts, out


def figure_rates(data: Data) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 3.8))
    width, starts, per_kind = rates(data)
    colours = {"mid written": "#0969da", "dropped: latency": "#cf222e", "invalid quote": "#bf8700"}
    if not per_kind:
        _note(ax, "no records in the logs")
    else:
        ax.stackplot(starts, *per_kind.values(), labels=list(per_kind),
                     colors=[colours[k] for k in per_kind], step="post")  # fmt: skip
        ax.legend(loc="upper right", fontsize=9)
        _time_axis(ax)
        ax.set_ylabel("records per second")
        ax.set_xlabel(f"record timestamp (UTC), buckets of {width:g} s")
        ax.grid(alpha=0.3)
    ax.set_title("Records per second over the replay (by record timestamp)", loc="left",
                 fontsize=11)  # fmt: skip
    fig.tight_layout()
    return fig


# ---- output ---------------------------------------------------------------------------------


def png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    _pyplot().close(fig)
    return buf.getvalue()


def html_page(images: dict[str, bytes], rows: list[tuple[str, str]]) -> str:
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                    for k, v in rows)  # fmt: skip
    figures = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"><figcaption>{html.escape(name)}</figcaption></figure>'
        for name, png in images.items()
    )
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>Replay plots</title><style>body{font-family:system-ui,sans-serif;margin:16px;"
        "color:#1f2328}table{border-collapse:collapse}th{text-align:left;padding:2px 12px 2px 0;"
        "color:#57606a;font-weight:600}td{font-family:ui-monospace,monospace}"
        "img{max-width:100%}figure{margin:16px 0}figcaption{color:#57606a;font-size:12px}"
        "</style></head><body><h1>Replay plots</h1>"
        f"<table>{table}</table>{figures}</body></html>\n"
    )


def summary_rows(data: Data, tickers: list[str], lat: dict[str, float | int | str],
                 width: float) -> list[tuple[str, str]]:  # fmt: skip
    rows = [("mid source", data.mid_source or "none")]
    if data.mids is not None:
        rows.append(("mid records", f"{len(data.mids):,}"))
        if data.has_tickers:
            rows.append(("tickers", f"{data.mids.get_column('ticker').n_unique():,}"))
    if data.errors is not None:
        dropped = int(data.errors.get_column("latency").is_not_null().sum())
        rows += [("errors.log: latency above threshold", f"{dropped:,}"),
                 ("errors.log: invalid quote", f"{len(data.errors) - dropped:,}")]  # fmt: skip
    rows += [
        ("threshold", f"{data.threshold:g} ms ({data.threshold_source})"),
        ("latency source", str(lat["source"])),
        ("share above the threshold",
         f"{float(lat['share']):.4%} ({int(lat['above']):,} of {int(lat['records']):,})"),
        ("tickers drawn", ", ".join(tickers) or "none"),
        ("records-per-second bucket", f"{width:g} s"),
    ]  # fmt: skip
    rows += [("note", n) for n in data.notes]
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m processor.plot", component=COMPONENT,
        description=__doc__.split("\n\n")[0].replace("``", "") if __doc__ else None,
        epilog="Example: python -m processor.plot --mid-log demo-out/mid_prices.log "
               "--error-log demo-out/errors.log --input data/historical_sample.csv --out plots\n"
               "exit codes: 0 written, 1 runtime failure, 2 usage (bad flag, missing or wrong "
               "input, unknown ticker)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--mid-log", type=Path, metavar="PATH",
                   help="the processor's mid_prices.log, spec or extended format "
                        "(default: ./mid_prices.log if present)")
    p.add_argument("--error-log", type=Path, metavar="PATH",
                   help="the processor's errors.log (default: ./errors.log if present)")
    p.add_argument("--parquet", type=Path, metavar="PATH",
                   help="the processor's --parquet output: mids from it instead of --mid-log")
    p.add_argument("--input", type=Path, metavar="CSV",
                   help="the replayed historical CSV: the full latency distribution")
    p.add_argument("--tickers", metavar="T1,T2", help="tickers to draw (default: the busiest)")
    p.add_argument("--top", type=int, default=4, metavar="N",
                   help="without --tickers, the N busiest tickers (default 4)")
    p.add_argument("--latency-threshold", metavar="MS",
                   help=f"default: the one errors.log names, else ${THRESHOLD_ENV}, else 20")
    p.add_argument("--out", type=Path, default=Path("plots"), metavar="DIR",
                   help=f"folder written: {', '.join(FIGURES)}, plots.html (default: plots)")
    return p


def run(args: argparse.Namespace) -> int:
    log = get_logger(COMPONENT)
    if args.top < 1:
        raise UsageError(f"--top must be at least 1, not {args.top}")
    tickers_flag = [t.strip() for t in args.tickers.split(",") if t.strip()] if args.tickers \
        else None  # fmt: skip
    started = time.perf_counter()
    data = load(args)
    tickers = choose_tickers(data, tickers_flag, args.top)
    read_s = time.perf_counter() - started
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot create: {exc.strerror}") from None
    lat = latency_summary(data)
    width = rates(data)[0]
    images = {
        "mid_prices.png": png_bytes(figure_mids(data, tickers)),
        "latency.png": png_bytes(figure_latency(data, lat)),
        "records_per_second.png": png_bytes(figure_rates(data)),
    }
    for name, png in images.items():
        (args.out / name).write_bytes(png)
    (args.out / "plots.html").write_text(html_page(images, summary_rows(data, tickers, lat, width)))
    log.info("plots written", out=str(args.out), read_seconds=round(read_s, 2),
             seconds=round(time.perf_counter() - started, 2),
             records=(0 if data.mids is None else len(data.mids))
             + (0 if data.errors is None else len(data.errors)),
             share_above=round(float(lat["share"]), 6))  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_program(COMPONENT, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
