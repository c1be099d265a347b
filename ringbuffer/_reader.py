"""A consumer: a named slot with its own cursor, reading zero-copy Arrow batches.

A batch is a view of the ring's memory. It stays valid until the next :meth:`Reader.read`
(or :meth:`Reader.close`), which *releases* it: the slot cursor moves past it and the writer
may reuse that memory (M2 in ``_ordering``). With ``release="commit"`` the slot cursor moves
only on :meth:`Reader.commit`, so the writer never overwrites what a consumer has not yet made
durable, and a consumer restarted under the same name finds its uncommitted records intact.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal

import numpy as np
import pyarrow as pa

from . import _procs, _shm
from ._errors import (
    ConsumerNameInUse,
    NoFreeSlot,
    Overrun,
    RingNotFound,
    RingReset,
    SchemaMismatch,
)
from ._layout import (
    CURSOR,
    END,
    NAME_MAX,
    NO_COMMIT,
    NOT_ENDED,
    TAIL,
    VERSION,
    Header,
    SegmentState,
    SlotState,
)
from ._ordering import full_fence, load_acquire, require_x86_64, store_release
from ._segment import Segment
from ._wait import DEFAULT_WAIT, WaitStrategy

_RESET_CHECK_EVERY = 0.5  # seconds between checks, while idle, that the ring was not replaced
# Plain ints for the per-read checks: numpy and int compare with them faster than with enums.
_FREE: Final = int(SlotState.FREE)
_ACTIVE: Final = int(SlotState.ACTIVE)
_SUPERSEDED: Final = int(SegmentState.SUPERSEDED)


class Reader:
    """One named consumer of ring ``name``: takes a slot of ``segment`` (which it then owns) as
    ``consumer``. Made by :func:`attach`, whose arguments it takes."""

    def __init__(
        self,
        name: str,
        segment: Segment,
        consumer: str,
        *,
        resume: bool,
        release: Literal["read", "commit"],
        wait: WaitStrategy,
    ) -> None:
        head = segment.header
        self.name = name
        self.schema = segment.schema
        self.capacity = head.capacity
        self.generation = head.generation
        self.tag = head.tag
        self._segment = segment
        self._v = segment.views
        self._fd = segment.fd
        self._wait = wait
        self._release_on_read = release == "read"
        self._slot = -1
        self._pid = os.getpid()
        self._pos = 0  # sequence after the last record returned
        self._released = 0
        self._next_reset_check = time.monotonic() + _RESET_CHECK_EVERY
        self._idle = 0  # unsuccessful checks since records last arrived (see WaitStrategy)
        self.closed = False
        try:
            self._path = _shm.segment_path(name)
            self._join(consumer, resume)
        except BaseException:
            self.close()
            raise

    # -- attaching -------------------------------------------------------------------------

    def _join(self, consumer: str, resume: bool) -> None:
        key = consumer.encode()
        if not key or len(key) > NAME_MAX:
            raise ValueError(f"consumer name must be 1-{NAME_MAX} bytes of UTF-8: {consumer!r}")
        slots = self._v.slots
        pid, started = _procs.me()
        with _shm.locked(self._fd):
            names = slots["name"]
            states = slots["state"]
            mine = [i for i in np.flatnonzero(states != _FREE) if names[i] == key]
            if mine:
                i = int(mine[0])
                holder = int(slots["pid"][i])
                if states[i] == _ACTIVE and _procs.alive(holder, int(slots["start"][i])):
                    raise ConsumerNameInUse(
                        f"consumer name {consumer!r} is in use on ring {self.name!r} by pid "
                        f"{holder}; stop it or choose another --name"
                    )
            else:
                free = np.flatnonzero(states == _FREE)
                if not free.size:  # take the stalest slot no live consumer holds
                    idle = np.flatnonzero(states != _ACTIVE)
                    if not idle.size:
                        raise NoFreeSlot(
                            f"all {len(slots)} consumer slots of ring {self.name!r} are in use"
                        )
                    free = idle[np.argsort(slots["cursor"][idle], kind="stable")]
                i = int(free[0])
                slots["committed"][i] = NO_COMMIT
                slots["name"][i] = key
            committed = int(slots["committed"][i])
            resuming = resume and committed != NO_COMMIT
            start = committed if resuming else load_acquire(self._v.words, TAIL)
            store_release(self._v.slot_cursor, i, start)
            slots["pid"][i] = pid
            slots["start"][i] = started
            store_release(states, i, SlotState.ACTIVE)  # M1: after its cursor (see Writer._gating)
        self._slot = i
        # M3: store slot, fence, load tail; move up until the writer's tail is not above us.
        while True:
            full_fence()
            tail = load_acquire(self._v.words, TAIL)
            if tail <= start:
                break
            if resuming:  # the constructor detaches and closes
                raise Overrun(
                    f"consumer {consumer!r} committed up to sequence {committed}, but the ring "
                    f"now starts at {tail}: {tail - committed} records were overwritten while "
                    "it was away (it was not attached, or its release was not gating)"
                )
            start = tail
            store_release(self._v.slot_cursor, i, start)  # M3: store, then fence and load again
        self._pos = self._released = start

    # -- reading ---------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """Sequence after the last record returned by :meth:`read`."""
        return self._pos

    @property
    def ended(self) -> bool:
        """True once the writer ended the stream and this consumer has read all of it."""
        end = load_acquire(self._v.words, END)  # M1: stored after the cursor it covers
        return end != NOT_ENDED and self._pos >= end

    def lag(self) -> int:
        """Records published but not yet returned to this consumer."""
        return load_acquire(self._v.words, CURSOR) - self._pos  # M4

    def _check(self) -> None:
        """Raise if the ring was replaced or this consumer lost its slot."""
        v = self._v
        if (
            load_acquire(v.state, 0) == _SUPERSEDED  # M4, as all loads here
            or load_acquire(v.generation, 0) != self.generation
        ):
            raise RingReset(f"ring {self.name!r} was recreated by a new writer; attach again")
        state = load_acquire(v.slot_state, self._slot)
        if state != _ACTIVE or int(v.slot_pid[self._slot]) != self._pid:
            why = "evicted for lagging" if state == SlotState.EVICTED else "taken from it"
            raise Overrun(
                f"consumer {self.name_of_slot()!r} was {why}; records it had not read may be "
                "overwritten, so it stops here instead of reading them"
            )

    def name_of_slot(self) -> str:
        return bytes(self._v.slots["name"][self._slot]).rstrip(b"\0").decode()

    def read(self, max_records: int = 65536, timeout: float | None = 1.0) -> pa.RecordBatch | None:
        """The next batch of up to ``max_records`` (at most up to the ring's wrap point), or
        None after ``timeout`` seconds with nothing new, or at the end of the stream.

        Releases the previous batch. Raises :class:`RingReset` when the writer was replaced and
        :class:`Overrun` when this consumer was evicted.
        """
        if self._release_on_read:
            self._release(self._pos)
        self._check()
        available = load_acquire(self._v.words, CURSOR) - self._pos  # M1: then the records
        if available <= 0:
            available = self._await(timeout)
            if available <= 0:
                return None
        self._idle = 0
        at = self._pos % self.capacity
        n = min(available, max_records, self.capacity - at)
        self._pos += n
        return self._segment.records(at, n)

    def replaced(self) -> bool:
        """True once a new writer has created a ring of this name (this one is finished)."""
        if load_acquire(self._v.state, 0) == _SUPERSEDED:  # M4
            return True
        return self._path.exists() and not _shm.same_file(self._fd, self._path)

    def _await(self, timeout: float | None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = self._idle  # kept across calls: a reader idle for long parks, short timeouts too
        while True:
            available = load_acquire(self._v.words, CURSOR) - self._pos  # M1: then the records
            if available > 0:
                return available
            if self.ended:
                return 0
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self._idle = attempt
                return 0
            if now >= self._next_reset_check:  # kept across calls: short timeouts check too
                self._next_reset_check = now + _RESET_CHECK_EVERY
                self._check()
                if load_acquire(self._v.state, 0) == SegmentState.CLOSED:  # M4
                    raise RingReset(f"ring {self.name!r} was closed without ending the stream")
                if self.replaced():
                    raise RingReset(f"ring {self.name!r} was replaced; attach again")
            self._wait.pause(attempt)
            attempt += 1

    def wait_replaced(self, timeout: float | None = None) -> bool:
        """After the end of stream: wait until a new writer creates a ring of this name (attach
        again then); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.replaced():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_RESET_CHECK_EVERY / 5)
        return True

    # -- positions -------------------------------------------------------------------------

    def _release(self, position: int) -> None:
        if position > self._released:
            store_release(self._v.slot_cursor, self._slot, position)  # M2: after our loads
            self._released = position

    def commit(self, position: int | None = None) -> int:
        """Record the records before ``position`` (default: all returned so far) as done; a
        later attach under this name resumes there. Returns the committed sequence."""
        position = self._pos if position is None else position
        if position > self._pos:
            raise ValueError(f"cannot commit {position}: only {self._pos} records were read")
        self._check()
        store_release(self._v.slots["committed"], self._slot, position)  # M4
        if not self._release_on_read:
            self._release(position)
        return position

    def _detach(self) -> None:
        with _shm.locked(self._fd):
            slot = self._v.slots[self._slot]
            if int(slot["state"]) == _ACTIVE and int(slot["pid"]) == self._pid:
                store_release(self._v.slot_state, self._slot, SlotState.DETACHED)  # M4

    def close(self) -> None:
        """Release the slot (its name and commit stay for a later attach) and unmap."""
        if self.closed:
            return
        self.closed = True
        try:
            if self._slot >= 0:
                self._detach()
        finally:
            del self._v
            self._segment.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_live(path: Path) -> Segment | None:
    """The segment at ``path`` mapped, if it exists and a live or ended writer's header is
    complete; None otherwise (so far)."""
    fd = _shm.open_file(path)
    if fd is None:
        return None
    try:
        head = Header.read(fd)
        if head is not None and head.state != SegmentState.SUPERSEDED and head.version != VERSION:
            raise SchemaMismatch(
                f"ring at {path} has layout version {head.version}; this program "
                f"reads version {VERSION}: run matching versions of writer and reader"
            )
    except BaseException:
        os.close(fd)
        raise
    if head is None or head.state == SegmentState.SUPERSEDED:
        os.close(fd)
        return None
    segment = Segment(fd, head)
    # A live writer's ring, or a closed one whose stream was ended (its readers drain it); a
    # closed ring without an end waits for the next writer (one kept for it: Writer.close).
    if head.state == SegmentState.WRITING or load_acquire(segment.views.words, END) != NOT_ENDED:
        return segment  # M4: the end word is loaded whole
    segment.close()
    return None


def attach(
    name: str,
    consumer: str,
    timeout: float | None = 10.0,
    *,
    expect: Mapping[str, str] | None = None,
    resume: bool = True,
    release: Literal["read", "commit"] = "read",
    wait: WaitStrategy = DEFAULT_WAIT,
) -> Reader:
    """Attach to ring ``name`` as ``consumer``, waiting up to ``timeout`` seconds (None: forever)
    for the ring to appear.

    A new consumer name starts at the oldest record still in the ring; a name that committed
    before resumes after its last commit (``resume=False`` starts afresh). ``expect`` names
    columns and dtypes the caller needs; a ring without them raises :class:`SchemaMismatch`.
    """
    require_x86_64()
    path = _shm.segment_path(name)
    deadline = None if timeout is None else time.monotonic() + timeout
    attempt = 0
    while (segment := _open_live(path)) is None:
        if deadline is not None and time.monotonic() >= deadline:
            raise RingNotFound(
                f"no ring {name!r} appeared in {_shm.SHM_DIR} within {timeout}s: "
                "is the engine running with the same --ring name?"
            )
        time.sleep(min(0.05, 0.001 * (1 << min(attempt, 6))))
        attempt += 1
    schema = segment.schema
    for col, dt in (expect or {}).items():
        if schema.get(col) != dt:
            segment.close()
            raise SchemaMismatch(
                f"ring {name!r} has column {col!r} as {schema.get(col, 'missing')}, "
                f"expected {dt}"
            )
    return Reader(name, segment, consumer, resume=resume, release=release, wait=wait)
