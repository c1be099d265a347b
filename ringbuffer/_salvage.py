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
from ._layout import CURSOR, TAIL, VERSION, Header, SegmentState
from ._ordering import load_acquire
from ._segment import Segment


@dataclass(frozen=True)
class Salvage:
    """The intact records of an abandoned segment: sequences [start, cursor) as a table that owns
    its memory, with the ``tag`` and ``generation`` the dead writer created the ring with."""

    tag: int
    generation: int
    start: int
    cursor: int
    records: pa.Table


def salvage(name: str) -> Salvage | None:
    """Read what a dead writer left in ring ``name``: None if there is no ring of that name (or
    one of another layout version).

    Raises :class:`RingBusy` while a live writer owns it. Records below ``tail`` are not taken:
    a crashed claim may have been overwriting them. The segment is left as it is (the next
    ``create`` of the name reclaims it).
    """
    fd = _shm.open_file(_shm.segment_path(name))
    if fd is None:
        return None
    try:
        head = Header.read(fd)
        if head is not None and head.version == VERSION:
            owner = head.writer_pid, head.writer_start
            if head.state == SegmentState.WRITING and _procs.alive(*owner):
                raise RingBusy(f"ring {name!r} is owned by a live writer (pid {head.writer_pid})")
    except BaseException:
        os.close(fd)
        raise
    if head is None or head.version != VERSION:
        os.close(fd)
        return None
    segment = Segment(fd, head)
    try:
        words = segment.views.words
        cursor = load_acquire(words, CURSOR)  # M4; the writer is gone, nothing moves
        tail = load_acquire(words, TAIL)
        start = max(tail, cursor - head.capacity, 0)
        batches = []
        pos = start
        while pos < cursor:
            at = pos % head.capacity
            n = min(cursor - pos, head.capacity - at)
            batches.append(segment.records(at, n))
            pos += n
        # Copy out of the mapping: the segment is about to be removed.
        records = _detached_copy(segment.arrow_schema, batches)
        return Salvage(head.tag, head.generation, start, cursor, records)
    finally:
        segment.close()


def _detached_copy(schema: pa.Schema, batches: list[pa.RecordBatch]) -> pa.Table:
    """A table of ``batches`` that owns its memory (an Arrow IPC round trip)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as out:
        for batch in batches:
            out.write_batch(batch)
    return pa.ipc.open_stream(sink.getvalue()).read_all()
