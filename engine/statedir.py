"""One engine per state directory: a lock the kernel releases when its holder dies.

The state directory holds an engine's control file, checkpoint, parse cache and reject log;
two engines sharing one would switch each other's mode and overwrite each other's resume
position. :func:`lock` takes an exclusive ``flock`` on ``<state-dir>/engine.lock`` for the life
of the process and writes the holder's pid into it, so a second engine is refused with a line
naming the folder and that pid. A holder killed with SIGKILL leaves the file, not the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from common.cli import UsageError

LOCK_FILE = "engine.lock"


def lock(state_dir: Path) -> int:
    """Lock ``state_dir`` for this process; returns the lock's fd (kept open until exit).

    Raises :class:`UsageError` when another live process holds it.
    """
    path = state_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise UsageError(
            f"--state-dir {state_dir} is in use by another engine (pid {holder}): stop it, "
            "or give this engine its own --state-dir"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
