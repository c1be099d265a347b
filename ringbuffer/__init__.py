"""A lock-free shared-memory ring of numpy columns: one writer, many reader processes.

>>> import numpy as np, ringbuffer
>>> w = ringbuffer.create("doc-quotes", {"seq": "uint64", "bid": "float64"}, capacity=1 << 10)
>>> r = ringbuffer.attach("doc-quotes", consumer="x", timeout=1.0)
>>> w.publish({"seq": np.arange(3, dtype="uint64"), "bid": np.array([1.5, 2.0, 2.5])})
3
>>> r.read(max_records=10, timeout=1.0).column("bid").to_pylist()
[1.5, 2.0, 2.5]
>>> w.end(); r.read(timeout=1.0) is None, r.ended
(True, True)
>>> r.close(); w.close()

This module is the whole public API (``__all__``); the modules whose names start with ``_`` are
private. :func:`create` makes the one :class:`Writer`; :func:`attach` makes a named consumer, a
:class:`Reader`; :func:`salvage` reads what a dead writer left; :func:`segments`,
:func:`segment_path` and :func:`check_name` find and name the segments in :data:`SHM_DIR`.
The ring logs through the standard library's ``logging.getLogger("ringbuffer")`` (and its
children), with the key=value fields of each record in ``record.fields``.

Inside: ``_layout`` describes the segment; ``_writer`` has the vocabulary (sequence, cursor,
claim, publish, gating) and the invariants; ``_ordering`` the memory-ordering argument and the
only loads, stores and fence it depends on; ``_reader``, ``_segment`` and ``_salvage`` the
reading side; ``_wait`` the wait strategies; ``_shm``, ``_procs``, ``_symbols`` the rest.
"""

from ._consumer import CommitToken, ConsumerEvents, Delivery, Gap, ResumingConsumer
from ._errors import (
    ConsumerNameInUse,
    Interrupted,
    NoFreeSlot,
    NoSpace,
    Overrun,
    RingBusy,
    RingError,
    RingNotFound,
    RingReset,
    SchemaMismatch,
    SymbolTableFull,
)
from ._layout import storage_dtype
from ._reader import Reader, attach
from ._salvage import Salvage, salvage
from ._shm import SHM_DIR, check_name, segment_path, segments
from ._wait import BUSY_SPIN, DEFAULT_WAIT, WRITER_WAIT, WaitStrategy
from ._writer import Writer, create

__all__ = [
    "BUSY_SPIN",
    "DEFAULT_WAIT",
    "SHM_DIR",
    "WRITER_WAIT",
    "CommitToken",
    "ConsumerEvents",
    "ConsumerNameInUse",
    "Delivery",
    "Gap",
    "Interrupted",
    "NoFreeSlot",
    "NoSpace",
    "Overrun",
    "Reader",
    "ResumingConsumer",
    "RingBusy",
    "RingError",
    "RingNotFound",
    "RingReset",
    "Salvage",
    "SchemaMismatch",
    "SymbolTableFull",
    "WaitStrategy",
    "Writer",
    "attach",
    "check_name",
    "create",
    "salvage",
    "segment_path",
    "segments",
    "storage_dtype",
]
