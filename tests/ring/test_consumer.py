"""ringbuffer.ResumingConsumer against real rings in this process: deduplication, gaps,
re-attaching, stream tags, commit tokens, resuming, and the stop predicate."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import pytest

import ringbuffer
from ringbuffer import CommitToken, Delivery, Gap, ResumingConsumer

SCHEMA = {"seq": "uint64", "val": "float64"}
WAIT = 10.0


def records(first: int, end: int) -> dict[str, np.ndarray]:
    """Records numbered ``first`` up to ``end`` (excluded)."""
    seq = np.arange(first, end, dtype=np.uint64)
    return {"seq": seq, "val": seq.astype(np.float64) / 4}


class Events(ringbuffer.ConsumerEvents):
    """Notes each event; ``on_waiting`` runs when the consumer starts waiting for the ring."""

    def __init__(self, on_waiting: Callable[[], object] | None = None) -> None:
        self.seen: list[tuple] = []
        self.on_waiting = on_waiting

    def waiting(self, consumer: ResumingConsumer) -> None:
        self.seen.append(("waiting",))
        if self.on_waiting is not None:
            self.on_waiting()

    def attached(self, consumer: ResumingConsumer, resume: bool) -> None:
        self.seen.append(("attached", consumer.epoch, consumer.position, consumer.tag, resume))

    def reattaching(self, consumer: ResumingConsumer, cause: ringbuffer.RingReset | None) -> None:
        self.seen.append(("reattaching", None if cause is None else type(cause).__name__))

    def new_stream(self, consumer: ResumingConsumer, old_tag: int) -> None:
        self.seen.append(("new_stream", old_tag, consumer.tag))


def deliver(c: ResumingConsumer, n: int) -> list[Delivery]:
    """Read until deliveries holding ``n`` records (before deduplication) came."""
    got: list[Delivery] = []
    deadline = time.monotonic() + WAIT
    while sum(d.records for d in got) < n:
        assert time.monotonic() < deadline, f"{n} records not delivered within {WAIT}s: {got}"
        d = c.read(timeout=0.05)
        if d is not None:
            got.append(d)
    assert sum(d.records for d in got) == n
    return got


def read_to_end(c: ResumingConsumer) -> None:
    deadline = time.monotonic() + WAIT
    while not c.ended:
        assert time.monotonic() < deadline, "the end of the stream did not come"
        assert c.read(timeout=0.05) is None, "records after the end"


def kept(got: list[Delivery]) -> list[int]:
    return [s for d in got for s in d.batch.column("seq").to_pylist()]


def test_writer_restart_republishing_carried_records_drops_them(ring_name: str) -> None:
    """A writer goes away without ending the stream (RingReset); the next writer of the same
    stream re-publishes the records left in the ring under their numbers: they are dropped."""
    events = Events()
    w1 = ringbuffer.create(ring_name, SCHEMA, capacity=64, tag=7)
    w2: list[ringbuffer.Writer] = []

    def restart() -> None:  # the new writer comes while the consumer waits for the ring
        w2.append(ringbuffer.create(ring_name, SCHEMA, capacity=64, tag=7))
        w2[0].publish(records(5, 15))

    events.on_waiting = restart
    c = ResumingConsumer(ring_name, "c", events=events, attach_poll=0.05)
    try:
        assert c.attach()
        w1.publish(records(0, 10))
        first = deliver(c, 10)
        assert kept(first) == list(range(10)) and first[-1].last_seq == 9
        w1.close()  # no end: the consumer sees the ring closed under it
        again = deliver(c, 10)
        assert kept(again) == list(range(10, 15))
        assert sum(d.duplicates for d in again) == 5 and c.duplicates == 5
        assert all(d.gap is None for d in again)
        assert again[-1].token.epoch == 2 and again[-1].last_seq == 14
        assert events.seen == [
            ("attached", 1, 0, 7, True),
            ("reattaching", "RingReset"),
            ("waiting",),
            ("attached", 2, 0, 7, True),
        ]
    finally:
        c.close()
        w1.close()
        for w in w2:
            w.close()


def test_gap_is_reported_and_the_records_kept(ring_name: str) -> None:
    with ringbuffer.create(ring_name, SCHEMA, capacity=64) as w:
        c = ResumingConsumer(ring_name, "c")
        try:
            w.publish(records(0, 5))
            assert deliver(c, 5)[0].gap is None  # no watermark yet: nothing is missing
            w.publish(records(8, 10))
            (d,) = deliver(c, 2)
            assert d.gap == Gap(first_missing=5, count=3)
            assert d.batch.column("seq").to_pylist() == [8, 9] and d.duplicates == 0
            assert d.last_seq == 9 == c.watermark
        finally:
            c.close()


def test_initial_watermark_and_tag_drop_what_was_done(ring_name: str) -> None:
    """The watermark and tag a caller restored from its own durable state."""
    with ringbuffer.create(ring_name, SCHEMA, capacity=64, tag=3) as w:
        w.publish(records(0, 10))
        c = ResumingConsumer(ring_name, "c", watermark=4, tag=3)
        try:
            got = deliver(c, 10)
            assert kept(got) == [5, 6, 7, 8, 9] and c.duplicates == 5
        finally:
            c.close()


def test_replaced_after_the_end_attaches_to_the_new_ring(ring_name: str) -> None:
    events = Events()
    w1 = ringbuffer.create(ring_name, SCHEMA, capacity=64, tag=1)
    w2 = None
    c = ResumingConsumer(ring_name, "c", events=events, idle_after_end=0.01)
    try:
        w1.publish(records(0, 4))
        w1.end()
        assert kept(deliver(c, 4)) == [0, 1, 2, 3]
        read_to_end(c)
        w1.close()
        w2 = ringbuffer.create(ring_name, SCHEMA, capacity=32, tag=1)
        w2.publish(records(2, 6))
        assert kept(deliver(c, 4)) == [4, 5]
        assert c.capacity == 32 and c.epoch == 2
        assert events.seen[1:] == [("reattaching", None), ("attached", 2, 0, 1, True)]
    finally:
        c.close()
        w1.close()
        if w2 is not None:
            w2.close()


def test_a_new_tag_forgets_the_watermark(ring_name: str) -> None:
    """A ring of another stream numbers its records afresh: all of them are delivered."""
    events = Events()
    w1 = ringbuffer.create(ring_name, SCHEMA, capacity=64, tag=1)
    w2 = None
    c = ResumingConsumer(ring_name, "c", events=events, idle_after_end=0.01)
    try:
        w1.publish(records(0, 10))
        w1.end()
        deliver(c, 10)
        read_to_end(c)
        w1.close()
        w2 = ringbuffer.create(ring_name, SCHEMA, capacity=64, tag=2)
        w2.publish(records(0, 5))
        got = deliver(c, 5)
        assert kept(got) == [0, 1, 2, 3, 4] and c.duplicates == 0
        assert all(d.gap is None and d.tag == 2 for d in got)
        assert ("new_stream", 1, 2) in events.seen and c.tag == 2
    finally:
        c.close()
        w1.close()
        if w2 is not None:
            w2.close()


def test_a_token_of_an_earlier_ring_is_not_committed(ring_name: str) -> None:
    w1 = ringbuffer.create(ring_name, SCHEMA, capacity=64, tag=1)
    w2 = None
    c = ResumingConsumer(ring_name, "c", release="commit", idle_after_end=0.01)
    try:
        w1.publish(records(0, 10))
        w1.end()
        stale = deliver(c, 10)[-1].token
        assert stale == CommitToken(epoch=1, position=10)
        read_to_end(c)
        w1.close()
        w2 = ringbuffer.create(ring_name, SCHEMA, capacity=64, tag=1)
        w2.publish(records(10, 30))
        assert deliver(c, 20)[-1].token == CommitToken(epoch=2, position=20)
        assert not c.commit(stale)  # position 10 of the old ring means nothing in this one
        c.close()
        with ringbuffer.attach(ring_name, "c", timeout=WAIT) as r:
            assert r.position == 0, "the stale position was committed to the new ring"
    finally:
        c.close()
        w1.close()
        if w2 is not None:
            w2.close()


def test_resume_redelivers_uncommitted_records_and_drops_them(ring_name: str) -> None:
    """release="commit": what was read but not committed is delivered again to the next
    consumer of that name, and its watermark (the caller's durable state) drops it."""
    with ringbuffer.create(ring_name, SCHEMA, capacity=64, tag=5) as w:
        c1 = ResumingConsumer(ring_name, "c", release="commit")
        try:
            w.publish(records(0, 10))
            done = deliver(c1, 10)[-1]
            assert c1.commit(done.token)
            w.publish(records(10, 20))
            deliver(c1, 10)  # read, its output made durable, but the commit never came
            watermark, tag = c1.watermark, c1.tag
        finally:
            c1.close()
        assert (watermark, tag) == (19, 5)
        w.publish(records(20, 25))
        events = Events()
        c2 = ResumingConsumer(
            ring_name, "c", release="commit", watermark=watermark, tag=tag, events=events
        )
        try:
            got = deliver(c2, 15)  # from the commit at 10
            assert events.seen == [("attached", 1, 10, 5, True)]
            assert kept(got) == [20, 21, 22, 23, 24]
            assert sum(d.duplicates for d in got) == 10
            assert all(d.gap is None for d in got)
        finally:
            c2.close()


def test_stop_ends_the_wait_for_a_missing_ring(ring_name: str) -> None:
    events = Events()
    polls: list[None] = []

    def stop() -> bool:
        polls.append(None)
        return len(polls) >= 3

    c = ResumingConsumer(ring_name, "c", stop=stop, events=events, attach_poll=0.01)
    assert not c.attach()
    assert c.read() is None and not c.attached and not c.ended
    assert events.seen == [("waiting",)]
    c.close()


def test_overrun_propagates(ring_name: str) -> None:
    """Records overwritten while the consumer was away are an error, not a gap."""
    with ringbuffer.create(ring_name, SCHEMA, capacity=16) as w:
        c1 = ResumingConsumer(ring_name, "c", release="commit")
        w.publish(records(0, 4))
        c1.commit(deliver(c1, 4)[-1].token)
        c1.close()
        for first in range(4, 68, 16):
            w.publish(records(first, first + 16))  # nothing gates: the commit is overwritten
        c2 = ResumingConsumer(ring_name, "c", release="commit")
        with pytest.raises(ringbuffer.Overrun):
            c2.attach()
        c2.close()


def test_a_ring_without_the_sequence_column_is_refused(ring_name: str) -> None:
    with ringbuffer.create(ring_name, {"n": "uint64"}, capacity=16) as w:
        w.publish({"n": np.arange(3, dtype=np.uint64)})
        with ResumingConsumer(ring_name, "c") as c, pytest.raises(ringbuffer.SchemaMismatch):
            deliver(c, 3)


def test_the_default_events_log_through_the_ring_s_logger(
    ring_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    polls: list[None] = []

    def stop() -> bool:
        polls.append(None)
        return len(polls) >= 2

    with caplog.at_level(logging.INFO, logger="ringbuffer"):
        assert not ResumingConsumer(ring_name, "c", stop=stop, attach_poll=0.01).attach()
    [record] = [r for r in caplog.records if r.name == "ringbuffer.consumer"]
    assert record.getMessage() == "waiting for the ring"
    assert record.fields == {"ring": ring_name}  # type: ignore[attr-defined]
