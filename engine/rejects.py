"""Rejected input rows: what was wrong with each, and the ``rejected_rows.csv`` log of them."""

from __future__ import annotations

import csv
import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

from common.cli import UsageError

if TYPE_CHECKING:
    from common.log import Logger

#: File name of the reject log inside the state directory (contract section 4).
REJECT_FILE = "rejected_rows.csv"
HEADER = ("source", "line", "reason", "raw")
#: Raw text longer than this is cut (with a marker) before it is stored.
RAW_LIMIT = 4096


class RejectLogError(Exception):
    """``rejected_rows.csv`` could not be written (a runtime failure: exit 1)."""


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

    The header is written once, when the file is new or empty. Every ``append`` call is flushed
    before it returns.
    """

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.path = Path(state_dir) / REJECT_FILE
        self.count = 0
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None
        self._quoted: csv.DictWriter[str] | None = None

    def _open(self) -> csv.DictWriter[str]:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(self.path, flags, 0o600)  # as private as the checkpoint
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise UsageError(
                        f"{self.path} is a symbolic link: the reject log is not written through "
                        "links; remove it or choose another --state-dir"
                    ) from None
                raise RejectLogError(f"cannot open {self.path}: {exc.strerror}") from exc
            self._file = open(  # noqa: SIM115
                fd, "a", newline="", encoding="utf-8", errors="backslashreplace"
            )
            self._writer = csv.DictWriter(self._file, HEADER, lineterminator="\n")
            # The csv module quotes a field holding "\n" but not one holding a bare "\r",
            # which a reader then splits: such rows are written with every field quoted.
            self._quoted = csv.DictWriter(
                self._file, HEADER, lineterminator="\n", quoting=csv.QUOTE_ALL
            )
            if self._file.tell() == 0:
                self._writer.writeheader()
        return self._writer

    def append(self, rows: Iterable[Rejected]) -> int:
        """Write ``rows``, flush, and return how many were written."""
        writer = None
        n = 0
        try:
            for row in rows:
                writer = writer or self._open()
                fields = {"source": row.source, "line": row.line, "reason": row.reason,
                          "raw": row.raw}  # fmt: skip
                quoted = "\r" in row.raw or "\r" in row.reason or "\r" in row.source
                quoting = self._quoted if quoted else None
                (quoting or writer).writerow(fields)
                n += 1
            if n and self._file is not None:
                self._file.flush()
        except OSError as exc:  # disk full, I/O error: say which file
            raise RejectLogError(f"cannot append to {self.path}: {exc.strerror or exc}") from exc
        self.count += n
        return n

    def report(self, rows: list[Rejected], log: Logger) -> None:
        """Log each of ``rows`` as a warning (source, line, reason), then :meth:`append` them:
        what the engine and the recorder do with the rejects their sources hand them."""
        for r in rows:
            log.warning("rejected", source=r.source, line=r.line, reason=r.reason)
        self.append(rows)

    def close(self) -> None:
        """Close the file; a later ``append`` reopens it."""
        if self._file is not None:
            self._file.close()
        self._file = None
        self._writer = self._quoted = None

    def __enter__(self) -> RejectLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
