"""Sorted runs of a historical file spilled to the state directory: the streaming parse cache.

The blocks of ``engine.blocks`` are gathered into runs of about ``run_rows`` records, each
sorted by ``(arrival, line)`` (a stable sort by arrival: lines grow in file order) and written
as Arrow IPC record batches of ``batch_rows`` records to ``<state_dir>/cache/runs-<key>/runs.ipc``.
``manifest.json``, written last and atomically, says where each batch is (offset, length,
CRC-32, first key) together with the input's identity, the ticker dictionary and the reject
counts: with it a second replay of the same file reads no CSV at all. Each batch's CRC is
checked when it is read (``RunFile.read``); the store is 0600 like the checkpoint.

Tickers are stored as int32 indices into the whole file's dictionary, which the manifest holds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from common.log import get_logger
from common.schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, Mode
from engine.blocks import BLOCK_BYTES, Block, read_blocks
from engine.cache import Identity, identity
from engine.rejects import Rejected

#: Bump when the stored layout or the parser's output changes meaning.
RUNS_VERSION = 1
#: Records per sorted run: a run is sorted in memory (about 70 bytes a record).
RUN_ROWS = 1 << 18
#: Records per stored batch: the merge holds one batch of each open run.
BATCH_ROWS = 1 << 13
_log = get_logger("engine")

#: The columns of a stored batch: the table's, with the ticker as an index.
RUN_SCHEMA = pa.schema(
    [("line", pa.int64()), ("ticker", pa.int32()), ("timestamp", pa.int64()),
     ("arrival", pa.int64()), ("latency", pa.float64()), ("bid_price", pa.float64()),
     ("ask_price", pa.float64()), *[(c, pa.float64()) for c in OPTIONAL_COLUMNS]]
)  # fmt: skip


class Stopped(Exception):
    """The engine was asked to stop while the input was being read (nothing was published)."""


class CorruptRuns(Exception):
    """A stored batch does not match its checksum (the store is removed)."""


@dataclass
class Manifest:
    """Where the sorted runs are and what they hold (``runs``: per run, its batches as
    ``[offset, length, crc32, rows, first arrival, first line]``)."""

    identity: dict[str, Any]
    required: list[str]
    rows: int = 0
    rejected_count: int = 0
    first_rejected: dict[str, Any] | None = None
    tickers: list[str] = field(default_factory=list)
    runs: list[list[list[int]]] = field(default_factory=list)
    version: int = RUNS_VERSION


def store_dir(state_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """The folder of the runs of the input at ``path`` (one per resolved input path)."""
    name = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:20]
    return Path(state_dir) / "cache" / f"runs-{name}"


class RunFile:
    """The stored batches, read with ``pread`` (no mapping: resident memory stays bounded)."""

    def __init__(self, folder: Path, manifest: Manifest) -> None:
        self.folder = folder
        self.manifest = manifest
        self._fd = os.open(folder / "runs.ipc", os.O_RDONLY | os.O_CLOEXEC)

    def read(self, entry: Sequence[int]) -> dict[str, np.ndarray]:
        """The columns of one batch, checked against its CRC."""
        offset, length, crc = entry[0], entry[1], entry[2]
        raw = os.pread(self._fd, length, offset)
        if len(raw) != length or zlib.crc32(raw) != crc:
            self.close()
            shutil.rmtree(self.folder, ignore_errors=True)
            raise CorruptRuns(f"{self.folder}: stored batch at offset {offset} is corrupt "
                              "(removed; the next start parses the input again)")  # fmt: skip
        batch = pa.ipc.read_record_batch(pa.py_buffer(raw), RUN_SCHEMA)
        return {name: col.to_numpy() for name, col in zip(RUN_SCHEMA.names, batch.columns,
                                                            strict=True)}  # fmt: skip

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def load(
    path: str | os.PathLike[str], state_dir: str | os.PathLike[str], required: Sequence[str],
    ident: Identity,
) -> RunFile | None:
    """The stored runs of ``path`` when there are complete ones for its current identity."""
    folder = store_dir(state_dir, path)
    try:
        body = json.loads((folder / "manifest.json").read_text())
        manifest = Manifest(**body)
        if (manifest.version != RUNS_VERSION or manifest.identity != asdict(ident)
                or manifest.required != list(required)):  # fmt: skip
            return None
        return RunFile(folder, manifest)
    except (OSError, ValueError, TypeError):
        return None


class _Builder:
    """Gathers blocks into sorted runs and writes them."""

    def __init__(self, sink: Any, run_rows: int, batch_rows: int) -> None:
        self.sink = sink
        self.run_rows, self.batch_rows = run_rows, batch_rows
        self.tickers: dict[str, int] = {}
        self.pending: list[dict[str, np.ndarray]] = []
        self.pending_rows = 0
        self.runs: list[list[list[int]]] = []
        self.offset = 0
        self.rows = 0

    def add(self, block: Block) -> None:
        table = block.table
        if not table.num_rows:
            return
        ticker = table.column("ticker").combine_chunks()
        words = ticker.dictionary.to_pylist()
        remap = np.array([self.tickers.setdefault(w, len(self.tickers)) for w in words],
                         np.int32)  # fmt: skip
        cols = {n: table.column(n).to_numpy() for n in RUN_SCHEMA.names if n != "ticker"}
        cols["ticker"] = remap[ticker.indices.to_numpy(zero_copy_only=False)]
        self.pending.append(cols)
        self.pending_rows += table.num_rows
        if self.pending_rows >= self.run_rows:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        pending, self.pending, self.pending_rows = self.pending, [], 0
        arrival = np.concatenate([p["arrival"] for p in pending])
        order = np.argsort(arrival, kind="stable")  # blocks in file order: ties by line
        cols = {"arrival": arrival[order]}
        del arrival
        for n in RUN_SCHEMA.names:  # a column at a time: one spare column of memory
            if n != "arrival":
                cols[n] = np.concatenate([p.pop(n) for p in pending])[order]
        run: list[list[int]] = []
        for start in range(0, len(order), self.batch_rows):
            part = [pa.array(cols[n][start : start + self.batch_rows]) for n in RUN_SCHEMA.names]
            buf = pa.RecordBatch.from_arrays(part, schema=RUN_SCHEMA).serialize()
            self.sink.write(buf)
            run.append([self.offset, buf.size, zlib.crc32(buf), len(part[0]),
                        int(cols["arrival"][start]), int(cols["line"][start])])  # fmt: skip
            self.offset += buf.size
        self.runs.append(run)
        self.rows += len(order)
        _trim()


def _trim() -> None:
    """Give freed heap pages back to the system (glibc): the parse's many threads and short-
    lived buffers otherwise leave the peak RSS creeping up with the file's size."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc() -> Any:
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return lib if hasattr(lib, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


def build(
    path: str | os.PathLike[str],
    state_dir: str | os.PathLike[str],
    ident: Identity,
    on_rejected: Callable[[list[Rejected]], None],
    *,
    required: Sequence[str] = REQUIRED_COLUMNS[Mode.HISTORICAL],
    block_bytes: int = BLOCK_BYTES,
    run_rows: int = RUN_ROWS,
    batch_rows: int = BATCH_ROWS,
    stop: Callable[[], bool] = lambda: False,
) -> RunFile:
    """Parse the CSV at ``path`` block by block into sorted runs; ``on_rejected`` gets each
    block's rejected rows, in line order, as they are found. Raises ``InputError``."""
    folder = store_dir(state_dir, path)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700, parents=True)
    first: Rejected | None = None
    count = 0
    fd = os.open(folder / "runs.ipc", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with open(fd, "wb", buffering=1 << 20) as sink:
        builder = _Builder(sink, run_rows, batch_rows)
        for block in read_blocks(path, required=required, block_bytes=block_bytes):
            if stop():
                raise Stopped(str(path))
            if block.rejected:
                first = first or block.rejected[0]
                count += len(block.rejected)
                on_rejected(block.rejected)
            builder.add(block)
        builder.flush()
    manifest = Manifest(
        asdict(ident), list(required), builder.rows, count,
        asdict(first) if first is not None else None, list(builder.tickers), builder.runs,
    )  # fmt: skip
    if identity(path) == ident:  # the input did not change while it was read
        tmp = folder / ".manifest.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "w") as f:
            json.dump(asdict(manifest), f)
        os.replace(tmp, folder / "manifest.json")
    return RunFile(folder, manifest)

