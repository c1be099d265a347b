"""pytest-benchmark versions of ``benchmarks.ring_vs_queue`` at small sizes (a few seconds).

Run with ``pytest benchmarks --benchmark`` (``make bench``); skipped otherwise. Each test
starts its reader processes once (untimed: start, attach, warm-up) and times ``transfer``
alone, round after round: from the writer's first publish until every reader's verified
result is back. ``extra_info`` holds the
in-run figures (first publish to the last reader's end, as ``ring_vs_queue`` prints them).
For numbers worth quoting use ``python -m benchmarks.ring_vs_queue``: bigger, interleaved,
repeated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.transport import (
    BYTES_PER_RECORD,
    MessageQueueSession,
    QueueSession,
    RingSession,
    Run,
    Session,
    Source,
    memcpy_columns,
    memcpy_destination,
)

POOL = 250_000
RECORDS = 1_000_000
BATCH = 16384
CAPACITY = 1 << 18
MSG_RECORDS = 10_000
ROUNDS = 3


@pytest.fixture(scope="module")
def source() -> Source:
    """1M records (a pool of 250k distinct, sent in laps) in batches of 16384."""
    return Source.make(POOL, BATCH, RECORDS)


@pytest.fixture
def sessions() -> Iterator[list[Session]]:
    """Every session a test made; all closed at the end, whatever happened."""
    made: list[Session] = []
    yield made
    for s in made:
        s.close()


def _bench(
    benchmark: BenchmarkFixture, sessions: list[Session], make: Callable[[], Session]
) -> Run:
    """Prepare one session (readers started, attached, warm), then time ``ROUNDS`` transfers;
    record the best in-run figures."""
    session = make()
    sessions.append(session)
    session.prepare()
    runs: list[Run] = []

    def transfer() -> None:
        runs.append(session.transfer())

    benchmark.pedantic(transfer, rounds=ROUNDS)
    best = min(runs, key=lambda r: r.seconds)
    benchmark.extra_info.update(
        records=best.records,
        bytes_per_record=BYTES_PER_RECORD,
        best_in_run_seconds=best.seconds,
        best_records_per_s=best.records_per_s,
        best_mb_per_s=best.mb_per_s,
    )
    return best


@pytest.mark.parametrize("readers", [1, 2])
def test_ring(
    benchmark: BenchmarkFixture, sessions: list[Session], source: Source, readers: int
) -> None:
    """The ring, broadcast to ``readers`` processes."""
    benchmark.group = f"transport, {readers} reader(s)"
    run = _bench(benchmark, sessions, lambda: RingSession(source, readers, capacity=CAPACITY))
    assert run.records == RECORDS


@pytest.mark.parametrize("readers", [1, 2])
def test_queue(
    benchmark: BenchmarkFixture, sessions: list[Session], source: Source, readers: int
) -> None:
    """One multiprocessing.Queue per reader, every batch put to every queue."""
    benchmark.group = f"transport, {readers} reader(s)"
    run = _bench(benchmark, sessions, lambda: QueueSession(source, readers, capacity=CAPACITY))
    assert run.records == RECORDS


def test_queue_per_message(
    benchmark: BenchmarkFixture, sessions: list[Session], source: Source
) -> None:
    """One Queue message per quote, one reader (10k records)."""
    benchmark.group = "transport, per message"
    src = source.with_total(MSG_RECORDS)
    run = _bench(benchmark, sessions, lambda: MessageQueueSession(src, capacity=CAPACITY))
    assert run.records == MSG_RECORDS


def test_memcpy(benchmark: BenchmarkFixture, source: Source) -> None:
    """The physical reference: numpy copying the same bytes in one process."""
    benchmark.group = "transport, 1 reader(s)"
    dst = memcpy_destination(source)
    benchmark.pedantic(memcpy_columns, args=(source, dst), rounds=ROUNDS)
    for k, v in source.columns.items():
        assert (dst[k] == v).all(), k
