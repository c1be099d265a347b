"""The shared-memory segment: its layout, and typed views onto it.

This is the one description of the layout that the writer, the readers and salvage depend on;
any change to it changes ``VERSION``.

One segment holds everything, in this order (offsets in bytes)::

    0       header        magic, version, state, generation, capacity, sizes, writer identity
    256     cursor        the writer's published sequence: records [0, cursor) are readable
    384     tail          records below tail may be overwritten (announced before each claim)
    512     end           the end-of-stream sequence, or NOT_ENDED
    640     symbols       count of published entries in the symbol table
    1024    schema        the columns as JSON
    4096    slots         one 128-byte slot per consumer: its cursor alone in the first 64-byte
                          line, then state, pid, start time, committed sequence, name
    ...     symbol table  int32 offsets[max_symbols + 1], then the UTF-8 bytes of the tickers
    ...     columns       one array per column, ``capacity`` records each, 64-byte aligned

Every cursor is a 64-bit word in a cache line of its own: the writer's cursor is written by the
writer only, each slot cursor by its consumer only, so no line is written from two cores.
Sequences count records from 0 and never wrap; record ``s`` lives at index ``s % capacity``.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import numpy as np
import pyarrow as pa

from ._errors import SchemaMismatch

MAGIC: Final = b"QRING\x00\x00\x01"
MAGIC_WORD: Final = int.from_bytes(MAGIC, "little")  # the magic as header word 0
VERSION: Final = 1

# Header words, as uint64 indices into the segment.
CURSOR: Final = 256 // 8
TAIL: Final = 384 // 8
END: Final = 512 // 8
SYMBOLS: Final = 640 // 8
NOT_ENDED: Final = (1 << 64) - 1

SCHEMA_AT: Final = 1024
SCHEMA_MAX: Final = 3072
SLOTS_AT: Final = 4096
SLOT_SIZE: Final = 128
NAME_MAX: Final = 32


class SegmentState(IntEnum):
    """The header's ``state`` word (uint32; the values are the on-disk ones)."""

    WRITING = 1  # a writer owns it (it may have crashed: its pid tells)
    CLOSED = 2  # the writer closed it cleanly
    SUPERSEDED = 3  # a new writer replaced it; readers must attach again


class SlotState(IntEnum):
    """A consumer slot's ``state`` word (uint32; the values are the on-disk ones).

    Only ACTIVE slots gate the writer. numpy compares an array with an IntEnum member about five
    times slower than with a plain int, so the hot paths compare with ``int(SlotState.X)``.
    """

    FREE = 0
    ACTIVE = 1
    DETACHED = 2  # closed cleanly; keeps its name and commit for a later attach
    DEAD = 3  # its process died; keeps its name and commit
    EVICTED = 4  # the writer stopped waiting for it (opt-in lag policy)


NO_COMMIT: Final = (1 << 64) - 1  # a slot's ``committed`` before its first commit

_HEADER = struct.Struct("<8sIIQQIIQQQQQQQ")
# magic, version, state, generation, capacity, n_slots, schema_len, segment_size,
# writer_pid, writer_start, tag, max_symbols, symbol_bytes, created_ns
#: Byte offsets of the header fields that change after create (``Header`` names the rest).
STATE_OFFSET: Final = struct.calcsize("<8sI")  # uint32, a SegmentState
GENERATION_OFFSET: Final = struct.calcsize("<8sII")  # uint64

SLOT_DTYPE: Final = np.dtype(
    {
        "names": ["cursor", "state", "pid", "start", "committed", "name"],
        "formats": ["<u8", "<u4", "<u4", "<u8", "<u8", f"S{NAME_MAX}"],
        "offsets": [0, 64, 68, 72, 80, 96],
        "itemsize": SLOT_SIZE,
    }
)

#: Ring dtypes beyond numpy's: how they are stored, and how readers see them in Arrow.
_SPECIAL: Final[dict[str, tuple[np.dtype, pa.DataType]]] = {
    "symbol": (np.dtype("<u4"), pa.dictionary(pa.uint32(), pa.string())),
    "timestamp[ns]": (np.dtype("<i8"), pa.timestamp("ns", tz="UTC")),
}


def storage_dtype(ring_dtype: str) -> np.dtype:
    """The numpy dtype a ring column is stored as."""
    if ring_dtype in _SPECIAL:
        return _SPECIAL[ring_dtype][0]
    try:
        dt = np.dtype(ring_dtype)
    except TypeError as exc:
        raise SchemaMismatch(f"unknown column dtype {ring_dtype!r}") from exc
    if dt.kind not in "iufb" or dt.itemsize > 8:
        raise SchemaMismatch(f"column dtype {ring_dtype!r} is not a fixed-width number")
    return dt.newbyteorder("<")


def arrow_type(ring_dtype: str) -> pa.DataType:
    """The Arrow type readers see for a ring column."""
    if ring_dtype in _SPECIAL:
        return _SPECIAL[ring_dtype][1]
    return pa.from_numpy_dtype(np.dtype(ring_dtype))


def _align(n: int, to: int = 64) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class Geometry:
    """Where everything is, derived from the schema and sizes alone."""

    schema: dict[str, str]
    capacity: int
    n_slots: int
    max_symbols: int
    symbol_bytes: int

    @property
    def symbol_offsets_at(self) -> int:
        return _align(SLOTS_AT + self.n_slots * SLOT_SIZE)

    @property
    def symbol_data_at(self) -> int:
        return _align(self.symbol_offsets_at + 4 * (self.max_symbols + 1))

    def column_offsets(self) -> dict[str, int]:
        at = _align(self.symbol_data_at + self.symbol_bytes)
        out = {}
        for name, dt in self.schema.items():
            out[name] = at
            at = _align(at + self.capacity * storage_dtype(dt).itemsize)
        return out

    @property
    def size(self) -> int:
        last = list(self.schema)[-1]
        return _align(
            self.column_offsets()[last] + self.capacity * storage_dtype(self.schema[last]).itemsize,
            4096,
        )


@dataclass(frozen=True)
class Header:
    """The header fields of a segment."""

    magic: bytes
    version: int
    state: int
    generation: int
    capacity: int
    n_slots: int
    schema_len: int
    segment_size: int
    writer_pid: int
    writer_start: int
    tag: int
    max_symbols: int
    symbol_bytes: int
    created_ns: int

    def pack(self) -> bytes:
        return _HEADER.pack(*self.__dict__.values())

    @classmethod
    def unpack(cls, buf: memoryview | bytes) -> Header:
        return cls(*_HEADER.unpack_from(buf, 0))

    @classmethod
    def read(cls, fd: int) -> Header | None:
        """The header of the segment open as ``fd``, or None while it has none: the file is
        shorter than the header page, or its creator has not stored the magic yet.

        The one reader of the header (attach, salvage and reclaim use it); the caller checks
        the version. The creator stores the magic last (M1 in ``_ordering``), so the magic is
        loaded first, then, by a later load, the fields it covers.
        """
        if os.fstat(fd).st_size < SLOTS_AT or os.pread(fd, len(MAGIC), 0) != MAGIC:
            return None
        return cls.unpack(os.pread(fd, _HEADER.size, 0))

    def read_schema(self, fd: int) -> dict[str, str]:
        """The columns of the segment open as ``fd`` (this is its header)."""
        return decode_schema(os.pread(fd, self.schema_len, SCHEMA_AT))

    def geometry(self, schema: dict[str, str]) -> Geometry:
        """Where everything is in this segment, whose columns are ``schema``."""
        return Geometry(schema, self.capacity, self.n_slots, self.max_symbols, self.symbol_bytes)


def header_fields(buf: mmap.mmap) -> tuple[np.ndarray, np.ndarray]:
    """Views of the header's changing fields in a mapped segment: ``state``, ``generation``."""
    raw = np.frombuffer(buf, dtype=np.uint8, count=SLOTS_AT)
    return (
        raw[STATE_OFFSET : STATE_OFFSET + 4].view("<u4"),
        raw[GENERATION_OFFSET : GENERATION_OFFSET + 8].view("<u8"),
    )


class Views:
    """Typed numpy views of one mapped segment (no copies; all share the mapping)."""

    def __init__(self, mm: mmap.mmap, geometry: Geometry) -> None:
        g = geometry
        self.raw = np.frombuffer(mm, dtype=np.uint8)
        self.words = self.raw[: SLOTS_AT].view("<u8")
        self.state, self.generation = header_fields(mm)
        self.slots = self.raw[SLOTS_AT : SLOTS_AT + g.n_slots * SLOT_SIZE].view(SLOT_DTYPE)
        self.slot_cursor = self.slots["cursor"]
        self.slot_state = self.slots["state"]
        self.slot_pid = self.slots["pid"]
        offsets_at = g.symbol_offsets_at
        self.symbol_offsets = self.raw[offsets_at : offsets_at + 4 * (g.max_symbols + 1)].view(
            "<i4"
        )
        self.symbol_data = self.raw[g.symbol_data_at : g.symbol_data_at + g.symbol_bytes]
        self.columns: dict[str, np.ndarray] = {}
        for name, at in g.column_offsets().items():
            dt = storage_dtype(g.schema[name])
            self.columns[name] = self.raw[at : at + g.capacity * dt.itemsize].view(dt)


def encode_schema(schema: dict[str, str]) -> bytes:
    """The schema as stored in the segment; validates names and dtypes."""
    if not schema:
        raise SchemaMismatch("a ring needs at least one column")
    for name, dt in schema.items():
        if not isinstance(name, str) or not name:
            raise SchemaMismatch(f"bad column name {name!r}")
        storage_dtype(dt)
    data = json.dumps(list(schema.items())).encode()
    if len(data) > SCHEMA_MAX:
        raise SchemaMismatch(f"schema takes {len(data)} bytes; at most {SCHEMA_MAX} fit")
    return data


def decode_schema(data: bytes) -> dict[str, str]:
    """The inverse of :func:`encode_schema`."""
    return {name: dt for name, dt in json.loads(data)}
