"""The processor under stops, kills, engine restarts, lost records and a full disk.

The core promise: a kill -9 at any moment, then a restart under the same name, gives logs
byte-identical to an uninterrupted run; the state file never claims more than is on disk.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import ringbuffer
from common.schema import QUOTE_SCHEMA

from .test_processor_cli import (
    WAIT,
    Proc,
    Quotes,
    attached,
    logs,
    make_quotes,
    out_args,
    part,
    publish,
    read_state,
    reference,
    spawn,
    state_path,
    wait_for,
)

__all__ = ["spawn"]  # the fixture, imported for the tests below


class Publisher:
    """Publishes quotes from a thread in batches, so that a processor is mid-stream.

    Each batch waits ``every`` seconds; with ``ahead``, it also waits until fewer than
    ``ahead`` records are published beyond ``written()`` (what the processor has written), so
    the stream cannot run out while a test still means to interrupt the processor.
    """

    def __init__(
        self, w: ringbuffer.Writer, q: Quotes, batch: int, every: float = 0.0,
        ahead: int | None = None, written: Callable[[], int] | None = None,
    ) -> None:  # fmt: skip
        self.w, self.q, self.batch, self.every = w, q, batch, every
        self.ahead, self.written = ahead, written
        self.quit = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _room(self, published: int) -> bool:
        ahead = self.ahead  # read once: the test may lift the limit at any time
        if ahead is None or self.written is None:
            return True
        return published - self.written() < ahead

    def _run(self) -> None:
        try:
            n = len(self.q["seq"])
            for lo in range(0, n, self.batch):
                deadline = time.monotonic() + WAIT
                while not self._room(lo):  # flow control: poll what the processor wrote
                    if self.quit.wait(0.005):
                        return
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the processor wrote nothing for {WAIT}s")
                if self.quit.wait(self.every):  # the pace, and a way out
                    return
                self.w.publish(part(self.q, slice(lo, lo + self.batch)))
            self.done.set()
        except BaseException as exc:
            self.error = exc
            raise

    def finish(self) -> None:
        """Wait until everything is published."""
        wait_for("the publisher to finish", lambda: self.done.is_set() or self.error)
        assert self.error is None, self.error

    def stop(self) -> None:
        self.quit.set()
        self.thread.join(WAIT)


@pytest.fixture
def publishers() -> Iterator[list[Publisher]]:
    made: list[Publisher] = []
    yield made
    for p in made:
        p.stop()


def last_seq(folder: Path, name: str = "mid-price") -> int:
    """The state file's last seq (-1 before the first record)."""
    state = read_state(state_path(folder, name)) or {}
    value = state.get("last_seq")
    return -1 if value is None else value


def test_sigterm_mid_stream_leaves_consistent_logs(
    spawn: Callable[..., Proc], ring_name: str, tmp_path: Path, publishers: list[Publisher]
) -> None:
    q = make_quotes(200_000, seed=11)
    out = tmp_path / "out"
    with ringbuffer.create(ring_name, QUOTE_SCHEMA, capacity=1 << 18) as w:
        proc = spawn(*out_args(out, ring_name))
        wait_for("the processor to attach", lambda: attached(w, proc))
        publishers.append(pub := Publisher(w, q, batch=500, every=0.004))
        wait_for("some records written", lambda: last_seq(out) >= 20_000)
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.stderr()
        pub.stop()
        assert not any(c["name"] == "mid-price" for c in w.consumers()), "slot not released"
    state = read_state(state_path(out))
    assert state is not None
    n = state["last_seq"] + 1
    assert 20_000 <= n < 200_000, "the stop did not come mid-stream"
    mid, err = logs(out)
    assert (len(mid), len(err)) == (state["mid_bytes"], state["error_bytes"])
    assert (mid, err) == reference(part(q, slice(0, n)))  # a prefix ending on a line boundary
    assert "stopping signal=15" in proc.stderr()
    assert " summary " in proc.stderr()


def test_kill_9_at_random_moments_then_restart_gives_identical_logs(
    spawn: Callable[..., Proc], ring_name: str, tmp_path: Path, publishers: list[Publisher]
) -> None:
    rng = np.random.default_rng(20251002)
    n = 60_000
    q = make_quotes(n, seed=12)
    out = tmp_path / "out"
    # Capacity >= every record: a dead processor's slot stops gating the writer, so nothing it
    # had not committed may be overwritten before the next one resumes.
    with ringbuffer.create(ring_name, QUOTE_SCHEMA, capacity=1 << 16) as w:
        publishers.append(pub := Publisher(
            w, q, batch=250, ahead=2_500, written=lambda: last_seq(out) + 1
        ))  # fmt: skip
        # The first kill right after attaching (before or while the logs are cut back), the
        # others after a random number of records more, plus a random moment.
        steps = [0, *rng.integers(1_000, 8_000, 3).tolist()]
        for step in steps:
            proc = spawn(*out_args(out, ring_name))
            wait_for("the processor to attach", lambda p=proc: attached(w, p))
            target = last_seq(out) + step
            wait_for(f"seq {target} written", lambda t=target: last_seq(out) >= t)
            time.sleep(float(rng.uniform(0, 0.03)))  # a random moment, not a sync
            assert proc.p.poll() is None, f"processor exited early:\n{proc.stderr()}"
            assert not pub.done.is_set(), "the stream ran out before the kill"
            proc.p.kill()
            proc.wait()
            state = read_state(state_path(out))
            if state is None:
                continue
            mid, err = logs(out)  # the state never claims more than is on disk
            assert len(mid) >= state["mid_bytes"] and len(err) >= state["error_bytes"]
            for f in ("mid.log", "err.log"):  # as if a crash tore a line in two
                with (out / f).open("ab") as torn:
                    torn.write(b"2025-10-02 23:59:5")
        pub.ahead = None  # no more kills: let the rest through
        final = spawn(*out_args(out, ring_name), "--exit-at-end")
        pub.finish()
        w.end()
        assert final.wait() == 0, final.stderr()
    assert logs(out) == reference(q)
    assert "resuming" in final.stderr()


def test_ring_recreated_mid_stream_gives_no_duplicates(
    spawn: Callable[..., Proc], ring_name: str, tmp_path: Path
) -> None:
    q = make_quotes(3000, seed=13)
    out = tmp_path / "out"
    w1 = ringbuffer.create(ring_name, QUOTE_SCHEMA, capacity=1 << 12)
    try:
        proc = spawn(*out_args(out, ring_name), "--exit-at-end")
        publish(w1, part(q, slice(0, 1000)))
        wait_for("the first 1000 written", lambda: last_seq(out) == 999)
    finally:
        w1.close()  # an engine stopping without ending the stream
    with ringbuffer.create(ring_name, QUOTE_SCHEMA, capacity=1 << 12) as w2:
        publish(w2, part(q, slice(600, 3000)))  # the restarted engine sends 600-999 again
        w2.end()
        assert proc.wait() == 0, proc.stderr()
    assert logs(out) == reference(q)
    assert "duplicates=400" in proc.stderr()
    assert "recreated" in proc.stderr()


def test_new_ring_after_the_end_is_followed(
    spawn: Callable[..., Proc], ring_name: str, tmp_path: Path
) -> None:
    """Without --exit-at-end the processor outlives an ended stream and reads the next ring."""
    q = make_quotes(2000, seed=14)
    out = tmp_path / "out"
    with ringbuffer.create(ring_name, QUOTE_SCHEMA, capacity=1 << 12) as w1:
        proc = spawn(*out_args(out, ring_name))
        publish(w1, part(q, slice(0, 1200)))
        w1.end()
        wait_for("the first ring read", lambda: last_seq(out) == 1199)
    with ringbuffer.create(ring_name, QUOTE_SCHEMA, capacity=1 << 12) as w2:
        publish(w2, part(q, slice(1000, 2000)))
        w2.end()
        wait_for("the second ring read", lambda: last_seq(out) == 1999)
        proc.signal(signal.SIGINT)
        assert proc.wait() == 0, proc.stderr()
    assert logs(out) == reference(q)


def test_lost_records_stop_the_processor_with_exit_1(
    spawn: Callable[..., Proc], ring_name: str, tmp_path: Path
) -> None:
    q = make_quotes(3000, seed=15)
    out = tmp_path / "out"
    with ringbuffer.create(ring_name, QUOTE_SCHEMA, capacity=256, evict_after=0.2) as w:
        proc = spawn(*out_args(out, ring_name))
        wait_for("the processor to attach", lambda: attached(w, proc))
        proc.signal(signal.SIGSTOP)  # a processor too slow to keep up
        try:
            w.publish(q)  # blocks on the stopped processor, then evicts it and goes on
        finally:
            proc.signal(signal.SIGCONT)
        assert proc.wait() == 1, proc.stderr()
    message = proc.stderr()
    assert "records were lost" in message and "unread=" in message, message
    state = read_state(state_path(out))
    assert state is not None
    assert (state["mid_bytes"], state["error_bytes"]) == tuple(map(len, logs(out)))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_exits_1_and_state_stays_behind_the_disk(
    spawn: Callable[..., Proc], ring_name: str, tmp_path: Path
) -> None:
    q = make_quotes(2000, seed=16)
    st = tmp_path / "state.json"
    with ringbuffer.create(ring_name, QUOTE_SCHEMA, capacity=1 << 12) as w:
        proc = spawn("--ring", ring_name, "--mid-log", str(tmp_path / "mid.log"),
                     "--error-log", "/dev/full", "--state", str(st), "--exit-at-end")
        publish(w, q)
        w.end()
        assert proc.wait() == 1, proc.stderr()
    assert "cannot write error log /dev/full: No space left on device" in proc.stderr()
    state = read_state(st)
    assert state is not None and state["error_bytes"] == 0 and state["last_seq"] is None
    assert state["mid_bytes"] <= (tmp_path / "mid.log").stat().st_size
