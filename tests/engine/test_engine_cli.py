"""``python -m engine`` as users run it: exit codes, switching, resume across restarts."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from tools.pipeline import free_port

from ..support.enginetools import Consumer, Proc, no_segment, run_module

HEADER = ",index,timestamp,ticker,ask_amount,ask_price,bid_price,bid_amount,latency\n"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """6,000 generated rows in the real layout, no bad rows."""
    out = tmp_path / "gen"
    res = run_module("data.generate", "--rows", "6000", "--out-dir", str(out),
                     "--kind", "historical", "--bad-rows", "0", "--seed", "7")  # fmt: skip
    assert res.returncode == 0, res.stderr
    return out / "historical_sample.csv"


def engine(ring: str, state: Path, *args: str) -> Proc:
    return Proc("engine", ["--ring", ring, "--state-dir", str(state), *args])


def assert_exactly_once(c: Consumer, total: int) -> None:
    assert c.error is None, c.error
    assert c.column("seq").tolist() == list(range(total)), "records missing or repeated"
    assert c.column("pos").tolist() == list(range(total)), "historical positions not contiguous"


def test_help_and_usage_errors(tmp_path: Path) -> None:
    assert "--wait-for-consumers" in run_module("engine", "--help").stdout
    bad = run_module("engine", "--mode", "historical", "--speed", "fast")
    assert bad.returncode == 2 and "--speed" in bad.stderr
    bad = run_module("engine", "--mode", "historical", "--capacity", "1000")
    assert bad.returncode == 2 and "power of two" in bad.stderr


def test_missing_column_exits_2_naming_it(tmp_path: Path, ring_name: str) -> None:
    path = tmp_path / "q.csv"
    path.write_text("timestamp,ticker,bid_price,ask_price\n2025-01-01 00:00:00,A,1,2\n")
    res = run_module("engine", "--mode", "historical", "--historical", str(path),
                     "--ring", ring_name, "--state-dir", str(tmp_path / "s"))  # fmt: skip
    assert res.returncode == 2
    assert "latency" in res.stderr and str(path) in res.stderr
    assert no_segment(ring_name)


def test_strict_stops_at_first_rejected_row(tmp_path: Path, ring_name: str) -> None:
    path = tmp_path / "q.csv"
    rows = "0,0,2025-01-01 00:00:00,A,1,2,1,1,5\n1,1,2025-01-01 00:00:01,A,1,2,1,1,-3\n"
    path.write_text(HEADER + rows)
    state = tmp_path / "s"
    res = run_module("engine", "--mode", "historical", "--historical", str(path), "--strict",
                     "--ring", ring_name, "--state-dir", str(state))  # fmt: skip
    assert res.returncode == 2
    assert f"{path}:3: latency is negative" in res.stderr
    assert "latency is negative" in (state / "rejected_rows.csv").read_text()


def test_rejected_rows_are_recorded_and_the_rest_published(tmp_path: Path, ring_name: str) -> None:
    path = tmp_path / "q.csv"
    path.write_text(
        HEADER
        + "0,0,2025-01-01 00:00:00,A,1,2,1,1,5\n"
        + "1,1,2025-01-01 00:00:01,A,1,abc,1,1,5\n"
        + "2,2,not a time,A,1,2,1,1,5\n"
        + "3,3,2025-01-01 00:00:02,A,1,2,0,1,5\n"  # bid 0: data, not rejected
    )
    state = tmp_path / "s"
    c = Consumer(ring_name)
    c.stop_at_end.set()
    c.start()
    p = engine(ring_name, state, "--mode", "historical", "--historical", str(path),
               "--speed", "max", "--exit-at-end", "--wait-for-consumers", "1")  # fmt: skip
    assert p.wait() == 0, p.stderr()
    c.join(30)
    assert c.column("seq").tolist() == [0, 1]
    rejected = (state / "rejected_rows.csv").read_text().splitlines()
    assert rejected[0] == "source,line,reason,raw"
    assert [r.split(",")[1] for r in rejected[1:]] == ["3", "4"]
    assert "ask_price is not a number" in rejected[1] and "timestamp" in rejected[2]
    assert no_segment(ring_name)


def test_switch_by_signal_and_control_file_resumes_without_gap(
    sample: Path, tmp_path: Path, ring_name: str
) -> None:
    state = tmp_path / "s"
    c = Consumer(ring_name)
    c.stop_at_end.set()
    c.start()
    # The sample spans ~2.7 s of arrivals: at speed 2 the replay takes over a second.
    p = engine(ring_name, state, "--mode", "historical", "--historical", str(sample),
               "--speed", "2", "--exit-at-end", "--wait-for-consumers", "1",
               "--live-url", "ws://127.0.0.1:9")  # nothing listens: live mode publishes nothing
    c.wait_count(100)
    p.signal(signal.SIGUSR1)
    p.wait_log(r"switched from=historical mode=live")
    (state / "mode").write_text("historical\n")
    p.wait_log(r"switched from=live mode=historical")
    p.signal(signal.SIGUSR1)
    p.wait_log(r"switched from=historical mode=live", count=2)
    p.signal(signal.SIGUSR1)
    p.wait_log(r"switched from=live mode=historical", count=2)
    assert p.wait() == 0, p.stderr()
    c.join(30)
    assert_exactly_once(c, 6000)
    assert (state / "mode").read_text().strip() == "historical"


def test_restart_resumes_after_last_published(
    sample: Path, tmp_path: Path, ring_name: str
) -> None:
    state = tmp_path / "s"
    c = Consumer(ring_name)
    c.start()
    args = ["--mode", "historical", "--historical", str(sample), "--speed", "2",
            "--wait-for-consumers", "1"]  # fmt: skip
    first = engine(ring_name, state, *args)
    c.wait_count(500)
    first.signal(signal.SIGTERM)
    assert first.wait() == 0, first.stderr()
    assert no_segment(ring_name)
    c.stop_at_end.set()
    second = engine(ring_name, state, *args, "--speed", "max", "--exit-at-end")
    second.wait_log(r"resuming historical replay\" pos=\d+")
    assert second.wait() == 0, second.stderr()
    c.join(30)
    assert_exactly_once(c, 6000)
    assert c.duplicates == 0


def test_kill_9_twice_then_resume_exactly_once(
    sample: Path, tmp_path: Path, ring_name: str
) -> None:
    state = tmp_path / "s"
    pace = threading.Semaphore(0)  # the consumer reads one batch of data per permit
    c = Consumer(ring_name, pace=pace)
    c.start()
    args = ["--mode", "historical", "--historical", str(sample), "--speed", "max",
            "--capacity", "1024", "--wait-for-consumers", "1"]  # fmt: skip
    for _ in range(2):
        p = engine(ring_name, state, *args)
        p.wait_log(r" started ")
        before = c.reads
        pace.release(3)
        c.wait_reads(before + 3)
        p.kill()  # SIGKILL while blocked on the paced consumer: the segment stays behind
        assert not no_segment(ring_name)
        pace.release(2)  # at most a ring (two batches) is left: let the consumer drain it
        c.wait_idle()
    c.stop_at_end.set()
    last = engine(ring_name, state, *args, "--exit-at-end")
    last.wait_log(r"carried records over")
    pace.release(10_000)
    assert last.wait() == 0, last.stderr()
    c.join(30)
    assert_exactly_once(c, 6000)
    assert c.resets == 2 and c.duplicates > 0  # carried records were re-sent and dropped
    assert np.all(c.column("mode") == 0)


def test_live_feed_and_historical_resume_across_restart(
    sample: Path, tmp_path: Path, ring_name: str
) -> None:
    port = free_port()
    feed = Proc("engine.feed", ["--csv", "data/live_sample.csv", "--port", str(port),
                                "--speed", "5", "--loop"])  # fmt: skip
    state = tmp_path / "s"
    args = ["--mode", "live", "--live-url", f"ws://127.0.0.1:{port}", "--historical",
            str(sample), "--speed", "4", "--wait-for-consumers", "1"]  # fmt: skip
    c = Consumer(ring_name)
    c.start()
    try:
        for run in range(2):
            e = engine(ring_name, state, *args)
            e.wait_log(r" started mode=live")
            c.wait_count(c._count + 200)  # live quotes from the feed reach the ring
            (state / "mode").write_text("historical\n")
            e.wait_log(r"switched from=live mode=historical")
            if run == 0:
                c.wait_count(c._count + 500)
            else:
                e.wait_log(r"historical replay complete")
                c.stop_at_end.set()
            e.signal(signal.SIGTERM)
            assert e.wait() == 0, e.stderr()
        c.join(30)
    finally:
        feed.signal(signal.SIGTERM)
        assert feed.wait() == 0, feed.stderr()
    assert c.error is None, c.error
    seq, mode, pos = c.column("seq"), c.column("mode"), c.column("pos")
    assert seq.tolist() == list(range(len(seq))), "stream sequence has gaps or repeats"
    assert pos[mode == 0].tolist() == list(range(6000)), "historical resumed with a gap/repeat"
    assert (mode == 1).sum() >= 400 and np.all(pos[mode == 1] == -1)
