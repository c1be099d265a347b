"""The single writer: claim, copy, publish; gated by the slowest live consumer.

Vocabulary (after the Disruptor): a *sequence* numbers records from 0 and never wraps; the
writer's *cursor* is the sequence after the last published record; each consumer's slot
*cursor* is the sequence after the last record it released; *gating* is the minimum of the
ACTIVE slot cursors; a *claim* reserves the next n sequences; *publish* makes them readable.

Invariants:
  I1  Records [cursor - capacity, cursor) are intact, except those below ``tail``.
  I2  The writer never overwrites a record at or above any ACTIVE slot's cursor:
      a claim of [c, c + n) proceeds only when c + n - capacity <= gating.
  I3  ``tail`` is monotonic and announced before the writes it covers.

Memory ordering: the argument (M1 publish, M2 release, M3 join, M4 atomic words) is in
``_ordering``, with the only loads and stores of shared words and the only fence; the call
sites below name the one they rely on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from . import _procs, _shm
from ._errors import Interrupted, RingBusy, SchemaMismatch
from ._layout import (
    CURSOR,
    END,
    MAGIC,
    MAGIC_WORD,
    NOT_ENDED,
    SCHEMA_AT,
    TAIL,
    VERSION,
    Geometry,
    Header,
    SegmentState,
    SlotState,
    Views,
    encode_schema,
    header_fields,
    storage_dtype,
)
from ._ordering import full_fence, load_acquire, load_each, require_x86_64, store_release
from ._symbols import SymbolWriter
from ._wait import WRITER_WAIT, WaitStrategy

_log = logging.getLogger("ringbuffer.writer")  # key=value fields in extra={"fields": ...}
_LIVENESS_EVERY = 0.1  # seconds between pid checks of the consumers a blocked writer waits on
_ACTIVE: Final = int(SlotState.ACTIVE)  # a plain int: numpy compares it five times faster


class Writer:
    """The ring's only writer. Made by :func:`create`."""

    def __init__(
        self,
        name: str,
        fd: int,
        geometry: Geometry,
        wait: WaitStrategy,
        dead_grace: float,
        evict_after: float | None,
    ) -> None:
        self.name = name
        self.schema = dict(geometry.schema)
        self.capacity = geometry.capacity
        self._path = _shm.segment_path(name)
        self._fd = fd
        self._mm = _shm.map_fd(fd)
        self._v = Views(self._mm, geometry)
        self._cols = self._v.columns
        self._dtypes = {k: storage_dtype(t) for k, t in self.schema.items()}
        self._symbols = SymbolWriter(self._v)
        self._symbol_cols = [k for k, t in self.schema.items() if t == "symbol"]
        self._wait = wait
        self._dead_grace = dead_grace
        self._evict_after = evict_after
        self._next = 0
        self._tail = 0
        self._min_claim = max(1, self.capacity // 16)
        self._dead_since: dict[int, float] = {}
        self._interrupted = False
        self._gate: int | None = None  # the gating minimum at the last validating scan
        self.closed = False

    # -- publishing ------------------------------------------------------------------------

    @property
    def cursor(self) -> int:
        """Sequence after the last published record (the count published so far)."""
        return self._next

    def symbol_codes(self, values: Any) -> np.ndarray:
        """uint32 codes for a ``symbol`` column, interning new strings (see ``_symbols``)."""
        return self._symbols.codes(values)

    def _columns(self, batch: Mapping[str, Any] | pa.RecordBatch | pa.Table) -> dict[str, Any]:
        if isinstance(batch, pa.RecordBatch | pa.Table):
            names = batch.schema.names
            batch = {k: batch.column(k) for k in names}
        missing = [k for k in self.schema if k not in batch]
        extra = [k for k in batch if k not in self.schema]
        if missing or extra:
            raise SchemaMismatch(f"publish: missing columns {missing}, unknown columns {extra}")
        out = {}
        for name, values in batch.items():
            if name in self._symbol_cols and not (
                isinstance(values, np.ndarray) and values.dtype.kind in "iu"
            ):
                out[name] = self._symbols.codes(values)
                continue
            if isinstance(values, pa.ChunkedArray):
                values = values.combine_chunks()
            if isinstance(values, pa.Array):
                if pa.types.is_timestamp(values.type):
                    values = values.cast(pa.int64())
                values = values.to_numpy(zero_copy_only=False)
            out[name] = np.asarray(values)
        lengths = {len(v) for v in out.values()}
        if len(lengths) != 1:
            raise SchemaMismatch(f"publish: columns of unequal lengths {sorted(lengths)}")
        return out

    def publish(self, batch: Mapping[str, Any] | pa.RecordBatch | pa.Table) -> int:
        """Append a batch (numpy arrays by column name, or an Arrow batch/table).

        Blocks while the slowest live consumer is a whole ring behind; a batch larger than the
        free space is published in pieces as space frees. Returns the new cursor.
        """
        cols = self._columns(batch)
        n = len(next(iter(cols.values())))
        done = 0
        cap = self.capacity
        while done < n:
            k = self._claim(n - done)
            at = self._next % cap
            first = min(k, cap - at)  # wrap-around: at most two slices
            for name, src in cols.items():
                dst = self._cols[name]
                dst[at : at + first] = src[done : done + first]
                if k > first:
                    dst[: k - first] = src[done + first : done + k]
            self._next += k
            store_release(self._v.words, CURSOR, self._next)  # M1: after the column stores
            done += k
        return self._next

    def interrupt(self) -> None:
        """Make a blocked :meth:`publish` raise :class:`Interrupted` and waits return False.

        Safe to call from a signal handler; records already published stay published.
        """
        self._interrupted = True

    def resume(self) -> None:
        """Undo :meth:`interrupt`: waits wait again (a stop's drain, after the signal that
        unblocked a publish; a further :meth:`interrupt` cuts that wait short too)."""
        self._interrupted = False

    def end(self) -> None:
        """End the stream: consumers read what is published, then see the end."""
        store_release(self._v.words, END, self._next)  # M1: after the cursor store it covers

    # -- gating ----------------------------------------------------------------------------

    def _gating(self) -> tuple[int | None, np.ndarray]:
        """The minimum ACTIVE slot cursor (None without consumers), and the ACTIVE slots."""
        # M1: states before cursors; a joiner stores its cursor before its state becomes ACTIVE
        states = load_each(self._v.slot_state)
        active = np.flatnonzero(states == _ACTIVE)
        if not active.size:
            return None, active
        return int(load_each(self._v.slot_cursor, active).min()), active  # M2: then reuse

    def _announce(self, overwrite_below: int) -> None:
        """Publish ``tail`` (I3), then fence (M3) before the gating is checked again."""
        if overwrite_below > self._tail:
            self._tail = overwrite_below
            store_release(self._v.words, TAIL, overwrite_below)  # M3: store tail,
        full_fence()  # M3: fence, then (the caller) load the slots

    def _claim(self, want: int) -> int:
        """Reserve up to ``want`` sequences from the cursor; returns how many (>= 1)."""
        cap = self.capacity
        target = min(want, cap)
        if self._next + target <= cap:
            return target  # nothing is overwritten before the first wrap
        smallest = min(target, self._min_claim)
        attempt = 0
        blocked_since = 0.0
        next_check = 0.0
        gate = self._gate  # cached: slot cursors only move up, so it is a safe first guess
        while True:
            if gate is None or gate + cap - self._next < smallest:
                gate, active = self._gating()
            room = target if gate is None else gate + cap - self._next
            if room >= smallest:
                k = min(room, target)
                overwrite_below = self._next + k - cap
                self._announce(overwrite_below)
                gate, active = self._gating()  # M3: a consumer that joined below the tail?
                self._gate = gate
                if gate is None or gate >= overwrite_below:
                    if self._dead_since:
                        self._dead_since.clear()
                    return k
                continue
            if self._interrupted:
                raise Interrupted(f"publish to ring {self.name!r} interrupted while blocked")
            now = time.monotonic()
            if not blocked_since:
                blocked_since = now
            if now >= next_check:
                next_check = now + _LIVENESS_EVERY
                self._check_laggards(active, self._next + smallest - cap, now - blocked_since)
            self._wait.pause(attempt)
            attempt += 1

    def _check_laggards(self, active: np.ndarray, need: int, blocked_for: float) -> None:
        """Stop waiting for dead consumers (after ``dead_grace``) and, if asked, slow ones."""
        slots = self._v.slots
        now = time.monotonic()
        for i in active:
            if load_acquire(self._v.slot_cursor, i) >= need:  # M4
                continue
            pid, started = int(slots["pid"][i]), int(slots["start"][i])
            if _procs.alive(pid, started):
                if self._evict_after is not None and blocked_for > self._evict_after:
                    self._retire(int(i), pid, SlotState.EVICTED, f"lagged {blocked_for:.1f}s")
                continue
            since = self._dead_since.setdefault(int(i), now)
            if now - since >= self._dead_grace:
                self._retire(int(i), pid, SlotState.DEAD, "process died")

    def _retire(self, i: int, pid: int, state: SlotState, why: str) -> None:
        slots = self._v.slots
        with _shm.locked(self._fd):  # a new attach may be taking the slot over
            if int(slots["state"][i]) != _ACTIVE or int(slots["pid"][i]) != pid:
                return
            store_release(self._v.slot_state, i, state)  # M4: its reader sees it at its next read
        name = bytes(slots["name"][i]).rstrip(b"\0").decode()
        fields = {
            "ring": self.name,
            "consumer": name,
            "pid": pid,
            "why": why,
            "lag": self._next - load_acquire(self._v.slot_cursor, i),
        }
        level = logging.ERROR if state == SlotState.EVICTED else logging.WARNING
        _log.log(level, "consumer no longer gates the writer", extra={"fields": fields})
        self._dead_since.pop(i, None)

    # -- consumers -------------------------------------------------------------------------

    def consumers(self) -> list[dict[str, Any]]:
        """The ACTIVE consumers: name, pid, cursor and lag (records published, not released)."""
        slots = self._v.slots
        out = []
        for i in np.flatnonzero(load_each(self._v.slot_state) == _ACTIVE):
            cursor = load_acquire(self._v.slot_cursor, i)  # M4
            name = bytes(slots["name"][i]).rstrip(b"\0").decode()
            out.append(
                {"name": name, "pid": int(slots["pid"][i]), "cursor": cursor,
                 "lag": self._next - cursor}
            )  # fmt: skip
        return out

    def _poll(self, done: Any, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        next_check = 0.0
        while not done():
            now = time.monotonic()
            if self._interrupted or (deadline is not None and now >= deadline):
                return False
            if now >= next_check:
                next_check = now + _LIVENESS_EVERY
                _, active = self._gating()
                self._check_laggards(active, self._next, 0.0)
            self._wait.pause(attempt)
            attempt += 1
        return True

    def wait_for_consumers(self, n: int, timeout: float | None = None) -> bool:
        """Wait until at least ``n`` consumers are attached; False on timeout."""
        return self._poll(lambda: len(self.consumers()) >= n, timeout)

    def wait_drained(self, timeout: float | None = None) -> bool:
        """Wait until every live consumer has released everything published; False on timeout."""
        return self._poll(
            lambda: all(c["cursor"] >= self._next for c in self.consumers()), timeout
        )

    def behind(self) -> list[dict[str, Any]]:
        """Consumers that have not released everything published: the live ones, and those
        whose process died (ACTIVE or DEAD): name, pid, whether the process is alive, and how
        many records they did not read."""
        slots = self._v.slots
        states = slots["state"]
        out = []
        for i in np.flatnonzero((states == SlotState.ACTIVE) | (states == SlotState.DEAD)):
            unread = self._next - int(slots["cursor"][i])
            if unread > 0:
                name = bytes(slots["name"][i]).rstrip(b"\0").decode()
                pid = int(slots["pid"][i])
                alive = _procs.alive(pid, int(slots["start"][i]))
                out.append({"name": name, "pid": pid, "alive": alive, "unread": unread})
        return out

    def close(self, keep: bool = False, ended: bool = True) -> None:
        """Unmap and remove the segment. Consumers still mapped can drain what was published.

        ``keep``: leave the segment in place (closed) for the next writer of the name to take
        what is in it (see :func:`salvage`): consumers behind lose nothing. With ``ended=False``
        the end of stream is withdrawn: a consumer that attaches before the next writer waits
        for it instead of taking this ring's end for the stream's.
        """
        if self.closed:
            return
        self.closed = True
        if keep and not ended:
            store_release(self._v.words, END, NOT_ENDED)  # M4: the stream goes on in the next ring
        store_release(self._v.state, 0, SegmentState.CLOSED)  # M4: waiting readers see it
        if not keep and _shm.same_file(self._fd, self._path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
        del self._v, self._cols, self._symbols
        _shm.close_map(self._mm)
        os.close(self._fd)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reclaim(path: Path, name: str) -> int:
    """Retire a segment left by a writer that is gone; returns its generation (0 if unknown)."""
    fd = _shm.open_file(path)
    if fd is None:
        return 0
    try:
        with _shm.locked(fd):
            head = Header.read(fd)
            generation = 0
            if head is not None:
                owner = head.writer_pid, head.writer_start
                if head.state == SegmentState.WRITING and _procs.alive(*owner):
                    raise RingBusy(
                        f"ring {name!r} is owned by a live writer (pid {head.writer_pid}); "
                        "stop it or use another --ring name"
                    )
                generation = head.generation
                mm = _shm.map_fd(fd)
                try:
                    # Old readers see SUPERSEDED and a new generation, and attach again.
                    state, gen = header_fields(mm)
                    store_release(gen, 0, generation + 1)  # M4: either tells them
                    store_release(state, 0, SegmentState.SUPERSEDED)
                    del state, gen
                finally:
                    _shm.close_map(mm)
            if _shm.same_file(fd, path):
                os.unlink(path)
            _log.warning(
                "reclaimed a ring left by a stopped writer",
                extra={"fields": {"ring": name, "gen": generation}},
            )
            return generation
    finally:
        os.close(fd)


def create(
    name: str,
    schema: Mapping[str, str],
    capacity: int = 1 << 20,
    *,
    n_slots: int = 64,
    max_symbols: int = 1 << 16,
    symbol_bytes: int = 4 << 20,
    tag: int = 0,
    wait: WaitStrategy = WRITER_WAIT,
    dead_grace: float = 0.0,
    evict_after: float | None = None,
) -> Writer:
    """Create ring ``name`` with one column per ``schema`` entry and room for ``capacity`` records.

    ``schema`` maps column names to numpy dtype names, ``"symbol"`` (dictionary-encoded
    strings) or ``"timestamp[ns]"``. A segment left by a writer that is gone is reclaimed;
    one owned by a live writer raises :class:`RingBusy`. ``dead_grace``: seconds a dead
    consumer keeps gating (room for a supervisor to restart it); ``evict_after``: stop waiting
    for a live consumer that has blocked the writer this long (it then fails with Overrun).

    >>> w = create("doctest-ring", {"seq": "uint64", "bid": "float64"}, capacity=8)
    >>> w.publish({"seq": np.arange(3, dtype="uint64"), "bid": np.ones(3)})
    3
    >>> w.close()
    """
    require_x86_64()
    if capacity < 2 or capacity & (capacity - 1):
        raise ValueError(f"capacity must be a power of two >= 2, not {capacity}")
    if not 1 <= n_slots <= 4096:
        raise ValueError(f"n_slots must be 1..4096, not {n_slots}")
    schema = dict(schema)
    schema_bytes = encode_schema(schema)
    geometry = Geometry(schema, capacity, n_slots, max_symbols, symbol_bytes)
    path = _shm.segment_path(name)
    generation = _reclaim(path, name) + 1
    fd = _shm.create_file(path, geometry.size)
    try:
        pid, started = _procs.me()
        head = Header(
            MAGIC, VERSION, SegmentState.WRITING, generation, capacity, n_slots,
            len(schema_bytes), geometry.size, pid, started, tag, max_symbols, symbol_bytes,
            time.time_ns(),
        )  # fmt: skip
        mm = _shm.map_fd(fd)
        mm[SCHEMA_AT : SCHEMA_AT + len(schema_bytes)] = schema_bytes
        packed = head.pack()
        mm[8 : len(packed)] = packed[8:]
        words = np.frombuffer(mm, "<u8", count=SCHEMA_AT // 8)
        words[END] = NOT_ENDED
        store_release(words, 0, MAGIC_WORD)  # M1: last; who sees the magic sees the header
        del words
        _shm.close_map(mm)
        return Writer(name, fd, geometry, wait, dead_grace, evict_after)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
