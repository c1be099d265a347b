"""The journal: every accepted command, in order, with its sequence number and receive time.

It is the venue's system of record: the state is a pure function of it (and of the snapshot it
continues), because the book is deterministic.

File layout (little-endian), ``<data-dir>/journal.bin``::

    magic    8 bytes  b"VNUJRNL2"
    record   u32 length of the payload, u32 CRC-32 of the payload, payload
    payload  u64 seq of its first command, u32 count, then ``count`` commands, seq by seq:
      place   i64 time (ns), u8 1, u8 order code (side, type, time in force: ``ORDER_KINDS``),
              i64 price (0: none), i64 quantity, u8 length + symbol (UTF-8),
              u8 length + client order id (255: none)
      cancel  i64 time (ns), u8 2, i64 order id

A record is a batch: the commands of one group commit (at most :data:`MAX_BATCH`), framed and
checked together, because they become durable together: a torn record holds only commands that
were never acknowledged. Batching is also what keeps the journal cheap on the matching path:
``append`` only keeps the command; the encoding, one CRC and one frame happen once per batch.

Group commit: :meth:`Journal.append` keeps the command; :meth:`Journal.write` encodes what was
appended and writes it with one ``write``; :meth:`Journal.sync` makes it durable with one
``fsync``, for however many commands it holds. A caller acknowledges a command only after a
``sync`` that began after its ``write`` returned.

A failed write (a full disk) truncates the file back to its last whole record and raises
:class:`JournalWriteError`; the caller rebuilds its state from the disk (nothing of the batch was
acknowledged). A failed fsync raises too: after it the kernel's page cache may have dropped the
pages (the "fsyncgate" lesson), so the only safe continuation is a restart from the file.

Reading (:func:`read_journal`) checks each record's frame. A record that runs past the end of the
file or fails its CRC with nothing valid after it is a torn tail: the journal is cut there with a
warning. A damaged record with a valid record after it is damage before the tail:
:class:`JournalCorrupt`, naming the file and the offset.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from exchange._model import ORDER_TYPES, SIDES, TIMES_IN_FORCE, Cancel, Command, Place

MAGIC = b"VNUJRNL2"
FRAME = struct.Struct("<II")
BATCH = struct.Struct("<QI")
PLACE = struct.Struct("<qBBqq")
CANCEL = struct.Struct("<qBq")
KIND_PLACE, KIND_CANCEL = 1, 2
MAX_BATCH = 4096
MAX_PAYLOAD = BATCH.size + MAX_BATCH * (PLACE.size + 2 + 255 + 255)
ORDER_KINDS = [
    (side, type_, tif) for side in SIDES for type_ in ORDER_TYPES for tif in TIMES_IN_FORCE
]
CODES = {kind: code for code, kind in enumerate(ORDER_KINDS)}
"""(side, type, time in force) -> the one byte that stores all three."""
NO_CLIENT_ID = 255
_symbol_bytes: dict[str, bytes] = {}

log = logging.getLogger("exchange.journal")


class JournalCorrupt(Exception):
    """Damage before the journal's tail: the venue cannot know the state after it."""

    def __init__(self, path: Path, offset: int, why: str) -> None:
        super().__init__(f"journal {path} is damaged at offset {offset}: {why}")
        self.path, self.offset = path, offset


class JournalWriteError(OSError):
    """A write to the journal failed (a full disk, say): the batch is not durable."""


class Entry(NamedTuple):
    seq: int
    time: int
    command: Command


def encode(first_seq: int, batch: list[tuple[int, Command]]) -> bytes:
    """One framed record holding ``batch`` (receive time, command), seq ``first_seq`` onward."""
    parts = [BATCH.pack(first_seq, len(batch))]
    add = parts.append
    place, cancel, codes, symbols = PLACE.pack, CANCEL.pack, CODES, _symbol_bytes
    for time, command in batch:
        if type(command) is Place:
            add(place(time, KIND_PLACE, codes[command[1], command[2], command[3]],
                      command[4] or 0, command[5]))  # fmt: skip
            symbol = symbols.get(command[0])
            if symbol is None:
                symbol = symbols[command[0]] = _short(command[0].encode())
            add(symbol)
            client = command[6]
            add(b"\xff" if client is None else _short(client.encode()))
        else:
            add(cancel(time, KIND_CANCEL, command[0]))
    payload = b"".join(parts)
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _short(text: bytes) -> bytes:
    if len(text) >= NO_CLIENT_ID:
        raise ValueError(f"a symbol or client order id is at most {NO_CLIENT_ID - 1} bytes")
    return bytes((len(text),)) + text


def decode(payload: bytes) -> list[Entry]:
    """The entries of one payload whose CRC matched; ValueError if its layout is wrong."""
    first_seq, count = BATCH.unpack_from(payload)
    at = BATCH.size
    entries = []
    for seq in range(first_seq, first_seq + count):
        kind = payload[at + 8]
        if kind == KIND_CANCEL:
            time, _, order_id = CANCEL.unpack_from(payload, at)
            at += CANCEL.size
            entries.append(Entry(seq, time, Cancel(order_id)))
            continue
        if kind != KIND_PLACE:
            raise ValueError(f"unknown command kind {kind}")
        time, _, code, price, quantity = PLACE.unpack_from(payload, at)
        side, type_, tif = ORDER_KINDS[code]
        at += PLACE.size
        n = payload[at]
        symbol = payload[at + 1 : at + 1 + n].decode()
        at += 1 + n
        n = payload[at]
        client = None if n == NO_CLIENT_ID else payload[at + 1 : at + 1 + n].decode()
        at += 1 + (0 if n == NO_CLIENT_ID else n)
        command = Place(symbol, side, type_, tif, price or None, quantity, client)
        entries.append(Entry(seq, time, command))
    if at != len(payload) or not count:
        raise ValueError("record length does not match its commands")
    return entries


def _valid_at(data: memoryview, offset: int) -> list[Entry] | None:
    """The entries of the record framed at ``offset`` if its frame and CRC hold, else None."""
    if offset + FRAME.size > len(data):
        return None
    length, crc = FRAME.unpack_from(data, offset)
    start = offset + FRAME.size
    if not BATCH.size < length <= MAX_PAYLOAD or start + length > len(data):
        return None
    payload = bytes(data[start : start + length])
    if zlib.crc32(payload) != crc:
        return None
    try:
        return decode(payload)
    except (ValueError, IndexError, UnicodeDecodeError, struct.error):
        return None


def read_journal(path: Path) -> tuple[list[Entry], int]:
    """Every entry of the journal and the length of its valid prefix.

    A torn tail is reported (WARNING) and left for the caller to cut (:meth:`Journal.open`
    does); damage before the tail raises :class:`JournalCorrupt`.
    """
    entries, _, valid = scan(path)
    return entries, valid


def scan(path: Path) -> tuple[list[Entry], list[int], int]:
    """:func:`read_journal`, with the offset of every valid record."""
    data = memoryview(path.read_bytes()) if path.exists() else memoryview(b"")
    if not data:
        return [], [], 0
    if len(data) < len(MAGIC) and MAGIC.startswith(bytes(data)):
        log.warning("journal header torn: cut", extra={"fields": {"file": str(path), "offset": 0}})
        return [], [], 0
    if bytes(data[: len(MAGIC)]) != MAGIC:
        raise JournalCorrupt(path, 0, "not a venue journal (wrong magic)")
    entries: list[Entry] = []
    offsets: list[int] = []
    offset = len(MAGIC)
    last_seq = 0
    while offset < len(data):
        batch = _valid_at(data, offset)
        if batch is None or (last_seq and batch[0].seq != last_seq + 1):
            why = "a record out of sequence" if batch is not None else "a damaged record"
            later = _find_record_after(data, offset + 1, last_seq)
            if later is not None:
                raise JournalCorrupt(path, offset, f"{why} before a valid record at {later}")
            log.warning(
                "journal tail torn: cut",
                extra={
                    "fields": {"file": str(path), "offset": offset, "bytes": len(data) - offset}
                },
            )
            break
        entries += batch
        offsets.append(offset)
        last_seq = batch[-1].seq
        offset += FRAME.size + FRAME.unpack_from(data, offset)[0]
    return entries, offsets, offset


def _find_record_after(data: memoryview, start: int, last_seq: int) -> int | None:
    """The offset of a valid record later than ``last_seq`` at or after ``start``, if any."""
    for offset in range(start, len(data) - FRAME.size - BATCH.size):
        batch = _valid_at(data, offset)
        if batch is not None and batch[0].seq > last_seq:
            return offset
    return None


class Journal:
    """The open journal file: append, write, sync; cut back after a failed write.

    :meth:`write` and :meth:`sync` are the two halves of :meth:`commit`, so a caller can let
    the fsync of one batch run in another thread (it releases the GIL) while it matches the
    next: the group commit pipelined. ``sync`` may run concurrently with ``append`` and
    ``write`` in the caller's thread: it only touches the file descriptor.
    """

    def __init__(self, path: Path, fd: int, written: int) -> None:
        self.path = path
        self._fd = fd
        self.written = written  # bytes of whole records in the file (page cache or disk)
        self.batch: list[tuple[int, Command]] = []  # appended, not yet written
        self.next_seq = 0  # the seq of the first command of ``batch`` (set by the owner)

    @classmethod
    def open(cls, path: Path) -> tuple[Journal, list[Entry]]:
        """Open (or create) the journal; its entries; a torn tail is cut off."""
        entries, valid = read_journal(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if valid == 0:
                os.ftruncate(fd, 0)
                os.write(fd, MAGIC)
                valid = len(MAGIC)
                os.fsync(fd)
                _fsync_dir(path.parent)
            else:
                if size != valid:
                    os.ftruncate(fd, valid)
                os.fsync(fd)  # what an earlier run wrote and never synced is durable from here
            os.lseek(fd, valid, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, valid), entries

    @property
    def pending(self) -> int:
        return len(self.batch)

    def append(self, time: int, command: Command) -> None:
        """Add one command to the next write (no encoding, no I/O: ``batch.append``)."""
        self.batch.append((time, command))

    def write(self) -> int:
        """Encode what was appended and write it (one ``write`` call, as a rule); the count.

        On failure the file is cut back to its last whole record, the appended commands are
        dropped and :class:`JournalWriteError` raised.
        """
        batch = self.batch
        if not batch:
            return 0
        data = b"".join(
            encode(self.next_seq + i, batch[i : i + MAX_BATCH])
            for i in range(0, len(batch), MAX_BATCH)
        )
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as e:
            self.discard()
            os.ftruncate(self._fd, self.written)
            os.lseek(self._fd, self.written, os.SEEK_SET)
            raise JournalWriteError(e.errno, f"journal {self.path}: {e.strerror}") from e
        count = len(batch)
        self.written += len(data)
        self.next_seq += count
        batch.clear()  # in place: the owner may hold ``batch.append``
        return count

    def sync(self) -> None:
        """fsync: everything written before the call is on disk when it returns.

        An error is fatal to the caller (see the module's notes).
        """
        os.fsync(self._fd)

    def commit(self) -> int:
        """:meth:`write`, then :meth:`sync`; the number of commands made durable."""
        count = self.write()
        if count:
            self.sync()
        return count

    def discard(self) -> None:
        """Forget what was appended and not written."""
        self.batch.clear()

    def close(self) -> None:
        os.close(self._fd)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def iter_after(entries: list[Entry], seq: int) -> Iterator[Entry]:
    """The entries after ``seq`` (the ones a snapshot at ``seq`` does not hold)."""
    return (e for e in entries if e.seq > seq)
