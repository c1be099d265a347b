"""Reading what a dead writer left in its segment, before a new writer reclaims it.

A writer that restarts after a crash uses this to carry the records still in the old ring into
the new one (so no consumer loses them) and to learn where its stream stood.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pyarrow as pa

from . import _procs, _shm
from ._errors import RingBusy
from ._layout import (
    CURSOR,
    MAGIC,
    SCHEMA_AT,
    TAIL,
    VERSION,
    Header,
    SegmentState,
    decode_schema,
)
from ._reader import Reader
from ._wait import DEFAULT_WAIT


@dataclass(frozen=True)
class Salvage:
    """The intact records of an abandoned segment: sequences [start, cursor) as a copied table."""

    tag: int
    generation: int
    start: int
    cursor: int
    records: pa.Table


def salvage(name: str) -> Salvage | None:
    """The records left in ring ``name`` by a writer that is gone, or None if there is no ring.

    Raises :class:`RingBusy` while a live writer owns it. Records below ``tail`` are not taken:
    a crashed claim may have been overwriting them.
    """
    path = _shm.segment_path(name)
    fd = _shm.open_file(path)
    if fd is None:
        return None
    try:
        with open(fd, "rb", closefd=False) as f:
            raw = f.read(SCHEMA_AT + 4096)
        if len(raw) < SCHEMA_AT or (head := Header.unpack(raw)).magic != MAGIC:
            return None
        if head.version != VERSION:
            return None
        if head.state == SegmentState.WRITING and _procs.alive(head.writer_pid, head.writer_start):
            raise RingBusy(f"ring {name!r} is owned by a live writer (pid {head.writer_pid})")
        schema = decode_schema(raw[SCHEMA_AT : SCHEMA_AT + head.schema_len])
        reader = Reader(name, os.dup(fd), head, schema, DEFAULT_WAIT)
    finally:
        os.close(fd)
    try:
        words = reader._v.words
        cursor, tail = int(words[CURSOR]), int(words[TAIL])
        start = max(tail, cursor - head.capacity, 0)
        batches = []
        pos = start
        while pos < cursor:
            at = pos % head.capacity
            n = min(cursor - pos, head.capacity - at)
            batches.append(reader._batch(at, n))
            pos += n
        # Copy out of the mapping: the segment is about to be removed.
        records = _detached_copy(reader._arrow_schema, batches)
        return Salvage(head.tag, head.generation, start, cursor, records)
    finally:
        reader._slot = -1
        reader.close()


def _detached_copy(schema: pa.Schema, batches: list[pa.RecordBatch]) -> pa.Table:
    """A table of ``batches`` that owns its memory (an Arrow IPC round trip)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as out:
        for batch in batches:
            out.write_batch(batch)
    return pa.ipc.open_stream(sink.getvalue()).read_all()
