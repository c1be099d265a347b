"""A historical CSV read block by block: each block checked as the whole-file parse would.

The file is cut into blocks of about ``block_bytes`` at line feeds outside quotes (quote parity
counted from the block's start), so no record is split. Each block, behind a copy of the
header line, goes through the same reading and checks as a whole file
(``engine.historical.parse_body``: quote parity, stray quotes, bare CRs, reject rules); its line
numbers are then shifted to the file's. Memory is a few blocks' worth, whatever the file size.

A quote that stays open for ``MAX_OPEN`` bytes (a stray one, with no quote after it to close it)
cannot be part of a record that Arrow reads as one; the block is cut at its last line feed
anyway and the block's reader hides the stray quote as the whole-file reader does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from common.schema import REQUIRED_COLUMNS, Mode
from engine.csvread import InputBytes, reading
from engine.historical import parse_body, read_header
from engine.rejects import Rejected

BLOCK_BYTES = 8 << 20
#: A quote left open this long (bytes) is stray: the block is cut at a line feed regardless.
MAX_OPEN = 64 << 20
_MAX_RECUTS = 64
UNCLOSED = "a quote is never closed"


@dataclass(frozen=True)
class Block:
    """The valid rows of one block sorted by arrival (``TABLE_SCHEMA``, file line numbers),
    and its rejected rows in line order."""

    table: pa.Table
    rejected: list[Rejected]


def _cut(
    data: InputBytes, pos: int, block_bytes: int, first_line: int = 0,
    hidden: frozenset[int] = frozenset(),
) -> int:  # fmt: skip
    """Where the block starting at ``pos`` ends: after its last line feed outside quotes
    within ``block_bytes`` (further when a record is longer), or at the end of the input.
    Quotes on the ``hidden`` lines (``first_line`` is the block's first) do not count."""
    size = max(1, block_bytes)
    while True:
        end = min(data.size, pos + size)
        if end >= data.size:
            return data.size
        raw = np.frombuffer(data.read(pos, end), np.uint8)
        lf = np.flatnonzero(raw == 10)
        if len(lf):
            quotes = np.flatnonzero(raw == 34)
            if hidden and len(quotes):
                at = first_line + np.searchsorted(lf, quotes)
                quotes = quotes[~np.isin(at, np.fromiter(hidden, np.int64))]
            if not len(quotes):
                return pos + int(lf[-1]) + 1
            even = np.flatnonzero(np.searchsorted(quotes, lf) % 2 == 0)
            if len(even):
                return pos + int(lf[even[-1]]) + 1
            if size >= MAX_OPEN:
                return pos + int(lf[-1]) + 1
        size *= 2


def _header_end(data: InputBytes) -> int:
    """Bytes of the header line, its line feed included (the whole input when it has none)."""
    pos, step = 0, 1 << 16
    while pos < data.size:
        chunk = data.read(pos, pos + step)
        at = chunk.find(b"\n")
        if at >= 0:
            return pos + at + 1
        pos += len(chunk)
    return data.size


def read_blocks(
    path: str | os.PathLike[str],
    *,
    required: Sequence[str] = REQUIRED_COLUMNS[Mode.HISTORICAL],
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[Block]:
    """The blocks of the CSV file at ``path`` in file order. Raises ``InputError`` (before the
    first block) when the file cannot be read or its header lacks a required column."""
    with reading(path) as (source, data):
        yield from _blocks(data, source, required, block_bytes)


def parse_blocks(
    data: bytes, source: str, *, required: Sequence[str] = REQUIRED_COLUMNS[Mode.HISTORICAL],
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[Block]:
    """``read_blocks`` over bytes in memory (for tests)."""
    yield from _blocks(InputBytes(pa.py_buffer(data)), source, required, block_bytes)


def _blocks(
    data: InputBytes, source: str, required: Sequence[str], block_bytes: int
) -> Iterator[Block]:
    end = _header_end(data)
    header = data.read(0, end)
    if not header.endswith(b"\n"):
        header += b"\n"  # a header alone
    ncols, cols = read_header(InputBytes(pa.py_buffer(header)), source, required)
    pos, lines_before = end, 1  # line feeds before ``pos``
    while pos < data.size:
        shift = lines_before - 1  # the block's first line is line 2 of what was parsed
        hidden: frozenset[int] = frozenset()
        for _ in range(_MAX_RECUTS):
            stop = _cut(data, pos, block_bytes, lines_before + 1, hidden)
            body = data.read(pos, stop)
            parsed = parse_body(InputBytes(pa.py_buffer(header + body)), source, ncols, cols)
            found = frozenset(r.line + shift for r in parsed.rejected if r.reason == UNCLOSED)
            if found == hidden or stop >= data.size:
                break
            # Stray quotes were hidden: where records end may have moved, so cut again.
            hidden = found
        table = parsed.table
        if shift:
            line = pa.array(table.column("line").to_numpy() + shift)
            table = table.set_column(0, "line", line)
        rejected = [
            Rejected(r.source, r.line + shift, r.reason, r.raw) for r in parsed.rejected
        ]
        yield Block(table, rejected)
        lines_before += body.count(b"\n")
        pos = stop
