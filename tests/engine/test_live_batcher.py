"""``engine.live.Batcher``: the live source's rules, driven without sockets or threads.

Every test feeds the batcher explicit inputs and a fake clock (a plain number of seconds) and
checks what it says is due: batches to hand over, whether to stop reading, whether the
connection is idle-dead, and when to look again.
"""

from __future__ import annotations

import itertools

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.historical import TABLE_SCHEMA
from engine.live import Batch, Batcher
from engine.rejects import Rejected

_lines = itertools.count(1)


def records(n: int) -> pa.Table:
    """``n`` records numbered by their ``line`` (increasing over the whole test session)."""
    lines = [next(_lines) for _ in range(n)]
    nan = [float("nan")] * n
    return pa.table(
        {
            "line": pa.array(lines, pa.int64()),
            "ticker": pa.array([f"T{i % 3}" for i in lines]).dictionary_encode(),
            "timestamp": pa.array(lines, pa.int64()),
            "arrival": pa.array(lines, pa.int64()),
            "latency": nan,
            "bid_price": [float(i) for i in lines],
            "ask_price": [float(i) + 0.5 for i in lines],
            "bid_amount": nan,
            "ask_amount": nan,
        },
        schema=TABLE_SCHEMA,
    )


def rejects(n: int) -> list[Rejected]:
    return [Rejected("ws://feed", next(_lines), "bad", "") for _ in range(n)]


def lines(batch: Batch | None) -> list[int]:
    assert batch is not None, "no batch pending"
    table, _ = batch
    return [] if table is None else table.column("line").to_pylist()


def make(**settings: float) -> Batcher:
    options = {"batch_records": 10, "batch_interval": 0.5, "max_pending": 2,
               "idle_timeout": 5.0, **settings}  # fmt: skip
    b = Batcher(**options)  # type: ignore[arg-type]
    b.connected(now=100.0)
    return b


# --- batching ---------------------------------------------------------------------------------


def test_a_batch_is_due_at_batch_records_and_rejects_count() -> None:
    b = make()
    assert not b.add(records(4), [], now=100.0)
    assert not b.add(records(3), rejects(2), now=100.1)
    assert (b.size, b.due(100.1), b.stop_reading) == (9, False, False)
    assert b.add(None, rejects(1), now=100.2), "the 10th item (a reject) fills the batch"
    assert b.due(100.2) and b.stop_reading
    assert b.flush(now=100.2) and (b.size, b.pending) == (0, 1)
    table, rejected = b.take() or (None, [])
    assert table is not None and table.num_rows == 7 and len(rejected) == 3


def test_a_frame_that_overshoots_batch_records_stays_whole() -> None:
    b = make()
    b.add(records(8), [], now=100.0)
    assert b.add(records(5), [], now=100.0)
    assert b.flush(now=100.0)
    assert len(lines(b.take())) == 13, "a frame's records are never split across batches"


def test_a_batch_is_due_batch_interval_after_its_first_record() -> None:
    b = make()
    assert not b.due(100.0) and b.deadline(100.0) == 105.0, "empty: only the idle timeout"
    b.add(records(1), [], now=101.0)
    assert b.deadline(101.0) == 101.5
    b.add(records(1), [], now=101.4)  # later records do not move the deadline
    assert not b.due(101.49) and b.deadline(101.49) == 101.5
    assert b.due(101.5)
    assert b.flush(now=101.5)
    assert len(lines(b.take())) == 2
    b.add(records(1), [], now=102.0)  # the next batch times from its own first record
    assert not b.due(102.4) and b.due(102.5)


def test_a_batch_is_one_table_with_one_chunk_a_column_in_arrival_order() -> None:
    b = make(batch_records=100)
    frames = [records(3), records(1), records(4)]
    expected = [line for t in frames for line in t.column("line").to_pylist()]
    bad = rejects(2)
    for i, t in enumerate(frames):
        b.add(t, bad if i == 1 else [], now=100.0)
    b.flush(now=100.0)
    batch = b.take()
    assert batch is not None
    table, rejected = batch
    assert table is not None and table.schema == TABLE_SCHEMA
    assert all(table.column(name).num_chunks == 1 for name in TABLE_SCHEMA.names)
    assert table.column("line").to_pylist() == expected
    assert rejected == bad


def test_a_batch_of_rejects_only_has_no_table() -> None:
    b = make()
    bad = rejects(2)
    b.add(None, bad, now=100.0)
    b.flush(now=100.0)
    assert b.take() == (None, bad)


def test_flush_and_take_on_nothing() -> None:
    b = make()
    assert b.flush(now=100.0) and b.pending == 0 and b.take() is None


# --- the end of a connection, and stop ---------------------------------------------------------


def test_a_connection_that_ends_makes_its_records_due_at_once() -> None:
    b = make()
    assert not b.disconnected(), "nothing open: nothing to hand over"
    b.add(records(3), [], now=100.0)
    assert not b.due(100.0)
    assert b.disconnected()
    assert b.due(100.0) and b.stop_reading, "due before its interval; no reading until handed"
    assert b.flush(now=100.0) and not b.stop_reading
    assert len(lines(b.take())) == 3


def test_a_connection_that_ends_on_a_full_queue_waits_for_room() -> None:
    b = make(max_pending=1)
    b.add(records(1), [], now=100.0)
    b.flush(now=100.0)
    b.add(records(2), [], now=100.1)
    assert b.disconnected()
    assert not b.flush(now=100.1) and b.stop_reading and b.size == 2
    b.take()
    assert b.flush(now=100.2) and not b.stop_reading
    b.connected(now=100.3)
    assert lines(b.take()) and b.size == 0


def test_stop_hands_the_open_batch_over_beyond_the_bound() -> None:
    b = make(max_pending=1)
    b.add(records(1), [], now=100.0)
    b.flush(now=100.0)
    b.add(records(2), [], now=100.1)
    assert not b.flush(now=100.1), "the queue is full"
    assert b.flush(now=100.1, force=True), "stop: nothing may be lost"
    assert b.pending == 2 and b.full
    assert [len(lines(b.take())), len(lines(b.take()))] == [1, 2]


# --- the bounded queue --------------------------------------------------------------------------


def test_a_full_queue_refuses_and_the_open_batch_keeps_filling() -> None:
    b = make(max_pending=2)
    for t in (100.0, 100.1):
        b.add(records(1), [], now=t)
        assert b.flush(now=t)
    assert b.full and b.pending == 2
    b.add(records(2), [], now=100.2)
    assert b.due(100.7) and not b.flush(now=100.7), "interval due, but no room"
    assert not b.stop_reading, "an interval-due batch does not stop the reader"
    assert b.deadline(100.7) == pytest.approx(101.2), "looked at again an interval later"
    b.add(records(3), [], now=100.8)  # the reader reads on into the same batch
    assert b.size == 5 and b.pending == 2
    b.take()
    assert b.flush(now=100.9) and b.pending == 2
    assert len(lines(b.take())) == 1 and len(lines(b.take())) == 5


def test_a_full_batch_on_a_full_queue_stops_the_reader_until_room() -> None:
    b = make(batch_records=3, max_pending=1)
    assert b.add(records(3), [], now=100.0) and b.flush(now=100.0)
    assert b.add(records(3), [], now=100.1)
    assert not b.flush(now=100.1)
    assert b.stop_reading and b.size == 3, "the batch waits whole; the reader waits"
    assert b.pending == 1, "the queue never grows beyond max_pending"
    first = lines(b.take())
    assert b.flush(now=100.2) and not b.stop_reading
    second = lines(b.take())
    assert len(first) == len(second) == 3 and first[-1] + 1 == second[0]


# --- idle ----------------------------------------------------------------------------------------


def test_no_frame_for_idle_timeout_is_idle() -> None:
    b = make(idle_timeout=5.0)  # connected at 100
    assert not b.idle(104.9) and b.idle(105.0)
    b.add(records(1), [], now=104.0)
    assert not b.idle(108.9) and b.idle(109.0), "every frame restarts the idle clock"
    b.flush(now=104.5)
    assert b.deadline(105.0) == 109.0
    b.connected(now=200.0)
    assert not b.idle(204.9) and b.idle(205.0), "a new connection restarts it too"


def test_time_blocked_on_a_full_queue_is_not_idle() -> None:
    b = make(batch_records=2, max_pending=1, idle_timeout=5.0)
    b.add(records(2), [], now=100.0)
    b.flush(now=100.0)
    assert b.add(records(2), [], now=101.0)
    assert not b.flush(now=101.0) and b.stop_reading
    assert not b.idle(1000.0), "blocked: no frame expected, however long"
    assert b.deadline(1000.0) == pytest.approx(1000.5), "only the batch is looked at"
    b.take()
    assert b.flush(now=1000.0), "room at last"
    assert not b.idle(1004.9) and b.idle(1005.0), "the idle clock restarts when reading does"


def test_idle_timeout_zero_turns_idle_detection_off() -> None:
    b = make(idle_timeout=0.0)
    assert not b.idle(1e9) and b.deadline(1e9) is None


def test_settings_out_of_range_are_refused() -> None:
    for bad in ({"batch_records": 0}, {"max_pending": 0}, {"batch_interval": 0.0}):
        with pytest.raises(ValueError):
            Batcher(**bad)


# --- whatever the order of events ----------------------------------------------------------------

_EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 7), st.integers(0, 2)),
        st.tuples(st.sampled_from(["tick", "take", "end", "stop"]), st.just(0), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(_EVENTS, st.integers(1, 8), st.integers(1, 3))
def test_nothing_lost_duplicated_or_moved(
    events: list[tuple[str, int, int]], batch_records: int, max_pending: int
) -> None:
    """The way the source drives the batcher: hand a full batch over before reading on (or
    skip reading while the queue is full), flush when due, force on stop."""
    b = Batcher(batch_records=batch_records, batch_interval=1.0, max_pending=max_pending,
                idle_timeout=3.0)  # fmt: skip
    sent: list[int] = []
    got: list[int] = []
    forced = False
    now = 0.0
    b.connected(now)

    def take() -> None:
        batch = b.take()
        if batch is not None:
            got.extend(lines(batch))

    for kind, n, k in events:
        now += 0.4
        if kind == "add" and not b.stop_reading:
            table = records(n) if n else None
            if table is not None:
                sent.extend(table.column("line").to_pylist())
            if b.add(table, rejects(k), now):
                b.flush(now)
        elif kind == "tick" and b.due(now):
            b.flush(now)
        elif kind == "take":
            take()
            if b.stop_reading and not b.full:  # (after a stop, the queue may hold one more)
                assert b.flush(now), "there is room"
        elif kind == "end":  # connect again once the records of the last one are handed over
            if not b.disconnected() or b.flush(now):
                b.connected(now)
        elif kind == "stop":
            forced = forced or (b.full and bool(b.size))
            b.flush(now, force=True)
        assert b.pending <= max_pending or forced, "the queue grew beyond its bound"
        assert b.size < batch_records + 7 + 2, "the open batch grew without bound"
        if b.pending < max_pending:
            assert not b.stop_reading or not b.size, "stopped reading with room free"
    b.flush(now, force=True)
    while b.pending:
        take()
    assert got == sent
