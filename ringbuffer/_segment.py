"""One segment, mapped for reading: its file, header, schema, typed views, symbol table, and its
records as zero-copy Arrow slices.

A consumer (``_reader.Reader``) and salvage (``_salvage``) are both built on it: the consumer
adds a slot and a cursor, salvage copies out what a dead writer left.
"""

from __future__ import annotations

import os

import pyarrow as pa

from . import _shm
from ._layout import Header, Views, arrow_type
from ._symbols import SymbolReader


class Segment:
    """The segment open as ``fd`` whose header is ``header``, mapped shared.

    Takes ``fd`` over: :meth:`close` closes it, and so does a failing constructor.
    """

    def __init__(self, fd: int, header: Header) -> None:
        self.fd = fd
        self.header = header
        try:
            self.schema = header.read_schema(fd)
            self.mm = _shm.map_fd(fd)
            self.views = Views(self.mm, header.geometry(self.schema))
        except BaseException:
            os.close(fd)  # a mapping made goes with the last reference to it
            raise
        self.capacity = header.capacity
        self._symbols = SymbolReader(self.views)
        self._types = {k: arrow_type(t) for k, t in self.schema.items()}
        self.arrow_schema = pa.schema(list(self._types.items()))
        self._whole: pa.RecordBatch | None = None
        self._whole_dictionary: pa.Array | None = None
        self.closed = False

    def records(self, at: int, n: int) -> pa.RecordBatch:
        """Records at ring indices [at, at + n) as a zero-copy slice of the whole-ring batch.

        The whole-ring batch is built once (and again when the symbol table grows), so a read
        costs a slice, not eleven array constructions. Call it after loading the cursor that
        covers these records: the symbol count is loaded here, after it (M1 in ``_ordering``).
        """
        dictionary = self._symbols.dictionary()
        if self._whole is None or self._whole_dictionary is not dictionary:
            arrays = []
            cap = self.capacity
            for name, values in self.views.columns.items():
                typ = self._types[name]
                data = pa.py_buffer(values)
                if pa.types.is_dictionary(typ):
                    indices = pa.Array.from_buffers(pa.uint32(), cap, [None, data])
                    arrays.append(pa.DictionaryArray.from_arrays(indices, dictionary, safe=False))
                else:
                    arrays.append(pa.Array.from_buffers(typ, cap, [None, data]))
            self._whole = pa.RecordBatch.from_arrays(arrays, schema=self.arrow_schema)
            self._whole_dictionary = dictionary
        return self._whole.slice(at, n)

    def close(self) -> None:
        """Unmap (once no Arrow batch views the mapping any more) and close the file."""
        if self.closed:
            return
        self.closed = True
        del self.views, self._symbols, self._whole, self._whole_dictionary
        _shm.close_map(self.mm)
        os.close(self.fd)
