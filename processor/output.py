"""The processor's outputs: locked log files, the optional Parquet file, and the writer thread.

The main thread renders batches and hands the bytes to :class:`OutputWriter` through a bounded
queue. The writer thread appends them to both logs (buffered, in queue order) and runs a
*commit cycle* at least every ``flush_every`` seconds, after every ``cycle_records`` records,
and at the end: write out the buffers, ``fdatasync`` both logs, replace the state file
(``processor.state``), then report the ring position the state covers. The main thread commits
that position to the ring; the writer thread never touches ring objects. Any OSError stops the
writer with an :class:`OutputError` naming the file; the state file is then never advanced past
what is on disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import stat
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from common.cli import UsageError
from processor import state as statefile

_BUFFER = 1 << 20  # bytes gathered before a write(2)
_IOV_MAX = 1024  # buffers per writev(2) (Linux's limit)

#: Columns of the ``--parquet`` file.
PARQUET_SCHEMA = pa.schema(
    [("timestamp", pa.timestamp("ns", tz="UTC")), ("ticker", pa.string()), ("mid", pa.float64())]
)


class OutputBusy(UsageError):
    """Another process holds the lock of an output file (a usage error: exit 2)."""


class OutputError(Exception):
    """An output file could not be opened, written or synced (a runtime failure: exit 1)."""


def _failure(action: str, what: str, path: Path, exc: OSError) -> OutputError:
    reason = exc.strerror or str(exc)
    return OutputError(f"cannot {action} {what} {path}: {reason}")


class LogFile:
    """One append-only log, locked (``flock``) for the life of the process.

    Regular files are locked, truncated to their committed length on start and fsynced on
    every commit; other files (``/dev/null``, a pipe) are only written to.
    """

    def __init__(self, path: str | os.PathLike[str], what: str) -> None:
        self.path = Path(path)
        self.what = what
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _failure("open", what, self.path, exc) from exc
        info = os.fstat(self._fd)
        self.identity = (info.st_dev, info.st_ino)
        self.regular = stat.S_ISREG(info.st_mode)
        if self.regular:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                os.close(self._fd)
                raise OutputBusy(
                    f"{what} {self.path} is in use by another processor (it holds the file's "
                    "lock): stop that processor or choose other --mid-log/--error-log paths"
                ) from exc
        #: Bytes in the file once everything appended so far is written.
        self.length = info.st_size if self.regular else 0
        self._pending: list[memoryview] = []
        self._pending_bytes = 0
        self._unsynced = False

    def size_on_disk(self) -> int:
        """The file's current size (0 for files that are not regular)."""
        return os.fstat(self._fd).st_size if self.regular else 0

    def reset(self, length: int) -> None:
        """Cut the file to ``length`` bytes and append from there (other files: just count)."""
        if not self.regular:
            self.length = length
            return
        try:
            os.ftruncate(self._fd, length)
            os.lseek(self._fd, length, os.SEEK_SET)
            os.fdatasync(self._fd)
        except OSError as exc:
            raise _failure("truncate", self.what, self.path, exc) from exc
        self.length = length

    def append(self, data: bytes | memoryview) -> None:
        """Queue ``data`` for writing (kept by reference, not copied); writes once a megabyte
        has gathered."""
        view = memoryview(data).cast("B")
        if not view.nbytes:
            return
        self._pending.append(view)
        self._pending_bytes += view.nbytes
        self.length += view.nbytes
        if self._pending_bytes >= _BUFFER:
            self._write_pending()

    def _write_pending(self) -> None:
        views, self._pending = self._pending, []
        self._pending_bytes = 0
        try:
            while views:  # one writev(2) per batch of parts, no joining copy
                done = os.writev(self._fd, views[:_IOV_MAX])
                while views and done >= views[0].nbytes:
                    done -= views.pop(0).nbytes
                if done:
                    views[0] = views[0][done:]
        except OSError as exc:
            raise _failure("write", self.what, self.path, exc) from exc
        self._unsynced = True

    def sync(self) -> None:
        """Write out what is buffered and make it durable (``fdatasync``)."""
        self._write_pending()
        if self._unsynced and self.regular:
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                raise _failure("sync", self.what, self.path, exc) from exc
        self._unsynced = False

    def close(self) -> None:
        """Close the file, which releases its lock. Unwritten buffers are dropped."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class ParquetSink:
    """``--parquet``: (timestamp, ticker, mid) of every mid line, one row group per commit.

    Analysis output, not crash-safe: it is created anew on every start and holds the rows
    written since; a killed processor leaves it without its footer (unreadable).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._pending: list[pa.Table] = []
        import pyarrow.parquet as pq  # only with --parquet: its import costs ~0.15 s

        try:
            self._writer = pq.ParquetWriter(str(self.path), PARQUET_SCHEMA)
        except OSError as exc:
            raise _failure("open", "parquet file", self.path, exc) from exc

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self._pending.append(table)

    def flush(self) -> None:
        """Write the gathered rows as one row group."""
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending.clear()
        try:
            self._writer.write_table(table, row_group_size=table.num_rows)
        except OSError as exc:
            raise _failure("write", "parquet file", self.path, exc) from exc

    def close(self) -> None:
        try:
            self._writer.close()
        except OSError as exc:
            raise _failure("close", "parquet file", self.path, exc) from exc


@dataclass(frozen=True)
class Chunk:
    """What one ring batch adds: log bytes, and where the stream stands after it."""

    mid: Sequence[bytes | memoryview]  # parts, written in order
    errors: Sequence[bytes | memoryview]
    epoch: int  # which attach the position belongs to
    position: int  # the ring sequence after the batch
    tag: int
    last_seq: int | None
    table: pa.Table | None = None
    records: int = 0  # ring records the chunk covers (duplicates included)


_FINISH = object()


class OutputWriter:
    """The writer thread: appends chunks in order, and runs the commit cycle."""

    def __init__(
        self,
        mid: LogFile,
        errors: LogFile,
        state_path: Path,
        state: statefile.State,
        parquet: ParquetSink | None = None,
        flush_every: float = 0.1,
        max_queued: int = 16,
        cycle_records: int | None = None,
    ) -> None:
        self.mid = mid
        self.errors = errors
        self.state_path = state_path
        self.state = state  # the last state made durable
        self.parquet = parquet
        self.flush_every = flush_every
        #: A commit cycle also runs once this many records were added since the last one: the
        #: ring keeps uncommitted records, so the engine waits when they fill it. A quarter of
        #: the ring lets the cycle's fsync run while the next quarter is read.
        self.cycle_records = cycle_records
        self._records = 0  # added since the last cycle
        self.error: OutputError | None = None
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queued)
        self._lock = threading.Lock()
        self._report: tuple[int, int] | None = None
        self._written: tuple[int, int] | None = None  # (epoch, position) of the last chunk
        self._tag = state.tag
        self._last_seq = state.last_seq
        self._dirty = False
        self._thread = threading.Thread(target=self._run, name="processor-writer", daemon=True)

    # -- the main thread's side ------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def put(self, chunk: Chunk) -> None:
        """Queue ``chunk`` (waits while the queue is full); raises the writer's error."""
        self._put(chunk)

    def _put(self, item: object) -> None:
        while True:
            if self.error is not None:
                raise self.error
            if not self._thread.is_alive():
                raise OutputError("the output writer stopped unexpectedly")
            with contextlib.suppress(queue.Full):
                self._queue.put(item, timeout=0.05)
                return

    def take_report(self) -> tuple[int, int] | None:
        """The latest (epoch, ring position) made durable since the last call, if any."""
        with self._lock:
            report, self._report = self._report, None
        return report

    def finish(self) -> OutputError | None:
        """Write and commit everything queued, stop the thread; returns its error, if any."""
        with contextlib.suppress(OutputError):
            self._put(_FINISH)
        self._thread.join()
        return self.error

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        next_cycle = time.monotonic() + self.flush_every
        try:
            while True:
                wait = max(0.0, next_cycle - time.monotonic())
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    item = None
                if item is _FINISH:
                    self._cycle()
                    if self.parquet is not None:
                        self.parquet.close()
                    return
                if isinstance(item, Chunk):
                    self._add(item)
                now = time.monotonic()
                full = self.cycle_records is not None and self._records >= self.cycle_records
                if now >= next_cycle or full:
                    if self._dirty:
                        self._cycle()
                    next_cycle = now + self.flush_every
        except OutputError as exc:
            self.error = exc
        except Exception as exc:  # anything else is still a failure to write
            self.error = OutputError(f"output writer failed: {exc!r}")

    def _add(self, chunk: Chunk) -> None:
        for part in chunk.mid:
            self.mid.append(part)
        for part in chunk.errors:
            self.errors.append(part)
        if self.parquet is not None and chunk.table is not None:
            self.parquet.add(chunk.table)
        self._tag = chunk.tag
        self._last_seq = chunk.last_seq
        self._written = (chunk.epoch, chunk.position)
        self._records += chunk.records
        self._dirty = True

    def _cycle(self) -> None:
        """Flush and sync the logs, then the state file, then report the position."""
        self.mid.sync()
        self.errors.sync()
        if self.parquet is not None:
            self.parquet.flush()
        new = self.state.advanced(
            tag=self._tag,
            last_seq=self._last_seq,
            mid_bytes=self.mid.length,
            error_bytes=self.errors.length,
        )
        if new != self.state:
            try:
                statefile.save(self.state_path, new)
            except OSError as exc:
                raise _failure("write", "state file", self.state_path, exc) from exc
            self.state = new
        if self._written is not None:
            with self._lock:
                self._report = self._written
        self._dirty = False
        self._records = 0
