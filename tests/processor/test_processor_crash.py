"""The processor under stops, kills, engine restarts, lost records and a full disk.

The core promise: a kill -9 at any moment, then a restart under the same name, gives logs
byte-identical to an uninterrupted run; the state file never claims more than is on disk.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import ringbuffer
from common.schema import QUOTE_SCHEMA

from ..support import wait_until
from ..support.processor import (
    Publisher,
    attached,
    last_seq,
    logs,
    out_args,
    read_state,
    state_path,
    written_up_to,
)
from ..support.programs import Proc
from ..support.quotes import make_quotes, part, publish, reference


def test_sigterm_mid_stream_leaves_consistent_logs(
    spawn: Callable[..., Proc], ring_name: str, tmp_path: Path, publishers: list[Publisher]
) -> None:
    q = make_quotes(200_000, seed=11)
    out = tmp_path / "out"
    with ringbuffer.create(ring_name, QUOTE_SCHEMA, capacity=1 << 18) as w:
        proc = spawn(*out_args(out, ring_name))
        wait_until(lambda: attached(w, proc), "the processor to attach")
        publishers.append(pub := Publisher(w, q, batch=500, every=0.004))
        wait_until(lambda: last_seq(out) >= 20_000, "some records written")
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
            wait_until(functools.partial(attached, w, proc), "the processor to attach")
            target = last_seq(out) + step
            wait_until(functools.partial(written_up_to, out, target), f"seq {target} written")
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
        wait_until(lambda: last_seq(out) == 999, "the first 1000 written")
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
        wait_until(lambda: last_seq(out) == 1199, "the first ring read")
    with ringbuffer.create(ring_name, QUOTE_SCHEMA, capacity=1 << 12) as w2:
        publish(w2, part(q, slice(1000, 2000)))
        w2.end()
        wait_until(lambda: last_seq(out) == 1999, "the second ring read")
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
        wait_until(lambda: attached(w, proc), "the processor to attach")
        proc.signal(signal.SIGSTOP)  # a processor too slow to keep up
        try:
            w.publish(q)  # blocks on the stopped processor, then evicts it and goes on
        finally:
            proc.signal(signal.SIGCONT)
        assert proc.wait() == 1, proc.stderr()
    message = proc.stderr()
    # Either the read finds the eviction (an overrun), or the batch it got already shows the
    # break in the sequence (the writer overwrote it): either way nothing after it is written.
    assert ("records were lost" in message and "unread=" in message) or (
        "records missing from the stream" in message
    ), message
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
