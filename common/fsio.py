"""Durable file writes: a reader of the file sees the old content or the new, never a mix."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from common.cli import UsageError


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file in the same folder, fsync, rename, fsync folder.

    A crash at any point leaves either the previous file or the new one; a failed write (disk
    full, say) removes its temporary file and raises.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def lock_folder(path: Path, *, flag: str, who: str) -> int:
    """Take an exclusive ``flock`` on the lock file ``path`` for the life of this process.

    The holder's pid is written into the file, so a second process is refused with a
    :class:`~common.cli.UsageError` naming the folder (given by ``flag``) and that pid. The
    kernel releases the lock when its holder dies, even by SIGKILL. Returns the lock's fd.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise UsageError(
            f"{flag} {path.parent} is in use by another {who} (pid {holder}): stop it, "
            f"or give this {who} its own {flag}"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
