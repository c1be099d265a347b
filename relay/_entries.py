"""The stream's entries: one ring batch each, or the end of the stream (pure: no I/O).

An entry is a Redis stream entry whose fields are::

    fmt        b"quote-replay/2"      (anything else is not ours: ForeignEntry)
    tag        the engine stream's tag (the ring header's), decimal
    first_seq  the seq of the batch's first record, decimal
    last_seq   the seq of its last record, decimal
    ipc        the batch as an Arrow IPC stream (schema + one record batch)

or, for the end of the stream, ``fmt``, ``tag``, ``last_seq`` (the last seq before the end, -1
if none) and ``end = 1`` (no ``ipc``). One entry carries thousands of records: Redis does one
round trip a batch, not a record.

>>> import pyarrow as pa
>>> batch = pa.record_batch({"seq": pa.array([5, 6, 7], pa.uint64())})
>>> e = decode(b"1-0", encode(batch, tag=9))
>>> (e.tag, e.first, e.last, e.end, e.batch.num_rows)
(9, 5, 7, False, 3)
>>> decode(b"2-0", end_marker(tag=9, last=7)).end
True
>>> decode(b"3-0", {b"hello": b"world"})
Traceback (most recent call last):
...
relay._entries.ForeignEntry: stream entry 3-0 is not a quote-replay entry (no fmt field)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import pyarrow as pa

FORMAT = b"quote-replay/2"  # /1 named the seq fields first and last


class ForeignEntry(Exception):
    """An entry the relay did not write: the stream is shared with something else."""

    def __init__(self, entry_id: bytes | str, why: str) -> None:
        text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        super().__init__(f"stream entry {text} is not a quote-replay entry ({why})")
        self.entry_id = text


class Entry(NamedTuple):
    id: bytes
    tag: int
    first: int
    last: int
    end: bool
    batch: pa.RecordBatch | None


def encode(batch: pa.RecordBatch, *, tag: int) -> dict[bytes, bytes]:
    """The fields of the entry holding ``batch`` (its ``seq`` column gives first and last)."""
    seq = batch.column("seq")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return {
        b"fmt": FORMAT,
        b"tag": str(tag).encode(),
        b"first_seq": str(seq[0].as_py()).encode(),
        b"last_seq": str(seq[len(seq) - 1].as_py()).encode(),
        b"ipc": sink.getvalue().to_pybytes(),
    }


def end_marker(*, tag: int, last: int | None) -> dict[bytes, bytes]:
    """The fields of the entry that ends the stream ``tag`` after seq ``last``."""
    seq = -1 if last is None else last
    return {
        b"fmt": FORMAT, b"tag": str(tag).encode(), b"last_seq": str(seq).encode(), b"end": b"1",
    }  # fmt: skip


def decode(entry_id: bytes, fields: Mapping[bytes, bytes]) -> Entry:
    """One entry read back; :class:`ForeignEntry` if it is not ours."""
    fmt = fields.get(b"fmt")
    if fmt is None:
        raise ForeignEntry(entry_id, "no fmt field")
    if fmt != FORMAT:
        raise ForeignEntry(entry_id, f"fmt {fmt!r}, expected {FORMAT!r}")
    try:
        tag = int(fields[b"tag"])
        last = int(fields[b"last_seq"])
        if fields.get(b"end") == b"1":
            return Entry(entry_id, tag, last + 1, last, True, None)
        first = int(fields[b"first_seq"])
        with pa.ipc.open_stream(pa.py_buffer(fields[b"ipc"])) as reader:
            batch = reader.read_next_batch()
    except (KeyError, ValueError, pa.ArrowInvalid, StopIteration) as e:
        raise ForeignEntry(entry_id, f"a damaged field: {e!r}") from None
    return Entry(entry_id, tag, first, last, False, batch)
