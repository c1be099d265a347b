"""The engine's files in its state directory: modes, symlinks, failed writes, the state-dir lock,
a corrupted parse cache (issue 11, items 2, 8 and 9)."""

from __future__ import annotations

import errno
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from common import fsio
from common.cli import UsageError
from engine import rejects, statedir
from engine.cache import cache_path, load_or_parse
from engine.rejects import Rejected, RejectLog

from .test_cache import write_csv

ROOT = Path(__file__).resolve().parents[2]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_removes_its_temp_file_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f.json"
    target.write_bytes(b"old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fsio.os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        fsio.atomic_write(target, b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]
    assert target.read_bytes() == b"old"


def test_reject_log_is_0600_and_refuses_a_symlink(tmp_path: Path) -> None:
    row = Rejected("f.csv", 2, "bad", "x")
    with RejectLog(tmp_path / "a") as log:
        log.append([row])
    assert _mode(tmp_path / "a" / rejects.REJECT_FILE) == 0o600
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_text("precious\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / rejects.REJECT_FILE).symlink_to(elsewhere)
    with pytest.raises(UsageError, match=re.escape(str(tmp_path / "b" / rejects.REJECT_FILE))):
        RejectLog(tmp_path / "b")
    log = RejectLog(tmp_path / "c")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / rejects.REJECT_FILE).symlink_to(elsewhere)  # made after the start
    with pytest.raises(UsageError, match="symlink"):
        log.append([row])
    assert elsewhere.read_text() == "precious\n"


def test_disk_full_while_appending_rejects_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RejectLog(tmp_path) as log:
        log.append([Rejected("f.csv", 2, "bad", "x")])
        before = log.path.read_bytes()

        def full(fd: int, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(rejects.os, "write", full)
        with pytest.raises(OSError, match=r"rejected_rows\.csv") as info:
            log.append([Rejected("f.csv", 3, "bad", "y")])
        assert info.value.errno == errno.ENOSPC
        monkeypatch.undo()
    assert log.path.read_bytes() == before  # no half row left behind


def test_cache_files_are_0600(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "h.csv", 50)
    load_or_parse(csv, tmp_path / "state")
    files = list(cache_path(tmp_path / "state", csv).parent.iterdir())
    assert files and all(_mode(p) == 0o600 for p in files), [(p, oct(_mode(p))) for p in files]


def test_flipped_bytes_in_the_cache_are_detected_and_reparsed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = write_csv(tmp_path / "h.csv", 2000, bad=False)
    state = tmp_path / "state"
    fresh, _ = load_or_parse(csv, state)
    target = cache_path(state, csv)
    data = bytearray(target.read_bytes())
    # a price in the middle of the file: the Arrow structure stays valid
    at = len(data) // 2
    data[at] ^= 0xFF
    target.write_bytes(bytes(data))
    parsed, cached = load_or_parse(csv, state)
    assert not cached, "a corrupted cache was used"
    assert parsed.table.equals(fresh.table)
    assert str(target) in capsys.readouterr().err
    again, cached = load_or_parse(csv, state)
    assert cached and again.table.equals(fresh.table)


def test_state_dir_lock_refuses_a_second_holder_naming_the_pid(tmp_path: Path) -> None:
    held = statedir.lock(tmp_path)
    try:
        code = (
            "import sys; from engine import statedir; from common.cli import UsageError\n"
            "try:\n    statedir.lock(sys.argv[1])\nexcept UsageError as e:\n"
            "    print(e); sys.exit(2)\n"
        )
        res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert res.returncode == 2, res
        assert str(tmp_path) in res.stdout and f"pid {os.getpid()}" in res.stdout
    finally:
        statedir.release(held)
    assert _mode(tmp_path / statedir.LOCK_FILE) == 0o600
