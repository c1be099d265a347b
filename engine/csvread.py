"""Raw reading of a historical CSV input: its bytes, header, Arrow table and physical lines.

``read_table`` turns the bytes into an Arrow table in file order (numbers as float64, or as
text when one does not parse) plus the ragged rows Arrow skipped; ``line_numbers`` and
``line_texts`` map table rows back to the physical lines of the file for reject reports.
Checking the values is ``engine.validate``'s job.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from common.cli import UsageError
from common.schema import OPTIONAL_COLUMNS
from engine.rejects import clip_raw

#: The numeric columns, read as float64 (or as text when one does not parse).
NUMERIC = ("bid_price", "ask_price", "latency", *OPTIONAL_COLUMNS)
_BLOCK = 8 << 20


class InputError(UsageError):
    """An input that cannot be used at all (a missing column or an unreadable file).

    Public as ``engine.historical.InputError``; defined here, where an unreadable file is found.
    """


class InputBytes:
    """The input's bytes: in memory, or a file read with ``pread`` (not memory-mapped: in this
    VM faulting a mapped file in page by page costs more CPU than copying it)."""

    def __init__(self, buf: pa.Buffer | None = None, path: str | None = None) -> None:
        self._buf, self._path = buf, path
        self._fd = os.open(path, os.O_RDONLY) if path is not None else None
        self.size = buf.size if buf is not None else os.fstat(self._fd).st_size  # type: ignore[arg-type]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def reader(self) -> pa.NativeFile:
        """A fresh stream over all the bytes (no decompression by file name)."""
        return pa.BufferReader(self._buf) if self._buf is not None else pa.OSFile(self._path)

    def read(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if self._buf is not None:
            return self._buf.slice(start, max(0, end - start)).to_pybytes()
        return os.pread(self._fd, max(0, end - start), start)  # type: ignore[arg-type]

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        for pos in range(0, self.size, _BLOCK):
            yield pos, np.frombuffer(self.read(pos, pos + _BLOCK), np.uint8)


@contextlib.contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[tuple[str, InputBytes]]:
    """The file at ``path`` as ``(source, InputBytes)``, closed at the end of the block; an
    ``OSError`` opening or reading it becomes ``InputError("<path>: cannot read (...)")``."""
    source = os.fspath(path)
    try:
        data = InputBytes(path=source)
    except OSError as exc:
        raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from exc
    try:
        yield source, data
    except OSError as exc:
        raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from exc
    finally:
        data.close()


def header_names(data: InputBytes) -> list[str]:
    """Lower-cased, stripped column names of the first line."""
    head = b""
    for _, block in data.blocks():
        head += block.tobytes()
        if b"\n" in head:
            break
    line = head.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r")
    return [f.strip().lower() for f in line_fields(line)]


def _read_csv(
    data: InputBytes, ncols: int, cols: dict[str, int], text_numbers: bool, threads: bool
) -> tuple[pa.Table, list[pcsv.InvalidRow]]:
    names = [f"c{i}" for i in range(ncols)]
    number = pa.binary() if text_numbers else pa.float64()
    types = {names[i]: number for c, i in cols.items() if c in NUMERIC}
    types[names[cols["timestamp"]]] = pa.binary()
    types[names[cols["ticker"]]] = pa.dictionary(pa.int32(), pa.binary())
    skipped: list[pcsv.InvalidRow] = []

    def on_invalid(row: pcsv.InvalidRow) -> str:
        skipped.append(row)
        return "skip"

    with _quiet_handler_errors():
        table = pcsv.read_csv(
            data.reader(),
            read_options=pcsv.ReadOptions(
                column_names=names, skip_rows=1, block_size=_BLOCK, use_threads=threads
            ),
            parse_options=pcsv.ParseOptions(
                ignore_empty_lines=False, invalid_row_handler=on_invalid
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                include_columns=[names[i] for i in cols.values()],
                null_values=[""],
                strings_can_be_null=True,
            ),
            memory_pool=pa.system_memory_pool(),  # in this VM mimalloc's page resets cost more
        )
    return table.rename_columns(list(cols)), skipped


@contextlib.contextmanager
def _quiet_handler_errors() -> Iterator[None]:
    """Silence Arrow's report of a ragged row it could not decode (``read_table`` retries those)."""
    previous = sys.unraisablehook

    def hook(info: Any) -> None:
        if not isinstance(info.exc_value, UnicodeDecodeError):
            previous(info)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def read_table(
    data: InputBytes, source: str, ncols: int, cols: dict[str, int]
) -> tuple[pa.Table, list[pcsv.InvalidRow], bool]:
    """The table in file order, the rows Arrow skipped (ragged), with their line numbers, and
    whether invalid UTF-8 had to be replaced by NUL bytes first."""
    text_numbers = cleaned = False
    while True:
        try:
            try:
                table, skipped = _read_csv(data, ncols, cols, text_numbers, True)
            except pa.ArrowInvalid as exc:
                if "conversion error" not in str(exc) or text_numbers:
                    raise
                text_numbers = True  # a number that does not parse: read numbers as text
                table, skipped = _read_csv(data, ncols, cols, True, True)
            if skipped:  # only a single-threaded read numbers the skipped rows
                table, skipped = _read_csv(data, ncols, cols, text_numbers, False)
            return table, skipped, cleaned
        except pa.ArrowException as exc:
            # Arrow cannot hand a ragged row with invalid UTF-8 to the handler: replace such
            # bytes by NUL (line numbers stay) and try once more; a NUL ticker is rejected.
            whole = data.read(0, data.size) if not cleaned and "parse error" in str(exc) else b""
            try:
                whole.decode("utf-8")
                raise InputError(f"{source}: cannot read CSV ({exc})") from exc
            except UnicodeDecodeError:
                data = InputBytes(pa.py_buffer(whole.decode("utf-8", "quote_replay.nul").encode()))
                cleaned = True


def _nul(exc: UnicodeError) -> tuple[str, int]:
    return "\x00", exc.end  # type: ignore[attr-defined]


codecs.register_error("quote_replay.nul", _nul)


def line_numbers(
    rows: np.ndarray, skipped_lines: np.ndarray, records: np.ndarray | None = None
) -> np.ndarray:
    """Physical line of table rows (0-based), given the sorted record numbers Arrow skipped.

    Arrow numbers records (the header is 1); without ``records`` every record is one line.
    ``records`` (from :func:`record_lines`) maps a record number to the line it starts on.
    """
    if not len(skipped_lines):
        ordinals = rows + 2
    else:
        gaps = skipped_lines - 2 - np.arange(len(skipped_lines))
        ordinals = rows + 2 + np.searchsorted(gaps, rows, side="right")
    return ordinals if records is None else records[ordinals - 1]


def record_lines(data: InputBytes) -> tuple[np.ndarray | None, bool]:
    """Where each record starts, and whether the input holds a bare carriage return.

    A record ends at a line feed outside quotes (quote parity: an escaped ``""`` keeps it);
    ``out[k]`` is the physical line (1-based) on which record ``k + 1`` starts, the header being
    record 1. None when no record can span lines (no quote in the input): then record = line.
    A bare CR (not before a LF) ends a row for Arrow's reader but not a line here; the caller
    hides it from Arrow (:func:`without_bare_cr`) so that the two agree.

    The usual input (no quote, LF or CRLF line ends) costs two ``memchr``-speed scans.
    """
    any_quote = bare_cr = False
    tail = b""
    for pos in range(0, data.size, _BLOCK):
        chunk = data.read(pos, pos + _BLOCK)
        any_quote = any_quote or b'"' in chunk
        if not bare_cr and (b"\r" in chunk or tail == b"\r"):
            joined = tail + chunk  # a CR at the end of a block may meet its LF in the next
            bare_cr = joined.count(b"\r") - joined.count(b"\r\n") > (joined[-1:] == b"\r")
        tail = chunk[-1:]
    if tail == b"\r":
        bare_cr = True
    if not any_quote:
        return None, bare_cr
    quotes_before = 0
    lf_seen = 0
    starts: list[np.ndarray] = [np.ones(1, np.int64)]
    for _, block in data.blocks():
        lf = np.flatnonzero(block == 10)
        qs = np.flatnonzero(block == 34)
        even = (quotes_before + np.searchsorted(qs, lf)) % 2 == 0
        starts.append(lf_seen + 2 + np.flatnonzero(even))
        quotes_before += len(qs)
        lf_seen += len(lf)
    return np.concatenate(starts), bare_cr


def without_bare_cr(data: InputBytes) -> InputBytes:
    """The input in memory with every bare CR replaced by a control character (0x01): one row
    then stays one row for Arrow, and the field holding it is rejected as it should be."""
    raw = np.frombuffer(bytearray(data.read(0, data.size)), np.uint8)
    cr = np.flatnonzero(raw == 13)
    nxt = cr + 1
    lone = np.ones(len(cr), bool)
    inside = nxt < len(raw)
    lone[inside] = raw[nxt[inside]] != 10
    raw[cr[lone]] = 1
    return InputBytes(pa.py_buffer(raw))


def hide_quotes_on_lines(data: InputBytes, lines: Sequence[int]) -> InputBytes:
    """The input with the quotes of the physical ``lines`` (1-based) replaced by 0x01, in
    memory (one copy of the input, whatever the number of lines)."""
    raw = np.frombuffer(bytearray(data.read(0, data.size)), np.uint8)
    lf = np.flatnonzero(raw == 10)
    for line in lines:
        start = 0 if line == 1 else int(lf[line - 2]) + 1
        end = int(lf[line - 1]) if line - 1 < len(lf) else len(raw)
        piece = raw[start:end]
        piece[piece == 34] = 1
    return InputBytes(pa.py_buffer(raw))


def line_texts(data: InputBytes, lines: Sequence[int]) -> dict[int, str]:
    """Text of the given physical lines (1-based), without the line end."""
    need = np.unique(np.asarray(lines, np.int64))
    if not len(need):
        return {}
    want = np.union1d(need, need + 1)  # a line ends where the next one starts
    start = np.where(want == 1, 0, -1)  # byte offset where each wanted line starts
    seen = 0  # newlines before the current block
    for pos, block in data.blocks():
        nl = np.flatnonzero(block == 10)
        j = want - 2 - seen  # line k starts after newline number k - 1 (0-based: k - 2)
        hit = (j >= 0) & (j < len(nl))
        start[hit] = pos + nl[j[hit]] + 1
        seen += len(nl)
        if seen >= want[-1] - 1:
            break
    where = dict(zip(want.tolist(), start.tolist(), strict=True))
    out = {}
    for k in need.tolist():
        if where[k] >= 0:
            end = where[k + 1] - 1 if where[k + 1] >= 0 else data.size
            text = data.read(where[k], end).decode("utf-8", "replace").rstrip("\r")
            out[k] = clip_raw(text)
    return out


def line_field(line: str | None, column: int) -> str | None:
    """Field number ``column`` of a raw CSV line, or None when the line has no such field."""
    if line is None:
        return None
    fields = line_fields(line)
    return fields[column] if column < len(fields) else None


def line_fields(line: str) -> list[str]:
    """The fields of one CSV line."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error:  # a stray carriage return inside the line
        return line.split(",")
