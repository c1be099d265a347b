"""Files and folders the engine writes: one engine per state folder, shared memory too small for
the ring, a reject log that cannot be written or is a link, a failed atomic write.
(Issue 11, items 2, 3, 8e, 9c, 9d.)"""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from common.cli import UsageError
from common.fsio import atomic_write
from engine.rejects import Rejected, RejectLog, RejectLogError

from ..support.faulttools import fill, small_tmpfs
from ..support.programs import ROOT, Proc, run_module

ROW = Rejected("in.csv", 7, "bid_price is not a number ('x')", "raw,text")


def test_a_failed_atomic_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "checkpoint.json"
    target.write_bytes(b"old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json"]
    assert target.read_bytes() == b"old"


def test_the_reject_log_is_private_and_not_written_through_a_link(tmp_path: Path) -> None:
    with RejectLog(tmp_path) as log:
        log.append([ROW])
    assert stat.S_IMODE(os.stat(tmp_path / "rejected_rows.csv").st_mode) == 0o600
    other = tmp_path / "elsewhere.csv"
    other.write_text("")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "rejected_rows.csv").symlink_to(other)
    with RejectLog(linked) as log, pytest.raises(UsageError, match="symbolic link"):
        log.append([ROW])
    assert other.read_text() == ""


def test_a_full_disk_names_the_reject_log(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "small", "64k") as small:
        fill(small)
        with RejectLog(small) as log, pytest.raises(RejectLogError) as err:
            log.append([ROW] * 2000)
    assert str(small / "rejected_rows.csv") in str(err.value)


def test_a_second_engine_on_the_same_state_folder_is_refused(
    ring_name: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    args = ["--mode", "live", "--live-url", "ws://127.0.0.1:9/", "--state-dir", str(state)]
    first = Proc("engine", [*args, "--ring", f"{ring_name}a"])
    try:
        first.wait_log(r' engine "ring ready" ')
        second = run_module("engine", *args, "--ring", f"{ring_name}b", timeout=60)
        assert second.returncode == 2, second.stderr
        errors = [line for line in second.stderr.splitlines() if " ERROR " in line]
        assert len(errors) == 1, second.stderr
        assert str(state) in errors[0] and f"pid {first.pid}" in errors[0], errors[0]
        first.p.send_signal(signal.SIGKILL)  # the kernel releases its lock
        first.wait()
        third = Proc("engine", [*args, "--ring", f"{ring_name}a"])  # reclaims the dead ring
        third.wait_log(r' engine "ring ready" ')
        third.signal(signal.SIGTERM)
        assert third.wait() == 0, third.stderr()
    finally:
        first.kill()


def test_shared_memory_too_small_for_the_ring_is_one_clear_line(
    ring_name: str, tmp_path: Path
) -> None:
    """Before: the engine died of SIGBUS, logged nothing and left the segment behind."""
    with small_tmpfs(tmp_path / "shm", "1m") as shm:  # the old engine wrote into it: SIGBUS
        res = subprocess.run(
            [sys.executable, "-m", "engine", "--mode", "historical", "--capacity", "1048576",
             "--ring", ring_name, "--state-dir", str(tmp_path / "s"), "--exit-at-end"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
            env={**os.environ, "RINGBUFFER_SHM_DIR": str(shm)},
        )  # fmt: skip
        assert res.returncode == 1, res.stderr
        assert "Bus error" not in res.stderr and res.returncode != -signal.SIGBUS
        last = res.stderr.splitlines()[-1]
        assert " ERROR engine " in last and "bytes free" in last and "needs" in last, last
        assert list(shm.iterdir()) == [], "the partial segment was left behind"
