"""The shared symbol table: tickers travel as uint32 codes into an append-only string table.

A record carries 4 bytes instead of a 64-byte padded string, and readers see the column as an
Arrow dictionary array whose dictionary is itself a zero-copy view of the table. Entries are
written once and never change; the writer publishes the new count (header word SYMBOLS) after
the entry's bytes and offset and before any record that uses it, so a reader that sees a record
also sees its symbol (M1 in ``_ordering``).

Limits: ``max_symbols`` entries and ``symbol_bytes`` bytes of UTF-8 per ring, chosen at create
(defaults 65,536 and 4 MiB); any single ticker of up to 64 bytes fits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._errors import SymbolTableFull
from ._layout import SYMBOLS, Views
from ._ordering import load_acquire, store_release


class SymbolWriter:
    """The writer's side: interns strings, appending new ones to the shared table."""

    def __init__(self, views: Views) -> None:
        self._v = views
        self._codes: dict[str, int] = {}
        self._count = 0
        self._used = 0
        self._v.symbol_offsets[0] = 0

    def __len__(self) -> int:
        return self._count

    def _add(self, text: str) -> int:
        data = text.encode()
        max_symbols = len(self._v.symbol_offsets) - 1
        if self._count >= max_symbols or self._used + len(data) > len(self._v.symbol_data):
            raise SymbolTableFull(
                f"the ring's symbol table is full ({self._count} symbols, {self._used} bytes); "
                "create the ring with larger max_symbols / symbol_bytes"
            )
        self._v.symbol_data[self._used : self._used + len(data)] = np.frombuffer(data, np.uint8)
        self._used += len(data)
        self._count += 1
        self._v.symbol_offsets[self._count] = self._used
        self._codes[text] = self._count - 1
        return self._count - 1

    def codes(self, values: pa.Array | pa.ChunkedArray | np.ndarray | Sequence[str]) -> np.ndarray:
        """uint32 codes of ``values`` (strings, or an Arrow string/dictionary array).

        New strings are appended to the table and published before this returns.
        """
        arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if arr.null_count:
            raise ValueError("symbol column holds nulls")
        if not pa.types.is_dictionary(arr.type):
            arr = pc.dictionary_encode(arr)
        lookup = self._codes
        mapping = np.fromiter(
            (lookup.get(s) if s in lookup else self._add(s) for s in arr.dictionary.to_pylist()),
            dtype=np.uint32,
            count=len(arr.dictionary),
        )
        store_release(self._v.words, SYMBOLS, self._count)  # M1: after the entries
        return mapping[arr.indices.to_numpy(zero_copy_only=False)]


class SymbolReader:
    """A reader's side: the table as an Arrow string array, refreshed when it grows."""

    def __init__(self, views: Views) -> None:
        self._v = views
        self._count = -1
        self._dictionary: pa.Array = pa.array([], pa.string())

    def dictionary(self) -> pa.Array:
        """All published symbols as a zero-copy Arrow string array (index = code)."""
        count = load_acquire(self._v.words, SYMBOLS)  # M1: then the entries
        if count != self._count:
            offsets = self._v.symbol_offsets[: count + 1]
            data = self._v.symbol_data[: int(offsets[count]) if count else 0]
            self._dictionary = pa.Array.from_buffers(
                pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
            )
            self._count = count
        return self._dictionary
