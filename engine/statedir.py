"""One engine per state directory: a lock file held for the engine's life.

Two engines sharing a state directory would share the control file and the checkpoint (one
switching the other's mode, overwriting its resume position). The lock is an ``flock`` on
``<state-dir>/engine.lock``, so the kernel releases it when its holder exits in any way
(kill -9 included); the holder's pid is written into the file for the refusal message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from common.cli import UsageError

LOCK_FILE = "engine.lock"
_held: dict[str, int] = {}  # resolved state dir -> fd of its lock file (this process's)


def _holder(fd: int) -> str:
    """The pid written in the lock file (given a moment: it is written just after locking)."""
    deadline = time.monotonic() + 1.0
    while True:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit() or time.monotonic() > deadline:
            return text if text.isdigit() else "unknown"
        time.sleep(0.01)


def lock(state_dir: str | os.PathLike[str]) -> int:
    """Lock ``state_dir`` for this process's life and return the lock file's fd; raise
    :class:`UsageError` naming the folder and the holder's pid when another process holds it."""
    key = str(Path(state_dir).resolve())
    if key in _held:
        return _held[key]
    path = Path(state_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise UsageError(
            f"--state-dir {state_dir}: cannot open its lock file {path} ({exc.strerror or exc})"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder(fd)
        os.close(fd)
        raise UsageError(
            f"--state-dir {state_dir} is in use by another engine (pid {pid}); give each "
            "engine its own --state-dir"
        ) from None
    with contextlib.suppress(OSError):  # the pid is for the message only (a full disk is fine)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = fd
    return fd


def release(fd: int) -> None:
    """Give the lock up before the process ends (tests; the kernel does it at exit)."""
    for key, held in list(_held.items()):
        if held == fd:
            del _held[key]
    os.close(fd)
