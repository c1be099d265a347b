"""The ring: order, no loss, gating, dead and slow readers, resume, end, reclaim, layout."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ringbuffer

from ..support.ringprocs import CTX, WAIT, consume_all, hold, step_reader, write_and_die

SCHEMA = {"seq": "uint64", "val": "float64"}


def batch(start: int, n: int) -> dict[str, np.ndarray]:
    seq = np.arange(start, start + n, dtype=np.uint64)
    return {"seq": seq, "val": seq.astype(np.float64) * 0.5}


def got(b: pa.RecordBatch | None) -> pa.RecordBatch:
    """The batch a read returned (for the type checker: it was not None)."""
    assert b is not None, "the read returned nothing"
    return b


def start(target, *args):
    p = CTX.Process(target=target, args=args, daemon=True)
    p.start()
    return p


def recv(conn, what: str):
    assert conn.poll(WAIT), f"timed out after {WAIT}s waiting for {what}"
    return conn.recv()


def join(p, what: str) -> None:
    p.join(WAIT)
    assert not p.is_alive(), f"{what} did not exit within {WAIT}s"
    assert p.exitcode == 0, f"{what} exited with {p.exitcode}"


def publish_in_thread(w: ringbuffer.Writer, batches: list[dict]) -> threading.Thread:
    t = threading.Thread(target=lambda: [w.publish(b) for b in batches], daemon=True)
    t.start()
    return t


# -- in one process ------------------------------------------------------------------------


def test_roundtrip_types_and_zero_copy(ring_name: str) -> None:
    schema = {"seq": "uint64", "ticker": "symbol", "ts": "timestamp[ns]", "bid": "float64"}
    with ringbuffer.create(ring_name, schema, capacity=16) as w:
        r = ringbuffer.attach(ring_name, "a", timeout=1)
        tickers = ["BTC-USDT-SWAP@BINANCE", "é" * 32, "BTC-USDT-SWAP@BINANCE"]  # 64 bytes
        w.publish(
            {
                "seq": np.arange(3, dtype=np.uint64),
                "ticker": tickers,
                "ts": np.array([0, 1, 1_700_000_000_123_456_789], dtype=np.int64),
                "bid": np.array([1.5, 0.0, 3e-08]),
            }
        )
        b = got(r.read(timeout=1))
        assert b.schema.field("ts").type == pa.timestamp("ns", tz="UTC")
        assert b.column("ticker").to_pylist() == tickers
        assert b.column("ts").cast(pa.int64()).to_pylist()[2] == 1_700_000_000_123_456_789
        assert b.column("bid").to_pylist() == [1.5, 0.0, 3e-08]
        # zero copy: the batch's buffer lies inside the mapped segment
        address = b.column("bid").buffers()[1].address
        base = r._v.raw.ctypes.data
        assert base <= address < base + len(r._v.raw)
        r.close()


def test_wrap_around_gives_at_most_two_slices(ring_name: str) -> None:
    with ringbuffer.create(ring_name, SCHEMA, capacity=8) as w:
        r = ringbuffer.attach(ring_name, "a", timeout=1)
        w.publish(batch(0, 6))
        assert got(r.read(timeout=1)).num_rows == 6
        assert r.read(timeout=0) is None  # releases the first batch
        w.publish(batch(6, 6))  # occupies indices 6, 7, 0..3
        first, second = got(r.read(timeout=1)), got(r.read(timeout=1))
        assert (first.num_rows, second.num_rows) == (2, 4)
        assert first.column("seq").to_pylist() + second.column("seq").to_pylist() == list(
            range(6, 12)
        )
        r.close()


@settings(max_examples=25, deadline=None)
@given(
    capacity_log=st.integers(1, 6),
    sizes=st.lists(st.integers(1, 200), min_size=1, max_size=30),
    reads=st.lists(st.integers(1, 100), min_size=1, max_size=10),
)
def test_interleaved_order_no_loss(capacity_log: int, sizes: list[int], reads: list[int]) -> None:
    name = f"t{os.getpid()}-hyp"
    with ringbuffer.create(name, SCHEMA, capacity=1 << capacity_log) as w:
        r = ringbuffer.attach(name, "a", timeout=1)
        got: list[int] = []
        pending = list(sizes)
        t = publish_in_thread(w, [batch(sum(sizes[:i]), n) for i, n in enumerate(sizes)])
        i = 0
        while len(got) < sum(pending):
            b = r.read(max_records=reads[i % len(reads)], timeout=WAIT)
            assert b is not None, "reader timed out"
            got += b.column("seq").to_pylist()
            i += 1
        t.join(WAIT)
        assert not t.is_alive()
        assert got == list(range(sum(sizes)))
        r.close()
    assert not ringbuffer.segment_path(name).exists()


def test_late_joiner_starts_at_oldest_record(ring_name: str) -> None:
    with ringbuffer.create(ring_name, SCHEMA, capacity=8) as w:
        w.publish(batch(0, 5))
        r = ringbuffer.attach(ring_name, "early", timeout=1)
        assert got(r.read(timeout=1)).column("seq").to_pylist() == [0, 1, 2, 3, 4]
        r.close()
        w.publish(batch(5, 7))  # no live reader: records 0..3 are overwritten
        late = ringbuffer.attach(ring_name, "late", timeout=1)
        seqs = []
        while (b := late.read(timeout=0)) is not None:
            seqs += b.column("seq").to_pylist()
        assert seqs == list(range(4, 12))
        late.close()


def test_end_of_stream(ring_name: str) -> None:
    with ringbuffer.create(ring_name, SCHEMA, capacity=8) as w:
        r = ringbuffer.attach(ring_name, "a", timeout=1)
        w.publish(batch(0, 3))
        w.end()
        assert not r.ended
        assert got(r.read(timeout=1)).num_rows == 3
        assert r.read(timeout=5) is None and r.ended
        assert w.wait_drained(timeout=1)
        r.close()


def test_schema_checks(ring_name: str) -> None:
    with ringbuffer.create(ring_name, SCHEMA, capacity=8) as w:
        with pytest.raises(ringbuffer.SchemaMismatch, match=r"'val'.*expected int64"):
            ringbuffer.attach(ring_name, "a", timeout=1, expect={"val": "int64"})
        with pytest.raises(ringbuffer.SchemaMismatch, match="missing columns"):
            w.publish({"seq": np.arange(2, dtype=np.uint64)})
    with pytest.raises(ValueError, match="power of two"):
        ringbuffer.create(ring_name, SCHEMA, capacity=12)
    with pytest.raises(ringbuffer.SchemaMismatch, match="unknown column dtype"):
        ringbuffer.create(ring_name, {"x": "decimal"}, capacity=8)


def test_corrupt_header_is_a_clear_error(ring_name: str) -> None:
    with ringbuffer.create(ring_name, SCHEMA, capacity=8):
        path = ringbuffer.segment_path(ring_name)
        with open(path, "r+b") as f:
            f.seek(8)
            f.write((99).to_bytes(4, "little"))  # layout version 99
        with pytest.raises(ringbuffer.SchemaMismatch, match="layout version 99"):
            ringbuffer.attach(ring_name, "a", timeout=1)


def test_segment_mode_0600_and_removed_on_close(ring_name: str) -> None:
    old = os.umask(0)
    try:
        w = ringbuffer.create(ring_name, SCHEMA, capacity=8)
    finally:
        os.umask(old)
    path = ringbuffer.segment_path(ring_name)
    assert ring_name in path.name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    w.close()
    assert not path.exists()


def test_attach_times_out_with_a_clear_message(ring_name: str) -> None:
    with pytest.raises(ringbuffer.RingNotFound, match="is the engine running"):
        ringbuffer.attach(ring_name, "a", timeout=0.05)


def test_second_live_writer_is_refused(ring_name: str) -> None:
    with (
        ringbuffer.create(ring_name, SCHEMA, capacity=8),
        pytest.raises(ringbuffer.RingBusy, match="live writer"),
    ):
        ringbuffer.create(ring_name, SCHEMA, capacity=8)


# -- across processes ----------------------------------------------------------------------


@pytest.mark.parametrize("readers", [1, 2, 4, 8])
def test_many_readers_order_and_no_loss_across_wraps(ring_name: str, readers: int) -> None:
    capacity, total = 1 << 10, 60_000  # ~60 wrap-arounds
    pipes = [CTX.Pipe() for _ in range(readers)]
    outs = [CTX.Pipe() for _ in range(readers)]
    with ringbuffer.create(ring_name, SCHEMA, capacity=capacity) as w:
        procs = [
            start(consume_all, ring_name, f"r{i}", pipes[i][1], outs[i][1], 700)
            for i in range(readers)
        ]
        for i in range(readers):
            recv(pipes[i][0], f"reader {i} to attach")
        rng = np.random.default_rng(readers)
        at = 0
        while at < total:
            n = min(int(rng.integers(1, 3 * capacity)), total - at)  # some larger than the ring
            w.publish(batch(at, n))
            at += n
        w.end()
        results = [recv(outs[i][0], f"reader {i} result") for i in range(readers)]
        for i, p in enumerate(procs):
            join(p, f"reader {i}")
    expected_sum = total * (total - 1) // 2
    for count, total_sum, first, ok, ended in results:
        assert (count, total_sum, first, ok, ended) == (total, expected_sum, 0, True, True)


def test_slow_reader_holds_back_writer_memory_bounded(ring_name: str) -> None:
    capacity = 64
    ctl, child = CTX.Pipe()
    with ringbuffer.create(ring_name, SCHEMA, capacity=capacity) as w:
        p = start(step_reader, ring_name, "slow", child)
        assert recv(ctl, "reader to attach") == 0
        t = publish_in_thread(w, [batch(0, 10 * capacity)])
        released = 0
        while released < 10 * capacity:
            # The writer has filled the ring and is blocked on this reader: it never runs
            # more than one ring ahead of what the reader released.
            assert w.cursor - released <= capacity
            ctl.send(37)
            released = recv(ctl, "a read")
            assert released > 0
        ctl.send(0)
        t.join(WAIT)
        assert not t.is_alive(), "writer still blocked after the reader read everything"
        join(p, "slow reader")


def test_killed_reader_stops_gating(ring_name: str) -> None:
    ready, child = CTX.Pipe()
    with ringbuffer.create(ring_name, SCHEMA, capacity=64) as w:
        w.publish(batch(0, 10))
        p = start(hold, ring_name, "victim", child, child, 10)
        recv(ready, "reader to attach")
        t = publish_in_thread(w, [batch(10, 500)])
        t.join(0.2)  # a bounded look, not a synchronisation: the writer must be blocked
        assert t.is_alive() and w.cursor <= 10 + 64
        os.kill(p.pid, signal.SIGKILL)
        t.join(WAIT)
        assert not t.is_alive(), "writer still blocked on a dead reader"
        p.join(WAIT)


def test_resume_from_commit_after_kill(ring_name: str) -> None:
    ready, child = CTX.Pipe()
    with ringbuffer.create(ring_name, SCHEMA, capacity=64) as w:
        w.publish(batch(0, 40))
        p = start(hold, ring_name, "proc", child, child, 25)
        assert recv(ready, "reader to commit") == 25
        os.kill(p.pid, signal.SIGKILL)
        p.join(WAIT)
        w.publish(batch(40, 40))  # commit-released: 25..39 are still protected... while gating
        r = ringbuffer.attach(ring_name, "proc", timeout=1)
        seqs = []
        while (b := r.read(timeout=0)) is not None:
            seqs += b.column("seq").to_pylist()
        assert seqs == list(range(25, 80))
        r.close()


def test_resume_after_overwrite_is_a_loud_overrun(ring_name: str) -> None:
    with ringbuffer.create(ring_name, SCHEMA, capacity=8) as w:
        r = ringbuffer.attach(ring_name, "proc", timeout=1)
        w.publish(batch(0, 4))
        assert got(r.read(max_records=2, timeout=1)).num_rows == 2
        r.commit()
        r.close()
        w.publish(batch(4, 20))  # nobody gates: 2..15 are overwritten
        with pytest.raises(ringbuffer.Overrun, match="14 records were overwritten"):
            ringbuffer.attach(ring_name, "proc", timeout=1)


def test_duplicate_consumer_name_is_refused(ring_name: str) -> None:
    with ringbuffer.create(ring_name, SCHEMA, capacity=8):
        r = ringbuffer.attach(ring_name, "mid-price", timeout=1)
        with pytest.raises(ringbuffer.ConsumerNameInUse, match="'mid-price' is in use"):
            ringbuffer.attach(ring_name, "mid-price", timeout=1)
        r.close()
        ringbuffer.attach(ring_name, "mid-price", timeout=1).close()  # free again


def test_crashed_writer_segment_is_reclaimed(ring_name: str) -> None:
    ready, child = CTX.Pipe()
    p = start(write_and_die, ring_name, child)
    assert recv(ready, "writer to publish") == 10
    old = ringbuffer.attach(ring_name, "old", timeout=1)
    assert got(old.read(timeout=1)).num_rows == 10
    os.kill(p.pid, signal.SIGKILL)
    p.join(WAIT)
    assert ringbuffer.segment_path(ring_name).exists()  # a crash leaves the segment
    with ringbuffer.create(ring_name, SCHEMA, capacity=64) as w:
        with pytest.raises(ringbuffer.RingReset, match="recreated"):
            old.read(timeout=1)
        old.close()
        fresh = ringbuffer.attach(ring_name, "old", timeout=1)
        assert fresh.generation == old.generation + 1
        w.publish(batch(0, 3))
        assert got(fresh.read(timeout=1)).num_rows == 3
        fresh.close()


def test_evicted_reader_fails_with_overrun(ring_name: str) -> None:
    with ringbuffer.create(ring_name, SCHEMA, capacity=8, evict_after=0.05) as w:
        r = ringbuffer.attach(ring_name, "lazy", timeout=1)
        w.publish(batch(0, 8))
        w.publish(batch(8, 8))  # blocks on "lazy" for 50 ms, evicts it, goes on
        assert w.cursor == 16
        with pytest.raises(ringbuffer.Overrun, match="evicted"):
            r.read(timeout=1)
        r.close()


def test_wait_strategy_parks_after_sleeping_park_after(monkeypatch: pytest.MonkeyPatch) -> None:
    naps: list[float] = []
    monkeypatch.setattr(time, "sleep", naps.append)
    w = ringbuffer.WaitStrategy(spins=2, yields=1, min_sleep=1e-4, max_sleep=1e-3,
                                park_after=4e-3, park_sleep=5e-3)  # fmt: skip
    for attempt in range(10):
        w.pause(attempt)
    # two spins and a yield sleep not; then 0.1, 0.2, 0.4, 0.8 ms, and parked from the fifth
    # sleep on (4 sleeps of at most max_sleep make park_after)
    assert naps == [1e-4, 2e-4, 4e-4, 8e-4, 5e-3, 5e-3, 5e-3]


class _Recorder:
    """A wait strategy that records the attempts it is asked to wait for."""

    def __init__(self) -> None:
        self.attempts: list[int] = []

    def pause(self, attempt: int) -> None:
        self.attempts.append(attempt)
        time.sleep(1e-4)


def test_idle_reader_keeps_backing_off_across_reads(ring_name: str) -> None:
    w = ringbuffer.create(ring_name, {"seq": "uint64"}, capacity=16)
    wait = _Recorder()
    r = ringbuffer.attach(ring_name, "c", timeout=WAIT, wait=wait)  # type: ignore[arg-type]
    try:
        assert r.read(timeout=0.02) is None
        first = list(wait.attempts)
        assert r.read(timeout=0.02) is None  # goes on from where the first read left off
        assert first[0] == 0 and wait.attempts[len(first)] == first[-1] + 1
        w.publish({"seq": np.arange(3, dtype=np.uint64)})
        assert got(r.read(timeout=WAIT)).num_rows == 3
        wait.attempts.clear()
        assert r.read(timeout=0.02) is None  # records arrived: back to the start
        assert wait.attempts[0] == 0
    finally:
        r.close()
        w.close()
