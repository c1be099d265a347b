"""pytest-benchmark version of ``benchmarks.bench_venues`` at a small size: each live format's
frames decoded and batched (20,000 frames a round). Run with ``pytest benchmarks --benchmark``
(``make bench``); for figures worth quoting use ``python -m benchmarks.bench_venues``."""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.bench_venues import PER_FRAME, frames_for, measure
from engine.venues import FORMATS

FRAMES = 20_000


@pytest.mark.parametrize("fmt", [*FORMATS, PER_FRAME])
def test_decode_and_batch(benchmark: BenchmarkFixture, fmt: str) -> None:
    frames, names = frames_for("ours" if fmt == PER_FRAME else fmt, FRAMES)
    seconds = benchmark.pedantic(measure, args=(fmt, frames, names), rounds=3, iterations=1)
    benchmark.extra_info["frames_per_s"] = round(FRAMES / seconds)
