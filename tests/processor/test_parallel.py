"""``processor.parallel.RenderPool``: results in submission order, the same bytes as ``render``."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from common.schema import Mode
from processor.parallel import RenderPool
from processor.rules import render

from ..support.quotes import make_batch


def _batches(count: int, rows: int) -> list[pa.RecordBatch]:
    rng = np.random.default_rng(3)
    out = []
    for b in range(count):
        quotes = [
            (Mode.HISTORICAL if rng.random() < 0.8 else Mode.LIVE,
             f"2025-10-02 23:59:{s % 60:02d}.{b:03d}", f"T{b}",
             float(rng.uniform(0, 40)), float(rng.choice([0.0, 1.25, 99.5])),
             float(rng.choice([1.5, 100.25, -1.0])))
            for s in range(rows + b)  # each batch its own size and texts
        ]  # fmt: skip
        out.append(make_batch(quotes))
    return out


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_results_come_back_in_submission_order(threads: int) -> None:
    batches = _batches(9, 200)
    got = []
    with RenderPool[int](20.0, threads=threads) as pool:
        for i, batch in enumerate(batches):
            pool.submit(batch, i)
            ready = list(pool.ready())
            got += ready
            # ready() leaves at most one batch per worker in flight (none without workers)
            assert pool.pending == (min(i + 1, threads) if threads > 1 else 0)
        got += list(pool.drain())
    assert [tag for _, tag in got] == list(range(len(batches)))
    for (out, _), batch in zip(got, batches, strict=True):
        want = render(batch, 20.0)
        assert (out.mid, out.errors, out.n_mid, out.n_errors) == (
            want.mid, want.errors, want.n_mid, want.n_errors)


def test_a_failed_render_raises_when_its_turn_comes() -> None:
    bad = pa.record_batch({"timestamp": pa.array([0], pa.timestamp("ns"))})  # no prices
    good = _batches(1, 5)[0]
    with RenderPool[str](20.0, threads=2) as pool:
        pool.submit(good, "good")
        pool.submit(bad, "bad")
        results = pool.drain()
        assert next(results)[1] == "good"
        with pytest.raises(KeyError):
            next(results)
