"""The durable venue: the matching core, its journal and its snapshots in one data folder.

``Venue.open(folder, symbols)`` locks the folder, rebuilds the state (the newest valid snapshot,
then every journal entry after it) and logs
``recovered seq=<n> orders=<n> trades=<n> state_hash=<hex>``.

``submit(command, time)`` applies one command and returns its events; an accepted command is
numbered (``seq``) and appended to the journal's buffer. ``commit()`` makes everything submitted
durable with one write and one fsync (group commit): a caller sends a command's acknowledgement
only after the commit that covers it. ``commit`` is ``flush()`` (the write, in the caller's
thread) then ``sync(upto)`` (the fsync, which may run in another thread while the caller matches
the next batch: the pipelined group commit the network layer and the benchmark use). If a write
fails (a full disk), the file is cut back to its last whole record, the state is rebuilt from
the disk, and :class:`JournalWriteError` tells the caller that every command since the last
flush is void: nothing of them was acknowledged, and the venue is again exactly what the
journal says.

Garbage collection: the venue's objects (orders, levels, events) form no reference cycles, so
reference counting frees them; the cyclic collector's full passes over millions of live orders
only cost pauses (they halved the matching rate). So every :data:`FREEZE_EVERY` commands the
youngest generation is collected and the survivors are frozen out of the collector's reach
(``gc.freeze``); a full collection runs after recovery. The automatic young collections go on
between freezes, so the network layer's short-lived cycles still die; a cycle that turns to
garbage only after it reached an old generation stays until the next start (none of the venue's
own objects form cycles).
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from common.cli import UsageError
from common.fsio import atomic_write, lock_folder
from exchange._book import Matcher
from exchange._journal import Journal, JournalWriteError
from exchange._model import Command, Event, Rejected
from exchange._state import from_document, newest_snapshot, state_hash, write_snapshot
from exchange._symbols import Symbol

FREEZE_EVERY = 1000
SNAPSHOT_EVERY = 100_000
SYMBOLS_FILE = "symbols.json"
log = logging.getLogger("exchange")


class GcFreezer:
    """Freezes the live objects every ``every`` ticks (see the module's notes)."""

    __slots__ = ("_count", "every")

    def __init__(self, every: int = FREEZE_EVERY) -> None:
        self.every = every
        self._count = 0

    def tick(self) -> None:
        self._count += 1
        if self._count >= self.every:
            self._count = 0
            gc.collect(0)  # the youngest cycles die before the freeze (collect(1) cost ~9 %)
            gc.freeze()

    @staticmethod
    def full_collection() -> None:
        gc.unfreeze()
        gc.collect()
        gc.freeze()


class Venue:
    """Matching core + journal + snapshots over one data folder (see the module's notes)."""

    def __init__(
        self,
        folder: Path,
        symbols: dict[str, Symbol],
        *,
        snapshot_every: int = SNAPSHOT_EVERY,
    ) -> None:
        self.folder = folder
        self.symbols = symbols
        self.snapshot_every = snapshot_every
        self.matcher = Matcher(list(symbols))
        self.seq = 0  # the last accepted command
        self.written_seq = 0  # the last command written to the journal (page cache)
        self.durable_seq = 0  # the last command on disk (fsync returned)
        self._snapshot_seq = 0
        self._child: tuple[int, int] | None = None  # (pid, seq) of a snapshot being written
        self._gc = GcFreezer()
        self._journal: Journal | None = None
        self._append: Callable[[tuple[int, Command]], None] = _closed
        self._lock_fd: int | None = None

    @classmethod
    def open(
        cls, folder: Path, symbols: dict[str, Symbol], *, snapshot_every: int = SNAPSHOT_EVERY
    ) -> Venue:
        """Lock ``folder`` (created if missing) and recover the state it holds."""
        folder.mkdir(parents=True, exist_ok=True)
        venue = cls(folder, symbols, snapshot_every=snapshot_every)
        venue._lock_fd = lock_folder(folder / "venue.lock", flag="--data-dir", who="venue")
        _check_symbols(folder, symbols)
        venue._recover()
        log.info(
            "recovered",
            extra={
                "fields": {
                    "seq": venue.seq,
                    "orders": len(venue.matcher.orders),
                    "trades": len(venue.matcher.trades),
                    "state_hash": venue.state_hash(),
                }
            },
        )
        return venue

    def _recover(self) -> None:
        """Rebuild the state from the newest valid snapshot and the journal after it."""
        if self._journal is not None:
            self._journal.close()
        doc = newest_snapshot(self.folder)
        names = list(self.symbols)
        self.matcher = from_document(doc, names) if doc else Matcher(names)
        seq = doc["seq"] if doc else 0
        journal, entries = Journal.open(self.folder / "journal.bin")
        self._journal = journal
        self._append = journal.batch.append
        apply = self.matcher.apply
        for entry in entries:
            if entry.seq <= seq:
                continue
            if entry.seq != seq + 1:
                raise RuntimeError(
                    f"journal {journal.path} continues at seq {entry.seq}, the state is at {seq}"
                )
            events = apply(entry.command, entry.time)
            if type(events[0]) is Rejected:
                raise RuntimeError(
                    f"journal {journal.path} seq {entry.seq} was refused on replay: "
                    f"{events[0].reason}"
                )
            seq = entry.seq
            self._gc.tick()
        self.seq = self.written_seq = self.durable_seq = self._snapshot_seq = seq
        journal.next_seq = seq + 1
        GcFreezer.full_collection()

    # -- the matching path -------------------------------------------------------------------

    def submit(self, command: Command, time: int) -> list[Event]:
        """Apply ``command`` received at ``time``; its events. Durable after :meth:`commit`."""
        events = self.matcher.apply(command, time)
        if type(events[0]) is not Rejected:
            self.seq += 1
            self._append((time, command))
        self._gc.tick()
        return events

    def flush(self) -> int:
        """Write every submitted command to the journal (no fsync); the last seq written.

        Raises :class:`JournalWriteError` after rebuilding the state from the disk when the
        write failed: the commands since the last flush are void (never acknowledged).
        """
        journal = self._journal
        assert journal is not None, "the venue is closed"
        if journal.pending:
            try:
                journal.write()
            except JournalWriteError:
                log.error(
                    "journal write failed: state rebuilt from disk",
                    extra={"fields": {"seq": self.written_seq}},
                )
                self._recover()
                raise
            self.written_seq = self.seq
        return self.written_seq

    def sync(self, upto: int) -> None:
        """fsync the journal; ``upto`` (a :meth:`flush` result) and all before it are durable.

        May run in another thread while this one submits and flushes (it touches only the file
        descriptor and one integer); an OSError is fatal: restart from the disk.
        """
        journal = self._journal
        assert journal is not None, "the venue is closed"
        journal.sync()
        if upto > self.durable_seq:
            self.durable_seq = upto

    def commit(self) -> int:
        """:meth:`flush` then :meth:`sync`, and a snapshot when one is due; the durable seq."""
        upto = self.flush()
        if upto > self.durable_seq:
            self.sync(upto)
            self.maybe_snapshot()
        return self.durable_seq

    def maybe_snapshot(self) -> None:
        """Snapshot in the background if :attr:`snapshot_every` commands were made durable since
        the last one (only while nothing is written and not yet synced: a snapshot holds durable
        state).

        The snapshot is written by a forked child (as Redis' BGSAVE): the fork is a consistent
        copy-on-write picture of the state at this sequence, the child serialises and writes
        it (atomically) and exits, and matching goes on meanwhile. Serialising in the event
        loop stalled every acknowledgement for as long as the state takes to write (0.5-0.8 s
        at 100k orders, growing with history). One child at a time; a clean stop writes its
        snapshot in the process, after waiting for the child.
        """
        self._reap()
        if (
            self._child is None
            and self.seq - self._snapshot_seq >= self.snapshot_every
            and self.seq == self.durable_seq
        ):
            pid = _fork_snapshot(self.folder, self.matcher, self.seq, self._lock_fd)
            self._child = (pid, self.seq)
            self._snapshot_seq = self.seq

    def _reap(self, wait: bool = False) -> None:
        """Collect the snapshot child if it has exited (or wait for it); log how it went."""
        if self._child is None:
            return
        pid, seq = self._child
        done, status = os.waitpid(pid, 0 if wait else os.WNOHANG)
        if done == 0:
            return
        self._child = None
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            log.info("snapshot written", extra={"fields": {"seq": seq, "by": "child", "pid": pid}})
        else:
            log.warning("snapshot failed", extra={"fields": {"seq": seq, "exit": code}})

    def snapshot(self) -> str:
        """Write a snapshot of the durable state now; its state hash."""
        assert self.seq == self.durable_seq, "snapshot only what the journal holds"
        self._reap(wait=True)
        path, digest = write_snapshot(self.folder, self.matcher, self.seq)
        self._snapshot_seq = self.seq
        log.info(
            "snapshot written",
            extra={"fields": {"file": str(path), "seq": self.seq, "state_hash": digest}},
        )
        return digest

    def state_hash(self) -> str:
        return state_hash(self.matcher, self.seq)

    def close(self, *, snapshot: bool = True) -> None:
        """Commit, snapshot (a clean stop) and release the folder."""
        if self._journal is None:
            return
        self.commit()
        self._reap(wait=True)
        if snapshot and self.seq:
            self.snapshot()
        self._journal.close()
        self._journal = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Venue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(snapshot=exc[0] is None)


def _fork_snapshot(folder: Path, matcher: Matcher, seq: int, lock_fd: int | None) -> int:
    """Fork a child that writes the snapshot of ``seq`` and exits; its pid."""
    pid = os.fork()
    if pid == 0:  # the child: a copy of the state as it is now; no locks, no logging
        code = 1
        try:
            if lock_fd is not None:  # the folder's lock must die with the venue, not with us
                os.close(lock_fd)
            write_snapshot(folder, matcher, seq)
            code = 0
        finally:
            os._exit(code)
    return pid


def _closed(item: tuple[int, Command]) -> None:
    raise RuntimeError("the venue is closed")


def _check_symbols(folder: Path, symbols: dict[str, Symbol]) -> None:
    """The folder's symbols keep their tick and lot (the journal's integers depend on them)."""
    path = folder / SYMBOLS_FILE
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    for name, spec in known.items():
        if name not in symbols:
            raise UsageError(
                f"--symbols lacks {spec}, which the venue in --data-dir {folder} trades: add it"
            )
        if symbols[name].spec != spec:
            raise UsageError(
                f"--symbols gives {symbols[name].spec}, but --data-dir {folder} trades {spec}: "
                "tick and lot cannot change for a venue's data"
            )
    wanted = {name: s.spec for name, s in symbols.items()}
    if wanted != known:
        atomic_write(path, json.dumps(wanted, indent=1).encode())
