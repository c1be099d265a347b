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

See ``writer`` for the vocabulary, the invariants and the memory-ordering argument.
"""

from ._consumer import CommitToken, ConsumerEvents, Delivery, Gap, ResumingConsumer
from .errors import (
    ConsumerNameInUse,
    Interrupted,
    NoFreeSlot,
    Overrun,
    RingBusy,
    RingError,
    RingNotFound,
    RingReset,
    SchemaMismatch,
    SymbolTableFull,
)
from .reader import Reader, attach
from .wait import BUSY_SPIN, DEFAULT_WAIT, WaitStrategy
from .writer import Writer, create

__all__ = [
    "BUSY_SPIN",
    "DEFAULT_WAIT",
    "CommitToken",
    "ConsumerEvents",
    "ConsumerNameInUse",
    "Delivery",
    "Gap",
    "Interrupted",
    "NoFreeSlot",
    "Overrun",
    "Reader",
    "ResumingConsumer",
    "RingBusy",
    "RingError",
    "RingNotFound",
    "RingReset",
    "SchemaMismatch",
    "SymbolTableFull",
    "WaitStrategy",
    "Writer",
    "attach",
    "create",
]
