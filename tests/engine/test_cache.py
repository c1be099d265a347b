"""The parsed-table cache: hits, misses, staleness and corruption."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from engine.cache import cache_path, identity, load_cached, load_or_parse
from engine.historical import MissingColumn, load_historical

HEADER = ",index,timestamp,ticker,ask_amount,ask_price,bid_price,bid_amount,latency\n"


def write_csv(path: Path, rows: int, bad: bool = True, ticker: str = "BTC") -> Path:
    lines = [HEADER]
    for i in range(rows):
        latency = "-1" if bad and i == 3 else f"{(i * 7) % 50}.5"
        ts = f"2025-10-02 23:59:{i % 60:02d}.{i:06d}"
        lines.append(f"{i},{i},{ts},{ticker}{i % 3},1.5,2.{i},2.0,3.0,{latency}\n")
    path.write_text("".join(lines))
    return path


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "h.csv", 50)


def test_miss_then_hit_gives_the_same_table(csv_file: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first, cached = load_or_parse(csv_file, state)
    assert not cached and first.rejected_count == 1 and len(first.rejected) == 1
    second, cached = load_or_parse(csv_file, state)
    assert cached
    assert second.table.equals(first.table)
    assert second.table.schema.equals(first.table.schema)
    assert second.rejected == []  # nothing to re-append to rejected_rows.csv
    assert second.rejected_count == 1
    assert second.first_rejected == first.rejected[0]
    name = cache_path(state, csv_file).name
    assert sorted(p.name for p in cache_path(state, csv_file).parent.iterdir()) == [
        name,
        f"{name}.crc32",
    ]  # written atomically: no temp file left; the checksum beside it


def test_cached_table_is_memory_mapped(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "big.csv", 20_000)
    state = tmp_path / "state"
    load_or_parse(path, state)
    before = pa.total_allocated_bytes()
    parsed, cached = load_or_parse(path, state)
    assert cached
    table_bytes = parsed.table.nbytes
    assert table_bytes > 500_000
    assert pa.total_allocated_bytes() - before < table_bytes / 10


def test_changed_file_is_stale(csv_file: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    load_or_parse(csv_file, state)
    write_csv(csv_file, 60, bad=False)
    parsed, cached = load_or_parse(csv_file, state)
    assert not cached and parsed.table.num_rows == 60 and parsed.rejected_count == 0
    again, cached = load_or_parse(csv_file, state)
    assert cached and again.table.num_rows == 60


def test_same_size_and_mtime_but_new_content_is_stale(csv_file: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    load_or_parse(csv_file, state)
    st = csv_file.stat()
    write_csv(csv_file, 50, ticker="ETH")  # same length, different bytes
    os.utime(csv_file, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert csv_file.stat().st_size == st.st_size
    parsed, cached = load_or_parse(csv_file, state)
    assert not cached
    assert parsed.table.column("ticker")[0].as_py().startswith("ETH")


@pytest.mark.parametrize("damage", ["garbage", "truncate", "empty", "flip-footer"])
def test_corrupt_cache_is_ignored_and_replaced(csv_file: Path, tmp_path: Path, damage: str) -> None:
    state = tmp_path / "state"
    fresh, _ = load_or_parse(csv_file, state)
    target = cache_path(state, csv_file)
    data = target.read_bytes()
    if damage == "garbage":
        target.write_bytes(b"not an arrow file" * 100)
    elif damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        target.write_bytes(b"")
    else:
        target.write_bytes(data[:-20] + bytes(20))
    parsed, cached = load_or_parse(csv_file, state)
    assert not cached and parsed.table.equals(fresh.table)
    again, cached = load_or_parse(csv_file, state)
    assert cached and again.table.equals(fresh.table)


def test_cache_of_other_options_is_not_used(csv_file: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    load_or_parse(csv_file, state)
    live = ("timestamp", "ticker", "bid_price", "ask_price")
    assert load_cached(csv_file, state, required=live) is None
    parsed, cached = load_or_parse(csv_file, state, required=live)
    assert not cached and parsed.table.num_rows == 49


def test_write_false_leaves_no_cache(csv_file: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    _, cached = load_or_parse(csv_file, state, write=False)
    assert not cached and not cache_path(state, csv_file).exists()


def test_input_errors_propagate_and_cache_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,ticker\n")
    with pytest.raises(MissingColumn):
        load_or_parse(bad, tmp_path / "state")
    assert not cache_path(tmp_path / "state", bad).exists()


def test_identity_tracks_path_size_mtime_and_edges(csv_file: Path) -> None:
    ident = identity(csv_file)
    assert ident.path == str(csv_file.resolve()) and ident.size == csv_file.stat().st_size
    assert identity(csv_file) == ident
    assert load_historical(csv_file).table.num_rows == 49
