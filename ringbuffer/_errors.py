"""Errors raised by the ring. Each message says what is wrong and what to do."""


class RingError(Exception):
    """Base class of the ring's errors."""


class RingNotFound(RingError):
    """No ring of that name appeared within the timeout."""


class RingBusy(RingError):
    """A live writer already owns a ring of that name."""


class SchemaMismatch(RingError):
    """The ring's layout or columns are not what this program expects."""


class ConsumerNameInUse(RingError):
    """A live process is already attached under that consumer name."""


class NoFreeSlot(RingError):
    """Every consumer slot of the ring is held by a live consumer."""


class RingReset(RingError):
    """The ring this reader is attached to was replaced (writer restarted); attach again."""


class Overrun(RingError):
    """Records this consumer had not read were overwritten (it was evicted, or away too long)."""


class Interrupted(RingError):
    """A blocked publish or wait was interrupted by :meth:`Writer.interrupt` (e.g. on SIGTERM)."""


class SymbolTableFull(RingError):
    """The ring's shared symbol table has no room for another ticker."""


class NoSpace(RingError):
    """The shared-memory folder has no room for the ring's segment."""
