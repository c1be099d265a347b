"""pytest-benchmark versions of the comparison suite at small sizes (about a minute in all).

Run with ``pytest benchmarks --benchmark`` (``make bench``); skipped otherwise (see
``benchmarks/conftest.py``). Every test checks what it timed: line counts, byte equality with
the other design, or the latency reader's count and checksum. For figures worth quoting use
``python -m benchmarks.compare``: bigger, interleaved, repeated.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks import e2e, latency
from benchmarks.bench_render import THRESHOLD, make_batch, polars_csv
from benchmarks.naive import run_naive
from processor.rules import render

E2E_ROWS = 100_000
RENDER_ROWS = 200_000


@pytest.fixture(scope="module")
def csv_100k(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A realistic 100k-row historical CSV (no rejectable rows), warm in the page cache."""
    d = tmp_path_factory.mktemp("e2e")
    path = e2e.generate_csv(E2E_ROWS, d)
    e2e.warm(path)
    yield path
    path.unlink(missing_ok=True)


def test_render(benchmark: BenchmarkFixture) -> None:
    """``render`` of one 200k-record batch (both logs, spec format)."""
    benchmark.group = "processor render, 200k records"
    batch = make_batch(RENDER_ROWS)
    out = benchmark(render, batch, THRESHOLD)
    assert out.n_mid + out.n_errors == RENDER_ROWS
    assert out.mid.count(b"\n") == out.n_mid and out.errors.count(b"\n") == out.n_errors


def test_polars_write_csv(benchmark: BenchmarkFixture) -> None:
    """The bare baseline on the same batch: Polars ``write_csv`` of timestamp and float mid."""
    benchmark.group = "processor render, 200k records"
    batch = make_batch(RENDER_ROWS)
    text = benchmark(polars_csv, batch)
    assert text.count(b"\n") == RENDER_ROWS + 1  # and the header


def test_e2e_pipeline(benchmark: BenchmarkFixture, csv_100k: Path, tmp_path: Path) -> None:
    """Engine + processor programs at --speed max on 100k rows, start to exit."""
    benchmark.group = "end to end, 100k rows"
    runs: list[dict] = []
    benchmark.pedantic(lambda: runs.append(e2e.run_pipeline(csv_100k, tmp_path / "p")), rounds=3)
    for run in runs:
        assert run["mids"] + run["errors"] == E2E_ROWS
    benchmark.extra_info.update(peak_rss_kib=runs[-1]["peak_rss_kib"], phases=runs[-1]["phases"])


def test_e2e_naive(benchmark: BenchmarkFixture, csv_100k: Path, tmp_path: Path) -> None:
    """The naive design on the same 100k rows; its logs must equal the pipeline's."""
    benchmark.group = "end to end, 100k rows"
    ours = e2e.run_pipeline(csv_100k, tmp_path / "p")
    runs: list[dict] = []
    benchmark.pedantic(lambda: runs.append(run_naive(csv_100k, tmp_path / "n")), rounds=1)
    assert runs[-1]["records"] == ours["mids"] + ours["errors"] == E2E_ROWS
    assert e2e.same_logs(tmp_path / "p", tmp_path / "n")


@pytest.mark.parametrize("rate", [100_000, 1_000_000])
def test_latency(benchmark: BenchmarkFixture, rate: int) -> None:
    """Publish-to-read latency for half a second at ``rate`` records/s (checked by the reader)."""
    benchmark.group = "ring publish-to-read latency"
    results: list[latency.Latency] = []
    benchmark.pedantic(lambda: results.append(latency.measure_rate(rate, 0.5)), rounds=1)
    x = results[-1]
    assert x.records == round(0.5 * rate)
    assert 0 < x.p50_us <= x.p99_us <= x.p999_us <= x.max_us
    benchmark.extra_info.update(x.as_dict())
