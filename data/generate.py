"""Synthetic quote files shaped like the real samples the pipeline replays.

``python -m data.generate`` writes ``historical_sample.csv`` and/or ``live_sample.csv`` in the
layout of contract section 1 (the pandas layout of the real recordings), with statistics modelled
on a real 30,000-row sample: ~2,600 interleaved ``BASE-QUOTE-SWAP@VENUE`` tickers over eleven
venues, prices from 3e-08 to 1.2e5 on per-ticker ticks, lognormal latencies, and optionally some
rows the engine must reject. The same arguments always give byte-identical files.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl

from common.cli import Parser
from common.log import get_logger

DATA_DIR: Final = Path(__file__).resolve().parent
FILE_NAMES: Final = {"historical": "historical_sample.csv", "live": "live_sample.csv"}
DEFAULT_ROWS: Final = 30_000
DEFAULT_SEED: Final = 20251002
#: Bad rows per kind of file when --bad-rows is not given: the committed samples.
DEFAULT_BAD_ROWS: Final = {"historical": 6, "live": 0}
LIVE_COLUMNS: Final = (
    "",
    "index",
    "timestamp",
    "ticker",
    "ask_amount",
    "ask_price",
    "bid_price",
    "bid_amount",
)
FLOAT_COLUMNS: Final = ("ask_amount", "ask_price", "bid_price", "bid_amount", "latency")
START_US: Final = 1_759_449_597_290_000  # 2025-10-02 23:59:57.290000 UTC
ROWS_PER_MS: Final = 11.1  # the real sample: 30,000 rows in 2.7 s
LATENCY_MEDIAN_MS: Final = 20.0
LATENCY_SIGMA: Final = 0.65
LATENCY_MAX_MS: Final = 275.0
CHUNK_ROWS: Final = 1 << 20
_POW10: Final = np.array([float(10**k) for k in range(23)])  # exact powers of ten

#: Kinds of rejectable rows (contract section 1), in the order bad rows cycle through them.
BAD_KINDS: Final = {
    "historical": (
        "bad_timestamp",
        "bad_price",
        "negative_latency",
        "nan_latency",
        "empty_ticker",
        "long_ticker",
    ),
    "live": ("bad_timestamp", "bad_price", "empty_ticker", "long_ticker"),
}
_BAD_TIMESTAMPS: Final = ("2025-13-02 23:59:58.000000", "not-a-timestamp", "2025-10-02 23:5x")
_BAD_PRICES: Final = (
    ("ask_price", None),
    ("bid_price", None),
    ("ask_price", "N/A"),
    ("bid_price", "abc"),
)
_LONG_TICKERS: Final = (
    "VERYLONG" + "X" * 40 + "-USDT-SWAP@BINANCE",  # 66 ASCII bytes
    "Ω" * 24 + "-USDT-SWAP@BINANCE",  # 42 characters but 66 UTF-8 bytes
)


@dataclass(frozen=True)
class Venue:
    """One exchange: its share of rows, listings, quote currencies and market microstructure."""

    name: str
    row_share: float
    listed: int
    quotes: tuple[tuple[str, float], ...]
    spread: float  # typical relative bid-ask spread
    zipf: float  # how concentrated its rows are on its popular tickers
    whole_lots: bool  # amounts are whole contracts
    micros: bool = False  # timestamps carry microseconds


USD, USDT, USDC = (("USD", 1.0),), (("USDT", 1.0),), (("USDC", 1.0),)
MOSTLY_USDT = (("USDT", 0.97), ("USDC", 0.02), ("USD", 0.01))
SOME_USDC = (("USDT", 0.84), ("USDC", 0.11), ("USD", 0.05))
#: Row shares, listings, quote currencies and spreads modelled on the real sample.
VENUES: Final = (
    Venue("KRAKEN", 0.367, 165, USD, 0.03, 1.35, True),
    Venue("KUCOIN", 0.112, 300, MOSTLY_USDT, 8e-4, 1.05, True),
    Venue("BYBIT", 0.100, 380, USDT, 2.7e-4, 1.05, False),
    Venue("OKEX", 0.100, 230, USDT, 1.4e-4, 0.92, False),
    Venue("BINANCE", 0.089, 450, USDT, 2.2e-4, 0.92, False),
    Venue("BITGET", 0.067, 430, SOME_USDC, 3.3e-4, 0.8, False),
    Venue("GATE-IO", 0.055, 340, USDT, 7.5e-4, 0.8, True),
    Venue("HTX", 0.042, 145, USDT, 1.7e-3, 1.05, True),
    Venue("COINBASEINT", 0.024, 140, USDC, 7.4e-4, 1.05, False),
    Venue("PHEMEX", 0.023, 280, MOSTLY_USDT, 6e-4, 0.58, False, micros=True),
    Venue("CRYPTO-COM", 0.021, 90, USD, 4.3e-4, 1.05, False),
)


@dataclass(frozen=True)
class Universe:
    """The listed tickers and each one's price grid, spread, amount scale and row frequency."""

    names: pl.Series
    weight: np.ndarray  # probability that a row is this ticker
    micros: np.ndarray  # bool: timestamps carry microseconds
    mantissa: np.ndarray  # starting bid, in ticks
    tick_exp: np.ndarray  # a tick is 10**tick_exp
    spread: np.ndarray  # typical spread, in ticks
    band: np.ndarray  # how far the price wanders either side, in ticks
    amount_log: np.ndarray  # log10 of the typical amount
    lot_exp: np.ndarray  # amounts are multiples of 10**lot_exp


def decimals(mantissa: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """The floats nearest to the decimals ``mantissa * 10**exponent`` (|exponent| <= 22)."""
    scale = _POW10[np.abs(exponent)]
    m = mantissa.astype(np.float64)
    return np.where(exponent < 0, m / scale, m * scale)


def _exponent_form(text: pl.Expr) -> pl.Expr:
    """Polars' text of floats below 1e-4 (``0.000010229``, ``3.9e-8``) in repr's exponent form."""
    text = text.str.replace(r"e-(\d)$", "e-0${1}")
    parts = text.str.extract_groups(r"^(-?)0\.(0{4,})([1-9])(\d*)$")
    rest = parts.struct.field("4")
    exponent = (parts.struct.field("2").str.len_chars() + 1).cast(pl.String).str.zfill(2)
    dot_rest = pl.when(rest.str.len_chars() > 0).then(pl.lit(".") + rest).otherwise(pl.lit(""))
    sci = pl.concat_str(
        parts.struct.field("1"), parts.struct.field("3"), dot_rest, pl.lit("e-"), exponent
    )
    return pl.coalesce(sci, text)


def repr_text(values: np.ndarray, name: str) -> pl.Series:
    """Floats as text exactly as Python's ``repr`` (and pandas) writes them."""
    text = pl.Series(name, values).cast(pl.String)
    small = np.flatnonzero((np.abs(values) < 1e-4) & (values != 0))
    if len(small):  # the only values where Polars and repr differ
        tiny = pl.DataFrame({name: text.gather(small)}).select(_exponent_form(pl.col(name)))
        text = text.scatter(small, tiny.to_series())
    return text


def _base_names(rng: np.random.Generator, count: int) -> list[str]:
    """Made-up, unique coin symbols of realistic lengths (``KAVO``, ``1000ZEP``, ``TRX3``)."""
    consonants, vowels = "BCDFGHJKLMNPRSTVWXZ", "AEIOUY"
    lengths = (0.01, 0.07, 0.3, 0.3, 0.16, 0.08, 0.04, 0.02, 0.01, 0.01)  # P(1..10 letters)
    names: dict[str, None] = {}
    while len(names) < count:
        length = int(rng.choice(len(lengths), p=lengths)) + 1
        pick = rng.random(length + 2)
        name = "".join(
            consonants[int(u / 0.65 * 19)] if u < 0.65 else vowels[int((u - 0.65) / 0.35 * 6)]
            for u in pick[:length]
        )
        if pick[-2] < 0.04:
            name = ("1000", "10000", "1M")[int(pick[-1] * 3)] + name
        elif pick[-2] > 0.98:
            name += str(int(pick[-1] * 9) + 1)
        names.setdefault(name, None)
    return list(names)


def build_universe(seed: int) -> Universe:
    """The tickers every file generated with this seed draws its rows from."""
    rng = np.random.default_rng([seed, 0])
    n_bases = 660
    bases = _base_names(rng, n_bases)
    popularity = 1.0 / np.arange(1, n_bases + 1) ** 0.8
    log_price = np.clip(rng.normal(-0.8, 1.35, n_bases), -7.41, 5.08)
    log_price[[5, 8, 13]] = np.log10([1.02e-5, 120_480.0, 2.09e-5])  # popular: memes and "BTC"
    log_price[rng.integers(50, n_bases)] = np.log10(3.9e-8)  # and one sits at the bottom
    names: list[str] = []
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("venue", "base", "weight", "rel")}
    for v, venue in enumerate(VENUES):
        p_base = popularity / popularity.sum()
        listed = rng.choice(n_bases, size=venue.listed, replace=False, p=p_base)
        key = np.log(popularity[listed]) + rng.normal(0.0, 1.0, venue.listed)
        rank = np.empty(venue.listed)
        rank[np.argsort(-key, kind="stable")] = np.arange(1, venue.listed + 1)
        weight = rank**-venue.zipf
        quote_names = [q for q, _ in venue.quotes]
        quotes = rng.choice(len(venue.quotes), size=venue.listed, p=[p for _, p in venue.quotes])
        pairs = zip(listed, quotes, strict=True)
        names += [f"{bases[b]}-{quote_names[q]}-SWAP@{venue.name}" for b, q in pairs]
        cols["venue"].append(np.full(venue.listed, v))
        cols["base"].append(listed)
        cols["weight"].append(venue.row_share * weight / weight.sum())
        cols["rel"].append(venue.spread * rng.lognormal(-0.3, 1.1, venue.listed))
    venue_idx, base, weight, rel = (np.concatenate(cols[k]) for k in cols)
    n = len(names)
    lp = log_price[base] + rng.normal(0.0, 3e-4, n)  # venues quote a coin a little apart
    digits = rng.choice([2, 3, 4, 5, 6], size=n, p=[0.005, 0.06, 0.6, 0.27, 0.065])
    digits = np.where(lp < -6, np.minimum(digits, 3), digits + (lp >= 3) + (lp >= 4.5))
    tick_exp = np.floor(lp).astype(np.int64) - digits + 1
    mantissa = np.rint(10.0 ** (lp - tick_exp)).astype(np.int64)
    amount_log = 2.5 - 0.5 * lp + rng.normal(0.0, 1.2, n)
    precision = rng.choice(5, size=n, p=[0.08, 0.25, 0.35, 0.22, 0.1])
    amount_exp = np.floor(amount_log).astype(np.int64)
    lot_exp = amount_exp - precision
    whole = np.array([venue.whole_lots for venue in VENUES])[venue_idx]
    return Universe(
        names=pl.Series("ticker", names, dtype=pl.String),
        weight=weight / weight.sum(),
        micros=np.array([venue.micros for venue in VENUES])[venue_idx],
        mantissa=mantissa,
        tick_exp=tick_exp,
        spread=np.maximum(1, np.rint(rel * mantissa)).astype(np.int64),
        band=np.maximum(2, np.rint(mantissa * 0.004)).astype(np.int64),
        amount_log=amount_log,
        lot_exp=np.where(whole, np.maximum(amount_exp - 4, 0), np.maximum(lot_exp, -4)),
    )


def _milliseconds(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Sorted millisecond offsets of the rows, bursty like a real feed (many share one)."""
    counts = np.zeros(0, dtype=np.int64)
    while counts.sum() < rows:
        span = int((rows - counts.sum()) / ROWS_PER_MS * 1.2) + 16
        counts = np.concatenate([counts, rng.poisson(rng.gamma(3.5, ROWS_PER_MS / 3.5, span))])
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)[:rows]


def _sticky(
    rng: np.random.Generator, values: np.ndarray, first: np.ndarray, p_change: float
) -> np.ndarray:
    """Per-ticker values (rows sorted by ticker) that keep their last value until they change."""
    changed = first | (rng.random(len(values)) < p_change)
    return values[np.maximum.accumulate(np.where(changed, np.arange(len(values)), 0))]


def _amounts(
    rng: np.random.Generator, uni: Universe, tid: np.ndarray, first: np.ndarray, p_change: float
) -> np.ndarray:
    """Amounts for rows sorted by ticker: each ticker's book size changes now and then."""
    fresh = _sticky(rng, uni.amount_log[tid] + rng.normal(0.0, 0.3, len(tid)), first, p_change)
    lots = np.clip(np.rint(10.0 ** (fresh - uni.lot_exp[tid])), 1, 1e12)
    return decimals(lots.astype(np.int64), uni.lot_exp[tid])


def generate_columns(rows: int, seed: int, kind: str, uni: Universe) -> dict[str, np.ndarray]:
    """The numeric content of a file: tickers as ids, times as epoch microseconds."""
    rng = np.random.default_rng([seed, 1 if kind == "historical" else 2])
    tid = rng.choice(len(uni.weight), size=rows, p=uni.weight)
    us = START_US + _milliseconds(rng, rows) * 1000
    us = us + np.where(uni.micros[tid], rng.integers(0, 1000, rows), 0)
    order = np.argsort(us, kind="stable")
    us, tid = us[order], tid[order]
    group = np.cumsum(np.r_[0, np.diff(us) != 0])  # rows sharing a timestamp: shuffled `index`
    index = rows - 1 - np.argsort((group << 20) | rng.integers(0, 1 << 20, rows), kind="stable")

    by_ticker = np.argsort(tid, kind="stable")  # per-ticker price paths and amounts
    t = tid[by_ticker]
    first = np.r_[True, t[1:] != t[:-1]] if rows else np.zeros(0, dtype=bool)
    start = np.maximum.accumulate(np.where(first, np.arange(rows), 0))
    walk = np.cumsum(rng.choice(np.array([-1, 0, 1]), size=rows, p=[0.06, 0.88, 0.06]))
    band = uni.band[t]
    walk = walk - walk[start] + rng.integers(-band, band + 1)[start]
    bid = uni.mantissa[t] + np.abs(np.mod(walk - band, 4 * band) - 2 * band) - band
    widen = (rng.random(rows) < 0.3) * (1 + np.floor(uni.spread[t] * rng.exponential(0.1, rows)))
    spread = uni.spread[t] + _sticky(rng, widen.astype(np.int64), first, 0.12)
    columns = {
        "bid_price": decimals(bid, uni.tick_exp[t]),
        "ask_price": decimals(bid + spread, uni.tick_exp[t]),
        "ask_amount": _amounts(rng, uni, t, first, 0.4),
        "bid_amount": _amounts(rng, uni, t, first, 0.5),
    }
    for name, values in columns.items():  # back to time order
        columns[name] = np.empty_like(values)
        columns[name][by_ticker] = values
    locked = rng.choice(rows, size=round(rows * 32 / 30_000), replace=False)
    columns["ask_price"][locked] = columns["bid_price"][locked]
    one_sided = rng.choice(rows, size=round(rows / 15_000), replace=False)
    columns["bid_price"][one_sided] = columns["bid_amount"][one_sided] = 0.0
    if kind == "historical":
        latency = rng.lognormal(np.log(LATENCY_MEDIAN_MS), LATENCY_SIGMA, rows)
        columns["latency"] = np.minimum(latency, LATENCY_MAX_MS)
    return {"": np.arange(rows), "index": index, "us": us, "tid": tid, **columns}


Edit = tuple[int, str, str, str | None]


def bad_row_edits(rows: int, bad_rows: int, seed: int, kind: str) -> list[Edit]:
    """The rejectable rows to plant: (row, kind, column, new text or None for empty), by row."""
    rng = np.random.default_rng([seed, 3 if kind == "historical" else 4])
    bounds = np.linspace(0, rows, bad_rows + 1).astype(np.int64)
    positions = bounds[:-1] + np.floor(rng.random(bad_rows) * np.diff(bounds)).astype(np.int64)
    edits: list[Edit] = []
    for i, row in enumerate(positions.tolist()):
        bad = BAD_KINDS[kind][i % len(BAD_KINDS[kind])]
        pick = float(rng.random())
        if bad == "bad_timestamp":
            edits.append((row, bad, "timestamp", _BAD_TIMESTAMPS[int(pick * 3)]))
        elif bad == "bad_price":
            edits.append((row, bad, *_BAD_PRICES[int(pick * 4)]))
        elif bad == "negative_latency":
            edits.append((row, bad, "latency", repr(-round(1 + pick * 40, 3))))
        elif bad == "nan_latency":
            edits.append((row, bad, "latency", ("NaN", "nan")[int(pick * 2)]))
        elif bad == "empty_ticker":
            edits.append((row, bad, "ticker", None))
        else:
            edits.append((row, bad, "ticker", _LONG_TICKERS[int(pick * 2)]))
    return edits


def write_file(path: Path, rows: int, seed: int, kind: str, bad_rows: int) -> None:
    """Write one sample file of ``rows`` rows, ``bad_rows`` of them rejectable."""
    universe = build_universe(seed)
    data = generate_columns(rows, seed, kind, universe)
    edits = bad_row_edits(rows, bad_rows, seed, kind)
    columns = [*LIVE_COLUMNS, "latency"] if kind == "historical" else list(LIVE_COLUMNS)
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as out:
        out.write((",".join(columns) + "\n").encode())
        for lo in range(0, rows, CHUNK_ROWS):
            hi = min(lo + CHUNK_ROWS, rows)
            chunk = pl.DataFrame({k: v[lo:hi] for k, v in data.items()})
            text = chunk.select(
                pl.col(""),
                pl.col("index"),
                pl.from_epoch("us", "us").dt.strftime("%Y-%m-%d %H:%M:%S%.6f").alias("timestamp"),
                universe.names.gather(chunk["tid"]).alias("ticker"),
                *(repr_text(data[c][lo:hi], c) for c in columns[4:]),
            )
            for row, _, column, value in edits:
                if lo <= row < hi:
                    text = text.with_columns(text[column].scatter(row - lo, value))
            text.write_csv(out, include_header=False)
    os.replace(tmp, path)


def count(text: str) -> int:
    """A whole number, 0 or more (argparse type)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, validated."""
    parser = Parser(
        prog="python -m data.generate",
        component="generate",
        description="Write synthetic quote CSVs (historical_sample.csv with a latency column, "
        "live_sample.csv without) in the layout and with the statistics of the real samples "
        "(contract section 1). The same arguments always give byte-identical files.",
        epilog="With no arguments this regenerates the committed data/historical_sample.csv "
        "(30,000 rows, 6 rejectable) and data/live_sample.csv (30,000 rows, all valid). "
        "Example: python -m data.generate --rows 10000000 --kind historical --out-dir data/big",
    )
    parser.add_argument(
        "--rows",
        type=count,
        default=DEFAULT_ROWS,
        metavar="N",
        help=f"rows per file (default {DEFAULT_ROWS})",
    )
    parser.add_argument(
        "--seed",
        type=count,
        default=DEFAULT_SEED,
        metavar="S",
        help=f"random seed (default {DEFAULT_SEED})",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DATA_DIR,
        metavar="DIR",
        help="directory to write into, created if missing (default: the data/ folder)",
    )
    parser.add_argument(
        "--kind",
        choices=("historical", "live", "both"),
        default="both",
        help="which file(s) to write (default both)",
    )
    parser.add_argument(
        "--bad-rows",
        type=count,
        default=None,
        metavar="K",
        help="rows per file that the engine must reject (bad timestamp, price, "
        "latency or ticker), spread through the file (default: 6 in the "
        "historical file, 0 in the live file)",
    )
    args = parser.parse_args(argv)
    if args.bad_rows is not None and args.bad_rows > args.rows:
        parser.error(f"--bad-rows {args.bad_rows} is more than --rows {args.rows}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the requested files; the exit code."""
    args = parse_args(argv)
    log = get_logger("generate")
    kinds = ("historical", "live") if args.kind == "both" else (args.kind,)
    for kind in kinds:
        bad = min(DEFAULT_BAD_ROWS[kind], args.rows) if args.bad_rows is None else args.bad_rows
        path = args.out_dir / FILE_NAMES[kind]
        started = time.perf_counter()
        try:
            write_file(path, args.rows, args.seed, kind, bad)
        except OSError as exc:
            log.error("cannot write sample", path=str(path), error=str(exc))
            return 1
        log.info(
            "wrote sample",
            path=str(path),
            rows=args.rows,
            bad_rows=bad,
            seed=args.seed,
            seconds=round(time.perf_counter() - started, 2),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
