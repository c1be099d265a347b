"""The journal: every accepted command, in order, with its sequence number and receive time.

It is the venue's system of record: the state is a pure function of it (and of the snapshot it
continues), because the book is deterministic.

File layout (little-endian), ``<data-dir>/journal.bin``::

    magic   8 bytes  b"VNUJRNL1"
    record  u32 length of the payload, u32 CRC-32 of the payload, payload
    payload u64 seq, i64 time (ns), u8 kind, then by kind:
      1 place:  u8 side, u8 type, u8 time in force, i64 price (0: none), i64 quantity,
                u8 length + symbol (UTF-8), u8 length + client order id (255: none)
      2 cancel: i64 order id

Group commit: :meth:`Journal.append` only encodes into a buffer; :meth:`Journal.commit` writes
the buffer with one ``write`` and makes it durable with one ``fsync``, for however many commands
it holds. A caller acknowledges a command only after the ``commit`` that covers it returned.

A failed write (a full disk) truncates the file back to its durable length and raises
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

from exchange._model import Cancel, Command, Place

MAGIC = b"VNUJRNL1"
FRAME = struct.Struct("<II")
HEAD = struct.Struct("<QqB")
PLACE = struct.Struct("<BBBqq")
CANCEL = struct.Struct("<q")
MAX_PAYLOAD = HEAD.size + PLACE.size + 2 + 255 + 255
KIND_PLACE, KIND_CANCEL = 1, 2
_SIDE = {"BUY": 0, "SELL": 1}
_TYPE = {"LIMIT": 0, "MARKET": 1}
_TIF = {"GTC": 0, "IOC": 1, "FOK": 2}
_SIDES, _TYPES, _TIFS = tuple(_SIDE), tuple(_TYPE), tuple(_TIF)
NO_CLIENT_ID = 255

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


def encode(seq: int, time: int, command: Command) -> bytes:
    """One framed record."""
    if type(command) is Place:
        symbol = command.symbol.encode()
        client = command.client_order_id
        client_bytes = b"" if client is None else client.encode()
        payload = b"".join(
            (
                HEAD.pack(seq, time, KIND_PLACE),
                PLACE.pack(
                    _SIDE[command.side],
                    _TYPE[command.type],
                    _TIF[command.time_in_force],
                    command.price or 0,
                    command.quantity,
                ),
                bytes((len(symbol),)),
                symbol,
                bytes((NO_CLIENT_ID if client is None else len(client_bytes),)),
                client_bytes,
            )
        )
    else:
        payload = HEAD.pack(seq, time, KIND_CANCEL) + CANCEL.pack(command.order_id)  # type: ignore[union-attr]
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def decode(payload: bytes) -> Entry:
    """The entry of one payload whose CRC matched; ValueError if its layout is wrong."""
    seq, time, kind = HEAD.unpack_from(payload)
    at = HEAD.size
    if kind == KIND_CANCEL and len(payload) == at + CANCEL.size:
        return Entry(seq, time, Cancel(CANCEL.unpack_from(payload, at)[0]))
    if kind != KIND_PLACE:
        raise ValueError(f"unknown record kind {kind}")
    side, type_, tif, price, quantity = PLACE.unpack_from(payload, at)
    at += PLACE.size
    n = payload[at]
    symbol = payload[at + 1 : at + 1 + n].decode()
    at += 1 + n
    n = payload[at]
    client = None if n == NO_CLIENT_ID else payload[at + 1 : at + 1 + n].decode()
    at += 1 + (0 if n == NO_CLIENT_ID else n)
    if at != len(payload):
        raise ValueError("record length does not match its fields")
    command = Place(
        symbol, _SIDES[side], _TYPES[type_], _TIFS[tif], price or None, quantity, client
    )
    return Entry(seq, time, command)


def _valid_at(data: memoryview, offset: int) -> Entry | None:
    """The entry framed at ``offset`` if its frame and CRC hold, else None."""
    if offset + FRAME.size > len(data):
        return None
    length, crc = FRAME.unpack_from(data, offset)
    start = offset + FRAME.size
    if not HEAD.size <= length <= MAX_PAYLOAD or start + length > len(data):
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
    data = memoryview(path.read_bytes()) if path.exists() else memoryview(b"")
    if not data:
        return [], 0
    if len(data) < len(MAGIC) and MAGIC.startswith(bytes(data)):
        log.warning("journal header torn: cut", extra={"file": str(path), "offset": 0})
        return [], 0
    if bytes(data[: len(MAGIC)]) != MAGIC:
        raise JournalCorrupt(path, 0, "not a venue journal (wrong magic)")
    entries: list[Entry] = []
    offset = len(MAGIC)
    last_seq = 0
    while offset < len(data):
        entry = _valid_at(data, offset)
        if entry is None or (entry.seq != last_seq + 1 and last_seq):
            why = "a record out of sequence" if entry is not None else "a damaged record"
            later = _find_record_after(data, offset + 1, last_seq)
            if later is not None:
                raise JournalCorrupt(path, offset, f"{why} before valid record at {later}")
            log.warning(
                "journal tail torn: cut",
                extra={"file": str(path), "offset": offset, "bytes": len(data) - offset},
            )
            break
        entries.append(entry)
        last_seq = entry.seq
        offset += FRAME.size + FRAME.unpack_from(data, offset)[0]
    return entries, offset


def _find_record_after(data: memoryview, start: int, last_seq: int) -> int | None:
    """The offset of a valid record later than ``last_seq`` at or after ``start``, if any."""
    for offset in range(start, len(data) - FRAME.size - HEAD.size + 1):
        entry = _valid_at(data, offset)
        if entry is not None and entry.seq > last_seq:
            return offset
    return None


class Journal:
    """The open journal file: append, group-commit, and cut back after a failed write."""

    def __init__(self, path: Path, fd: int, durable: int) -> None:
        self.path = path
        self._fd = fd
        self.durable = durable  # bytes known to be on disk
        self._buffer = bytearray()
        self.pending = 0  # commands appended and not yet committed

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
            elif size != valid:
                os.ftruncate(fd, valid)
                os.fsync(fd)
            os.lseek(fd, valid, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, valid), entries

    def append(self, seq: int, time: int, command: Command) -> None:
        """Add one command to the next commit (encodes only; no I/O)."""
        self._buffer += encode(seq, time, command)
        self.pending += 1

    def commit(self) -> int:
        """Write and fsync what was appended; the number of commands it made durable."""
        if not self._buffer:
            return 0
        data = bytes(self._buffer)  # a copy: the buffer stays free to be cleared on failure
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as e:
            self._cut_back()
            raise JournalWriteError(e.errno, f"journal {self.path}: {e.strerror}") from e
        os.fsync(self._fd)  # an error here is fatal to the caller: see the module's notes
        done = self.pending
        self.durable += len(self._buffer)
        self._buffer.clear()
        self.pending = 0
        return done

    def discard(self) -> None:
        """Forget what was appended and not committed."""
        self._buffer.clear()
        self.pending = 0

    def _cut_back(self) -> None:
        self.discard()
        os.ftruncate(self._fd, self.durable)
        os.lseek(self._fd, self.durable, os.SEEK_SET)

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
