"""A ring larger than the free shared memory (issue 11, item 3): refused at create with a
RingError saying what is needed and what is free, never a SIGBUS later."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

import ringbuffer
from ringbuffer import _shm

from ..support.faulttools import small_tmpfs


def test_create_in_a_small_tmpfs_raises_naming_the_space(
    tmp_path: Path, ring_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with small_tmpfs(tmp_path / "shm", "8m") as shm:
        monkeypatch.setattr(_shm, "SHM_DIR", shm)
        with pytest.raises(ringbuffer.RingError, match="needs") as info:
            ringbuffer.create(ring_name, {"seq": "uint64", "bid": "float64"}, capacity=1 << 20)
        assert str(shm) in str(info.value) and "free" in str(info.value)
        assert list(shm.iterdir()) == []


def test_failed_reservation_removes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, offset: int, size: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_shm.os, "posix_fallocate", full)
    with pytest.raises(ringbuffer.RingError, match="needs 4,096"):
        _shm.create_file(tmp_path / "seg", 4096)
    assert list(tmp_path.iterdir()) == []
