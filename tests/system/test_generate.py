"""The sample generator: layout, realism, rejectable rows, reproducibility, committed samples."""

from __future__ import annotations

import csv
import math
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from data import generate

LIVE_HEADER = ",index,timestamp,ticker,ask_amount,ask_price,bid_price,bid_amount"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")
TICKER = re.compile(r"^[A-Z0-9]+-(USDT|USDC|USD)-SWAP@[A-Z-]+$")
CONTRACT_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,9})?$")


def run(out_dir: Path, *args: str) -> None:
    assert generate.main(["--out-dir", str(out_dir), *args]) == 0


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def rejection(row: dict[str, str]) -> str | None:
    """Why contract section 1 rejects this row, or None if it is valid."""
    ts = row["timestamp"]
    try:
        if not CONTRACT_TIMESTAMP.match(ts):
            raise ValueError(ts)
        datetime.strptime(ts[:19].replace("T", " "), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return "bad_timestamp"
    for column in ("bid_price", "ask_price"):
        try:
            if math.isnan(float(row[column])):
                return "bad_price"
        except ValueError:
            return "bad_price"
    if "latency" in row:
        try:
            latency = float(row["latency"])
        except ValueError:
            return "bad_latency"
        if math.isnan(latency):
            return "nan_latency"
        if latency < 0:
            return "negative_latency"
    if not row["ticker"]:
        return "empty_ticker"
    if len(row["ticker"].encode()) > 64:
        return "long_ticker"
    return None


def micros(ts: str) -> int:
    return int(datetime.fromisoformat(ts + "+00:00").timestamp()) * 1_000_000 + int(ts[-6:])


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pair plain `python -m data.generate` writes (30,000 rows each, 6 bad historical)."""
    out = tmp_path_factory.mktemp("defaults")
    run(out)
    return out


@pytest.fixture(scope="module")
def historical(defaults: Path) -> list[dict[str, str]]:
    return [r for r in read(defaults / "historical_sample.csv") if rejection(r) is None]


def test_committed_samples_match_the_generator(defaults: Path) -> None:
    for name in ("historical_sample.csv", "live_sample.csv"):
        committed = generate.DATA_DIR / name
        assert committed.read_bytes() == (defaults / name).read_bytes(), (
            f"data/{name} differs from what the generator writes: run `python -m data.generate`"
        )


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    for sub, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        run(tmp_path / sub, "--rows", "3000", "--seed", seed, "--bad-rows", "5")
    for name in ("historical_sample.csv", "live_sample.csv"):
        a, b, c = ((tmp_path / sub / name).read_bytes() for sub in "abc")
        assert a == b
        assert a != c


def test_kind_selects_the_file(tmp_path: Path) -> None:
    run(tmp_path, "--rows", "10", "--kind", "live")
    assert [p.name for p in tmp_path.iterdir()] == ["live_sample.csv"]


def test_layout(tmp_path: Path) -> None:
    run(tmp_path, "--rows", "5000", "--bad-rows", "0")
    for name, header in (
        ("live_sample.csv", LIVE_HEADER),
        ("historical_sample.csv", LIVE_HEADER + ",latency"),
    ):
        text = (tmp_path / name).read_text(encoding="utf-8")
        lines = text.split("\n")
        assert lines[0] == header
        assert text.endswith("\n") and "\r" not in text and lines[-1] == ""
        rows = read(tmp_path / name)
        assert len(rows) == 5000
        assert [int(r[""]) for r in rows] == list(range(5000))
        index = np.array([int(r["index"]) for r in rows])
        assert sorted(index) == list(range(5000))
        assert np.abs(index + np.arange(5000) - 4999).max() < 200  # runs roughly backwards
        for r in rows:
            assert TIMESTAMP.match(r["timestamp"]), r
            for column in generate.FLOAT_COLUMNS:
                if column in r:  # written exactly as repr (pandas) writes a float
                    assert r[column] == repr(float(r[column])), (column, r)


def test_timestamps_sorted_bursty_some_sub_millisecond(historical: list[dict[str, str]]) -> None:
    us = np.array([micros(r["timestamp"]) for r in historical])
    assert (np.diff(us) >= 0).all()
    assert len(np.unique(us)) < len(us) / 4  # bursts: many rows share a timestamp
    sub_ms = np.mean(us % 1000 != 0)
    assert 0.01 < sub_ms < 0.05
    assert 1.5e6 < us[-1] - us[0] < 4e6  # ~2.7 s of feed like the real sample


def test_tickers(historical: list[dict[str, str]]) -> None:
    tickers = [r["ticker"] for r in historical]
    assert all(TICKER.match(t) and len(t.encode()) <= 64 for t in tickers)
    assert 2300 <= len(set(tickers)) <= 2900
    venues = {t.split("@")[1] for t in tickers}
    assert {"KRAKEN", "BINANCE", "OKEX", "GATE-IO", "CRYPTO-COM", "PHEMEX"} <= venues
    assert 10 <= len(venues) <= 13
    counts = np.sort(np.unique(tickers, return_counts=True)[1])
    assert counts[-1] > 50 * np.median(counts)  # popular tickers dominate (Zipf-like)
    quotes = [t.split("-")[-2] for t in tickers]
    assert quotes.count("USDT") > len(quotes) / 2 and {"USD", "USDC"} <= set(quotes)


def test_prices_and_amounts(historical: list[dict[str, str]]) -> None:
    bid = np.array([float(r["bid_price"]) for r in historical])
    ask = np.array([float(r["ask_price"]) for r in historical])
    assert not (bid > ask).any()  # never crossed
    assert 1 <= (bid == 0).sum() <= 6  # a few one-sided quotes
    assert 0.0003 < np.mean(bid == ask) < 0.003  # about 0.1% locked
    assert ask.min() < 1e-7 and ask.max() > 1e5
    assert any("e-" in r["ask_price"] for r in historical)
    spread = (ask - bid)[bid > 0] / ask[bid > 0]
    assert 1e-4 < np.median(spread) < 1e-2
    for column in ("ask_amount", "bid_amount"):
        amount = np.array([float(r[column]) for r in historical])
        assert (amount[bid > 0] > 0).all() and 100 < np.median(amount) < 10_000


def test_latency_and_arrival_order(historical: list[dict[str, str]]) -> None:
    latency = np.array([float(r["latency"]) for r in historical])
    assert 15 <= np.median(latency) <= 25
    assert latency.min() > 0 and 100 < latency.max() <= 275
    arrival = np.array([micros(r["timestamp"]) for r in historical]) + latency * 1000
    order = np.argsort(arrival, kind="stable")
    assert (order != np.arange(len(order))).mean() > 0.5


@pytest.mark.parametrize(
    ("kind", "bad"), [("historical", 0), ("historical", 1), ("historical", 13), ("live", 9)]
)
def test_bad_rows(tmp_path: Path, kind: str, bad: int) -> None:
    run(tmp_path, "--rows", "1000", "--kind", kind, "--bad-rows", str(bad), "--seed", "3")
    rows = read(tmp_path / generate.FILE_NAMES[kind])
    assert len(rows) == 1000
    reasons = [(i, rejection(r)) for i, r in enumerate(rows) if rejection(r)]
    assert len(reasons) == bad
    assert {reason for _, reason in reasons} <= set(generate.BAD_KINDS[kind])
    if bad >= len(generate.BAD_KINDS[kind]):
        assert {reason for _, reason in reasons} == set(generate.BAD_KINDS[kind])
    if bad > 1:  # spread through the file
        assert reasons[0][0] < 1000 / bad and reasons[-1][0] >= 1000 - 1000 / bad


def test_default_bad_rows_are_in_the_historical_sample_only(defaults: Path) -> None:
    for kind, expected in (("historical", 6), ("live", 0)):
        rows = read(defaults / generate.FILE_NAMES[kind])
        assert len(rows) == 30_000
        reasons = sorted(filter(None, map(rejection, rows)))
        assert reasons == sorted(generate.BAD_KINDS[kind][:expected])


def test_command_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as done:
        generate.main(["--help"])
    assert done.value.code == 0
    assert "--bad-rows" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        generate.main(["--rows", "3", "--bad-rows", "4", "--out-dir", str(tmp_path)])
    assert done.value.code == 2
    assert not list(tmp_path.iterdir())
