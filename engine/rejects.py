"""Rejected input rows: what was wrong with each, and the ``rejected_rows.csv`` log of them."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from common.cli import UsageError

#: File name of the reject log inside the state directory (contract section 4).
REJECT_FILE = "rejected_rows.csv"
HEADER = ("source", "line", "reason", "raw")
#: Raw text longer than this is cut (with a marker) before it is stored.
RAW_LIMIT = 4096


@dataclass(frozen=True)
class Rejected:
    """One input row or live object that was not published, and why.

    ``source`` is the file path or websocket URL; ``line`` the 1-based physical line of the file
    (the header is line 1) or the live frame number; ``reason`` names the field and bad value.
    """

    source: str
    line: int
    reason: str
    raw: str


def clip_raw(text: str) -> str:
    """``text`` cut to at most ``RAW_LIMIT`` characters, marking a cut with ``...``."""
    return text if len(text) <= RAW_LIMIT else text[: RAW_LIMIT - 3] + "..."


class RejectLog:
    """Appends rejected rows to ``<state_dir>/rejected_rows.csv`` and counts them.

    The file is created 0600 (like the checkpoint) and never through a symlink: a symlink or
    anything but a regular file there is a :class:`UsageError` naming the path. The header is
    written once, when the file is new or empty. Every ``append`` is written in one piece before
    it returns; one that fails (a full disk) is cut off the file again and raises an ``OSError``
    naming the file.
    """

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.path = Path(state_dir) / REJECT_FILE
        self.count = 0
        self._fd: int | None = None
        if self.path.is_symlink():
            raise self._refuse("is a symlink")

    def _refuse(self, what: str) -> UsageError:
        return UsageError(f"{self.path} {what}: the engine writes rejected rows there; "
                          "remove it or choose another --state-dir")  # fmt: skip

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
            try:
                fd = os.open(self.path, flags | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise self._refuse("is a symlink") from None
                if exc.errno == errno.ENXIO:  # a FIFO nobody reads
                    raise self._refuse("is not a regular file") from None
                raise
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise self._refuse("is not a regular file")
            self._fd = fd
        return self._fd

    def append(self, rows: Iterable[Rejected]) -> int:
        """Write ``rows`` and return how many were written."""
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        n = 0
        for row in rows:
            writer.writerow((row.source, row.line, row.reason, row.raw))
            n += 1
        if not n:
            return 0
        fd = self._open()
        size = os.fstat(fd).st_size
        header = "" if size else ",".join(HEADER) + "\n"
        data = (header + text.getvalue()).encode("utf-8", "backslashreplace")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # no half row left behind
            raise OSError(exc.errno, f"cannot append to {self.path}: {exc.strerror}") from exc
        self.count += n
        return n

    def close(self) -> None:
        """Close the file; a later ``append`` reopens it."""
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RejectLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
