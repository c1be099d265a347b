"""Bodies of the child processes the ring tests start (importable, for the spawn start method)."""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.connection import Connection

import numpy as np

import ringbuffer

CTX = mp.get_context("spawn")
WAIT = 30.0  # the longest any child waits for anything


def consume_all(
    ring: str, consumer: str, ready: Connection, out: Connection, max_records: int
) -> None:
    """Attach, signal ready, read to the end; check order; send (count, sum, first, ok)."""
    r = ringbuffer.attach(ring, consumer, timeout=WAIT)
    ready.send(r.position)
    count, total, first, expected, ok = 0, 0, None, 0, True
    rng = np.random.default_rng(abs(hash(consumer)) % 2**32)
    while True:
        batch = r.read(max_records=int(rng.integers(1, max_records + 1)), timeout=WAIT)
        if batch is None:
            break
        seq = batch.column("seq").to_numpy()
        if first is None:
            first = int(seq[0])
            expected = first
        ok &= bool(np.array_equal(seq, np.arange(expected, expected + len(seq), dtype=np.uint64)))
        ok &= bool(np.array_equal(batch.column("val").to_numpy(), seq.astype(np.float64) * 0.5))
        expected += len(seq)
        count += len(seq)
        total += int(seq.sum())
    out.send((count, total, first, ok, r.ended))
    r.close()


def hold(ring: str, consumer: str, ready: Connection, go: Connection, commit_after: int) -> None:
    """Attach, read ``commit_after`` records and commit them, signal, then wait to be told."""
    r = ringbuffer.attach(ring, consumer, timeout=WAIT, release="commit")
    got = 0
    while got < commit_after:
        batch = r.read(max_records=commit_after - got, timeout=WAIT)
        assert batch is not None
        got += batch.num_rows
    r.commit()
    ready.send(r.position)
    go.poll(WAIT)  # until the test says so (or kills us)
    r.close()


def step_reader(ring: str, consumer: str, ctl: Connection) -> None:
    """Read one batch each time the test asks; report the position after it."""
    r = ringbuffer.attach(ring, consumer, timeout=WAIT)
    ctl.send(r.position)
    while (n := ctl.recv()) > 0:
        batch = r.read(max_records=n, timeout=WAIT)
        ctl.send(-1 if batch is None else r.position)
    r.read(max_records=1, timeout=0)  # releases the last batch
    r.close()


def write_and_die(ring: str, ready: Connection) -> None:
    """Create a ring, publish a little, signal, then wait to be killed (a crashing writer)."""
    w = ringbuffer.create(ring, {"seq": "uint64", "val": "float64"}, capacity=64)
    w.publish({"seq": np.arange(10, dtype=np.uint64), "val": np.arange(10) * 0.5})
    ready.send(w.cursor)
    ready.poll(WAIT)
