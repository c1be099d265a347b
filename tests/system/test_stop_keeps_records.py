"""Issue 11, item 1: a processor killed, then the engine stopped: nothing lost, nothing silent.

Before: the engine's stop did not wait for the dead consumer (the SIGTERM that unblocked a
publish also cut the drain short) and removed the ring with its unread records; the restarted
processor logged "records missing" and exited 0 with lines missing.
"""

from __future__ import annotations

import contextlib
import functools
import signal
from pathlib import Path

import numpy as np
import pytest

import ringbuffer
from common.schema import QUOTE_SCHEMA

from ..support import wait_until
from ..support.oracle import expected_logs
from ..support.processor import logs, out_args, written_up_to
from ..support.programs import Proc
from ..support.quotes import make_quotes, part, reference


@pytest.mark.parametrize("first", ["engine", "processor"])
def test_processor_killed_then_engine_stopped_then_both_restarted_loses_nothing(
    csv20k: Path, ring_name: str, tmp_path: Path, first: str
) -> None:
    """Restarted in either order: a processor that comes back before the engine waits for it
    (the kept ring's end of stream was withdrawn: its only reader behind was dead)."""
    out, state = tmp_path / "out", tmp_path / "state"
    engine_args = ["--mode", "historical", "--historical", str(csv20k), "--ring", ring_name,
                   "--state-dir", str(state), "--wait-for-consumers", "1",
                   "--consumer-grace", "1"]  # fmt: skip
    processor_args = [*out_args(out, ring_name, "p"), "--exit-at-end"]
    procs: list[Proc] = []
    try:
        procs.append(p1 := Proc("processor", processor_args))
        procs.append(e1 := Proc("engine", [*engine_args, "--speed", "1"]))
        wait_until(functools.partial(written_up_to, out, 2000, "p"), "2000 records written")
        p1.p.send_signal(signal.SIGKILL)
        p1.wait()
        e1.signal(signal.SIGTERM)
        assert e1.wait() == 0, e1.stderr()
        kept = e1.wait_log(r"consumer had not read everything at exit")
        assert "consumer=p " in kept and "unread=" in kept, kept
        assert ring_name in ringbuffer.segments(ring_name), "the ring was not kept"

        again = {
            "engine": ("engine", [*engine_args, "--speed", "max", "--exit-at-end"]),
            "processor": ("processor", processor_args),
        }
        procs.append(a := Proc(*again[first]))
        a.wait_log(r' engine "ring ready" ' if first == "engine" else r' "waiting for the ring" ')
        procs.append(b := Proc(*again["processor" if first == "engine" else "engine"]))
        e2, p2 = (a, b) if first == "engine" else (b, a)
        assert p2.wait() == 0, p2.stderr()
        assert e2.wait() == 0, e2.stderr()
        assert "records missing" not in p2.stderr()
    finally:
        for proc in procs:
            proc.kill()
    mid, err = tmp_path / "mid.ref", tmp_path / "err.ref"
    expected_logs(str(csv20k), 20.0, str(mid), str(err))
    assert logs(out) == (mid.read_bytes(), err.read_bytes())
    assert ringbuffer.segments(ring_name) == []


def test_a_gap_in_the_stream_stops_the_processor_with_exit_1(
    ring_name: str, tmp_path: Path
) -> None:
    """Records never delivered (seq 100-149): the lines before them are written, exit 1."""
    q = make_quotes(200, seed=11)
    out = tmp_path / "out"
    with ringbuffer.create(ring_name, QUOTE_SCHEMA, capacity=1 << 10) as w:
        proc = Proc("processor", [*out_args(out, ring_name), "--exit-at-end"])
        try:
            w.publish(part(q, slice(0, 100)))
            w.publish(part(q, np.arange(150, 200)))
            w.end()
            assert proc.wait() == 1, proc.stderr()
        finally:
            with contextlib.suppress(Exception):
                proc.kill()
    assert "first_missing=100 count=50" in proc.stderr(), proc.stderr()
    assert logs(out) == reference(part(q, slice(0, 100)))


def test_an_exit_at_end_engine_whose_consumer_died_warns_and_keeps_its_records(
    csv20k: Path, ring_name: str, tmp_path: Path
) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    p = Proc("processor", [*out_args(out, ring_name, "p"), "--exit-at-end"])
    e = Proc("engine", ["--mode", "historical", "--historical", str(csv20k), "--ring", ring_name,
                        "--state-dir", str(state), "--wait-for-consumers", "1", "--speed", "1",
                        "--exit-at-end", "--consumer-grace", "0.5"])  # fmt: skip
    try:
        wait_until(functools.partial(written_up_to, out, 1000, "p"), "1000 records written")
        p.p.send_signal(signal.SIGKILL)
        p.wait()
        assert e.wait() == 0, e.stderr()
        warning = e.wait_log(r"consumer had not read everything at exit")
        unread = int(warning.split("unread=")[1].split()[0])
        assert unread > 0 and "consumer=p " in warning, warning
    finally:
        p.kill()
        e.kill()
        for name in ringbuffer.segments(ring_name):  # the kept ring: no next engine here
            ringbuffer.segment_path(name).unlink()
