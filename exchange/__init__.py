"""The venue (contract section 6): a deterministic matching core whose journal is the record.

Layers, innermost first:

- the book (:class:`Matcher`): commands in, events out; no clock, no I/O (``_book``, ``_model``);
- the edge of numbers (:class:`Symbol`, :func:`parse_order`): decimals in, exact integers inside,
  exact decimal text out (``_symbols``, ``_requests``);
- durability (:class:`Venue`): the journal with group commit, snapshots, recovery and the state
  hash (``_journal``, ``_state``, ``_venue``).

Every module but this one is private; the names below are the package's API.
"""

from exchange._book import Matcher
from exchange._journal import Journal, JournalCorrupt, JournalWriteError, read_journal
from exchange._model import (
    Accepted,
    Cancel,
    Command,
    Event,
    Fill,
    LevelChanged,
    Order,
    OrderStatus,
    Place,
    Rejected,
    TopChanged,
    Trade,
)
from exchange._requests import parse_order
from exchange._state import canonical, state_hash
from exchange._symbols import DEFAULT_SYMBOLS, NumberError, Symbol, parse_symbols
from exchange._venue import GcFreezer, Venue
from exchange._workload import generate

__all__ = [
    "DEFAULT_SYMBOLS",
    "Accepted",
    "Cancel",
    "Command",
    "Event",
    "Fill",
    "GcFreezer",
    "Journal",
    "JournalCorrupt",
    "JournalWriteError",
    "LevelChanged",
    "Matcher",
    "NumberError",
    "Order",
    "OrderStatus",
    "Place",
    "Rejected",
    "Symbol",
    "TopChanged",
    "Trade",
    "Venue",
    "canonical",
    "generate",
    "parse_order",
    "parse_symbols",
    "read_journal",
    "state_hash",
]
