"""The segment's file under /dev/shm: create, open, lock, remove.

Segments are plain files on the shm tmpfs, opened with ``os.open`` and mapped with ``mmap``.
``multiprocessing.shared_memory`` is not used: on Python < 3.13 it registers every segment,
attached ones too, with the resource tracker, which unlinks them when any attaching process
exits (gh-82300). Here only the creator ever removes a segment.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import mmap
import os
import re
from collections.abc import Iterator
from pathlib import Path

from ._errors import NoSpace

SHM_DIR = Path(os.environ.get("RINGBUFFER_SHM_DIR", "/dev/shm"))
PREFIX = "ringbuffer-"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_name(name: str) -> None:
    """Raise ValueError unless ``name`` can name a ring (a plain identifier).

    >>> check_name("quotes")
    >>> check_name("../etc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: bad ring name '../etc': use 1-100 letters, digits, ...
    """
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"bad ring name {name!r}: use 1-100 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )


def segment_path(name: str) -> Path:
    """The segment file of ring ``name`` (which need not exist); checks the name."""
    check_name(name)
    if not SHM_DIR.is_dir():
        raise RuntimeError(f"{SHM_DIR} does not exist: the ring needs a shared-memory tmpfs")
    return SHM_DIR / f"{PREFIX}{name}"


def segments(prefix: str = "") -> list[str]:
    """The names of the rings whose segments are in ``SHM_DIR`` now (those that start with
    ``prefix``), sorted: a crashed writer's segment stays until the next ``create`` of its name.
    """
    found = SHM_DIR.glob(f"{PREFIX}{glob.escape(prefix)}*")
    return sorted(n for p in found if _NAME.fullmatch(n := p.name[len(PREFIX) :]))


def create_file(path: Path, size: int) -> int:
    """Create ``path`` exclusively with mode 0600 and ``size`` zero bytes; returns its fd.

    The bytes are reserved (``posix_fallocate``), not only promised: on a tmpfs a mapping of a
    sparse file is backed page by page as it is touched, so a folder too small for the ring
    would kill the writer with SIGBUS at some later store, with nothing logged. Here it fails
    at once with :class:`NoSpace`, saying how much is needed and how much is free.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask says
        os.ftruncate(fd, size)
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EFBIG):
                raise
            st = os.statvfs(path.parent)
            raise NoSpace(
                f"{path.parent} has {st.f_bavail * st.f_frsize:,} bytes free; the ring needs "
                f"{size:,}: free space there, give the shared-memory folder more room "
                "(docker run --shm-size), or choose a smaller --capacity"
            ) from None
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return fd


def open_file(path: Path) -> int | None:
    """Open an existing segment read-write, or None when there is none."""
    try:
        return os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None


def map_fd(fd: int) -> mmap.mmap:
    """Map the whole file shared."""
    return mmap.mmap(fd, os.fstat(fd).st_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)


def same_file(fd: int, path: Path) -> bool:
    """True while ``path`` still names the file open as ``fd`` (it was not replaced)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


@contextlib.contextmanager
def locked(fd: int) -> Iterator[None]:
    """Hold the segment's exclusive lock: serialises slot changes (attach, detach, eviction).

    The lock is never taken on the publish or read path.
    """
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def close_map(mm: mmap.mmap) -> None:
    """Unmap, unless Arrow batches still view it; then the mapping goes with the last of them."""
    with contextlib.suppress(BufferError):
        mm.close()
