"""The engine against its storage (issue 11): two engines on one state folder, shared memory
smaller than the ring, a full disk under rejected_rows.csv, a symlinked rejected_rows.csv."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from ..support.faulttools import fill, small_tmpfs
from ..support.programs import Proc, no_segment, run_module

HEADER = ",index,timestamp,ticker,ask_amount,ask_price,bid_price,bid_amount,latency\n"
ROWS = "0,0,2025-01-01 00:00:00,A,1,2,1,1,5\n1,1,2025-01-01 00:00:01,A,1,abc,1,1,5\n"
DEAD_URL = "ws://127.0.0.1:9"


def live_engine(ring: str, state: Path, env: dict[str, str | None] | None = None) -> Proc:
    return Proc("engine", ["--mode", "live", "--live-url", DEAD_URL, "--ring", ring,
                           "--state-dir", str(state)], env)  # fmt: skip


def test_second_engine_on_a_state_dir_is_refused_and_a_killed_holder_does_not_block(
    tmp_path: Path, ring_name: str
) -> None:
    state = tmp_path / "state"
    first = live_engine(ring_name, state)
    other = f"{ring_name}-b"
    second: Proc | None = None
    try:
        first.wait_log("ring ready")
        second = live_engine(other, state)
        code = second.wait()
        assert code == 2, second.stderr()
        errors = [ln for ln in second.stderr().splitlines() if " ERROR " in ln]
        assert len(errors) == 1 and str(state) in errors[0], second.stderr()
        assert f"pid {first.pid}" in errors[0], errors
        assert no_segment(other)
        first.kill()  # kill -9: the kernel releases the lock
        third = live_engine(ring_name, state)
        third.wait_log("ring ready")
        third.signal(signal.SIGTERM)
        assert third.wait() == 0, third.stderr()
    finally:
        first.kill()
        if second is not None:
            second.kill()
    assert no_segment(ring_name)


def test_shared_memory_smaller_than_the_ring_exits_1_saying_what_is_needed(
    tmp_path: Path, ring_name: str
) -> None:
    csv = tmp_path / "q.csv"
    csv.write_text(HEADER + ROWS)
    with small_tmpfs(tmp_path / "shm", "8m") as shm:
        e = Proc("engine", ["--mode", "historical", "--historical", str(csv), "--speed", "max",
                            "--exit-at-end", "--capacity", "1048576", "--ring", ring_name,
                            "--state-dir", str(tmp_path / "s")],
                 {"RINGBUFFER_SHM_DIR": str(shm)})  # fmt: skip
        code = e.wait()
        assert code == 1, (code, e.stderr())
        errors = [ln for ln in e.stderr().splitlines() if " ERROR " in ln]
        assert len(errors) == 1, e.stderr()
        assert str(shm) in errors[0] and "needs" in errors[0] and "free" in errors[0], errors
        assert list(shm.iterdir()) == []


def test_disk_full_under_rejected_rows_names_the_file(tmp_path: Path, ring_name: str) -> None:
    csv = tmp_path / "q.csv"
    csv.write_text(HEADER + ROWS)
    with small_tmpfs(tmp_path / "small", "1m") as small:
        state = small / "state"
        state.mkdir()
        fill(small)
        res = run_module("engine", "--mode", "historical", "--historical", str(csv), "--speed",
                         "max", "--ring", ring_name, "--state-dir", str(state))  # fmt: skip
        assert res.returncode == 1, res.stderr
        errors = [ln for ln in res.stderr.splitlines() if " ERROR " in ln]
        assert len(errors) == 1 and str(state / "rejected_rows.csv") in errors[0], res.stderr
        assert "No space left on device" in errors[0]
    assert no_segment(ring_name)


def test_symlinked_rejected_rows_is_a_usage_error(tmp_path: Path, ring_name: str) -> None:
    csv = tmp_path / "q.csv"
    csv.write_text(HEADER + ROWS)
    state = tmp_path / "state"
    state.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    (state / "rejected_rows.csv").symlink_to(target)
    res = run_module("engine", "--mode", "historical", "--historical", str(csv), "--speed", "max",
                     "--exit-at-end", "--ring", ring_name, "--state-dir", str(state))  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert str(state / "rejected_rows.csv") in res.stderr
    assert target.read_text() == "keep me\n"
    assert os.path.islink(state / "rejected_rows.csv")
    assert no_segment(ring_name)
