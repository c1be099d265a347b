"""A consumer that resumes: the reading every durable consumer of a sequenced stream needs.

A writer stamps each record with a gapless increasing sequence number (the ``seq`` column) and
the ring's header ``tag`` with the identity of its stream. A writer that restarts re-publishes
the records its predecessor left in the ring under their old numbers, and a consumer restarted
under the same name is handed again what it read but had not committed. So a consumer that
must see every record once keeps a *watermark*, the last sequence number it kept, drops what is
at or below it, and carries it across rings of the same stream. :class:`ResumingConsumer` does
that, and the rest around it: waiting for the ring, resuming from the last commit, attaching
again when the ring is replaced, and committing only positions of the ring they came from.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import pyarrow as pa

# The ring's public API, and nothing else of the package.
from ._errors import Overrun, RingNotFound, RingReset, SchemaMismatch
from ._reader import Reader, attach

_log = logging.getLogger("ringbuffer.consumer")


class CommitToken(NamedTuple):
    """The ring position after a delivery, in the attach (``epoch``) it belongs to."""

    epoch: int
    position: int


@dataclass(frozen=True, slots=True)
class Gap:
    """Sequence numbers the stream skipped: ``count`` of them from ``first_missing``, just
    before the delivered record at index ``at`` (0: before the whole batch)."""

    first_missing: int
    count: int
    at: int = 0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One read: the records kept, and what the caller needs to account for them."""

    batch: pa.RecordBatch
    """The records above the watermark, in ring order (a view of the ring's memory when none
    was dropped: valid until the next read, or until the commit with ``release="commit"``)."""
    token: CommitToken
    """Commit it (:meth:`ResumingConsumer.commit`) once what ``batch`` fed is durable."""
    records: int
    """Records read, before the duplicates were dropped."""
    duplicates: int
    """Records dropped because their sequence number was at or below the watermark."""
    gap: Gap | None
    """The first place where a sequence number is skipped: before the first record kept (it
    is not the one after the watermark), or between two records of the batch."""
    last_seq: int | None
    """The watermark after this batch: the last sequence number kept so far."""
    tag: int
    """The stream (ring header ``tag``) the records belong to."""


class ConsumerEvents:
    """What a :class:`ResumingConsumer` tells its owner, on the thread that calls it.

    The methods log through ``logging.getLogger("ringbuffer.consumer")`` (key=value fields in
    ``extra={"fields": ...}``, as the ring's other loggers). Override them to log elsewhere,
    or to act: :meth:`reattaching` runs while the old ring is still mapped, so a caller whose
    threads still read its batches finishes that work there.
    """

    def waiting(self, consumer: ResumingConsumer) -> None:
        """The ring does not exist (yet); the consumer polls for it."""
        _log.info("waiting for the ring", extra={"fields": {"ring": consumer.ring}})

    def attached(self, consumer: ResumingConsumer, resume: bool) -> None:
        """Attached (``consumer.epoch`` counts the attaches, ``consumer.position`` is where
        reading starts, ``consumer.tag`` the ring's stream)."""
        fields = {
            "ring": consumer.ring, "name": consumer.name, "position": consumer.position,
            "tag": consumer.tag, "resume": resume,
        }  # fmt: skip
        _log.info("attached", extra={"fields": fields})

    def reattaching(self, consumer: ResumingConsumer, cause: RingReset | None) -> None:
        """The ring was replaced: ``cause`` is None when a new writer created it again after
        the end of the stream, else the :class:`RingReset` saying how it went away before its
        end. The old ring is closed when this returns, and the consumer attaches to the new
        one."""
        fields = {"ring": consumer.ring, "why": "ended" if cause is None else str(cause)}
        _log.warning("the ring was recreated; attaching to the new one", extra={"fields": fields})

    def new_stream(self, consumer: ResumingConsumer, old_tag: int) -> None:
        """The ring attached to carries another stream (``consumer.tag`` is not ``old_tag``):
        the watermark was forgotten, so all its records are delivered."""
        fields = {"ring": consumer.ring, "old_tag": old_tag, "new_tag": consumer.tag}
        _log.warning(
            "the new ring carries another stream; delivering all its records",
            extra={"fields": fields},
        )


_DEFAULT_EVENTS = ConsumerEvents()


def _never() -> bool:
    return False


class ResumingConsumer:
    """Reads ring ``ring`` as consumer ``name``, each record of the stream once, across ring
    replacements and restarts.

    - **Attach**: waits for the ring (polling every ``attach_poll`` seconds until it appears or
      ``stop()`` is true) and resumes from the name's last commit (``resume=False``: from the
      oldest record still in the ring). :meth:`read` attaches when needed; call :meth:`attach`
      first to learn the ring's ``tag`` and ``capacity`` before reading.
    - **Deduplicate**: records whose ``seq`` column is at or below :attr:`watermark` are
      dropped and counted; the first kept record past ``watermark + 1`` is reported as a
      :class:`Gap` (the caller decides what it means). Start from ``watermark`` and ``tag``
      restored from the caller's own durable state, or set :attr:`watermark` after attaching.
    - **Re-attach**: when the ring is reset (:class:`RingReset`) or, after the end of the
      stream, created again by a new writer, the consumer closes it and attaches to the new
      one under the same name; a ring of another ``tag`` (another stream) forgets the
      watermark. :class:`Overrun` (records lost before they were read) propagates.
    - **Commit**: with ``release="commit"`` the records stay in the ring until the caller
      commits the :class:`CommitToken` of a delivery whose output it made durable; a token of
      an earlier attach is ignored, so a position of an old ring never lands in a new one.
      With ``release="read"`` a read releases the previous batch, and committing only sets
      where the next attach under this name resumes.

    ``events`` hears about waits and (re-)attaches (:class:`ConsumerEvents`); ``sleep`` is the
    pause between polls of an ended ring (one that returns early on a stop is best). Use the
    consumer from one thread; a batch may be handed to others until it is released.

    >>> import os, numpy as np, ringbuffer
    >>> ring = f"doc-resume-{os.getpid()}"
    >>> w = ringbuffer.create(ring, {"seq": "uint64"}, capacity=16)
    >>> c = ringbuffer.ResumingConsumer(ring, "relay", watermark=1)  # seq 0 and 1 are done
    >>> w.publish({"seq": np.arange(4, dtype="uint64")})
    4
    >>> got = c.read(timeout=1.0)
    >>> got.batch.column("seq").to_pylist(), got.records, got.duplicates, got.gap
    ([2, 3], 4, 2, None)
    >>> w.publish({"seq": np.array([6, 7], dtype="uint64")})  # 4 and 5 never come
    6
    >>> got = c.read(timeout=1.0)
    >>> got.gap, got.last_seq
    (Gap(first_missing=4, count=2, at=0), 7)
    >>> c.commit(got.token)  # a later attach as "relay" resumes after seq 7
    True
    >>> c.close(); w.close()
    """

    def __init__(
        self,
        ring: str,
        name: str,
        *,
        seq: str = "seq",
        release: Literal["read", "commit"] = "read",
        resume: bool = True,
        watermark: int | None = None,
        tag: int | None = None,
        expect: Mapping[str, str] | None = None,
        stop: Callable[[], bool] = _never,
        sleep: Callable[[float], object] = time.sleep,
        events: ConsumerEvents | None = None,
        attach_poll: float = 0.25,
        idle_after_end: float = 0.1,
    ) -> None:
        self.ring = ring
        self.name = name
        self.seq = seq
        self.release: Literal["read", "commit"] = release
        self.expect = expect
        self.events = events if events is not None else _DEFAULT_EVENTS
        self.attach_poll = attach_poll
        self.idle_after_end = idle_after_end
        self.epoch = 0  #: attaches so far; a :class:`CommitToken` belongs to one of them
        self.duplicates = 0  #: records dropped as duplicates, over all reads
        self._resume = resume  # for the first attach; later ones always resume
        self.watermark = watermark  #: the last sequence number kept (None: nothing is dropped)
        self._tag = tag
        self._stop = stop
        self._sleep = sleep
        self._reader: Reader | None = None
        self._found_nothing = False  # the last read returned nothing: look for a new ring
        self._closed = False

    # -- state -----------------------------------------------------------------------------

    @property
    def reader(self) -> Reader | None:
        """The :class:`Reader` of the current attach (None before it, or after a stop)."""
        return self._reader

    @property
    def attached(self) -> bool:
        return self._reader is not None

    @property
    def tag(self) -> int | None:
        """The stream the watermark belongs to: the tag of the ring attached to (or given)."""
        return self._tag

    @property
    def position(self) -> int:
        """The ring position after the last record read (0 when not attached)."""
        return self._reader.position if self._reader is not None else 0

    @property
    def capacity(self) -> int:
        """Records the current ring holds (0 when not attached)."""
        return self._reader.capacity if self._reader is not None else 0

    @property
    def ended(self) -> bool:
        """True once the current ring's stream ended and all of it was read."""
        return self._reader is not None and self._reader.ended

    def lag(self) -> int:
        """Records published to the current ring but not read yet (0 when not attached)."""
        return self._reader.lag() if self._reader is not None else 0

    # -- attaching -------------------------------------------------------------------------

    def attach(self) -> bool:
        """Attach unless attached, waiting for the ring; False if ``stop()`` ended the wait."""
        if self._closed:
            raise ValueError(f"consumer {self.name!r} of ring {self.ring!r} is closed")
        if self._reader is not None:
            return True
        resume, self._resume = self._resume, True
        return self._attach(resume)

    def _attach(self, resume: bool) -> bool:
        waiting = False
        while not self._stop():
            try:
                reader = attach(
                    self.ring, self.name, timeout=self.attach_poll, expect=self.expect,
                    resume=resume, release=self.release,
                )  # fmt: skip
            except RingNotFound:
                if not waiting:
                    self.events.waiting(self)
                    waiting = True
                continue
            self._reader = reader
            self._found_nothing = False
            self.epoch += 1
            old_tag, self._tag = self._tag, reader.tag
            self.events.attached(self, resume)
            if old_tag is not None and old_tag != reader.tag:
                self.watermark = None
                self.events.new_stream(self, old_tag)
            return True
        return False

    def _reattach(self, cause: RingReset | None) -> None:
        assert self._reader is not None
        self.events.reattaching(self, cause)
        self._reader.close()
        self._reader = None
        self._attach(resume=True)

    # -- reading ---------------------------------------------------------------------------

    def read(self, max_records: int = 65536, timeout: float | None = 1.0) -> Delivery | None:
        """The next batch of up to ``max_records``, its duplicates dropped; None when nothing
        came within ``timeout`` seconds, at the end of the stream (see :attr:`ended`), after
        attaching to a new ring, or when ``stop()`` ended a wait for the ring.

        After a read that returned nothing the next one first checks whether the ring was
        replaced (after the end of the stream, pausing ``idle_after_end`` seconds first: an
        ended ring has nothing to wait on).
        """
        if self._reader is None and not self.attach():
            return None
        reader = self._reader
        assert reader is not None
        if self._found_nothing:
            self._found_nothing = False
            if reader.ended:
                self._sleep(self.idle_after_end)
            if reader.replaced():
                gone = None if reader.ended else RingReset(
                    f"ring {self.ring!r} was replaced before the end of its stream"
                )
                self._reattach(gone)
                return None
        try:
            batch = reader.read(max_records=max_records, timeout=timeout)
        except RingReset as exc:
            self._reattach(exc)
            return None
        if batch is None:
            self._found_nothing = True
            return None
        return self._deliver(reader, batch)

    def _deliver(self, reader: Reader, batch: pa.RecordBatch) -> Delivery:
        """Drop the records at or below the watermark (per batch: no per-record Python)."""
        n = batch.num_rows
        try:
            column = batch.column(self.seq)
        except KeyError:
            raise SchemaMismatch(
                f"ring {self.ring!r} has no sequence column {self.seq!r}: pass seq= the name "
                "of the column the writer numbers its records in"
            ) from None
        seq = column.to_numpy()
        watermark = self.watermark
        dropped = 0
        if watermark is not None:
            keep = seq > watermark
            kept = int(np.count_nonzero(keep))
            if kept < n:
                dropped = n - kept
                batch = batch.filter(pa.array(keep))
                seq = seq[keep]
        gap = None
        if len(seq):
            first = int(seq[0])
            if watermark is not None and first > watermark + 1:
                gap = Gap(watermark + 1, first - watermark - 1)
            elif len(seq) > 1:  # a break inside the batch (or records out of order: count 0)
                jumps = np.flatnonzero(np.diff(seq.astype(np.int64)) != 1)
                if len(jumps):
                    j = int(jumps[0])
                    count = max(int(seq[j + 1]) - int(seq[j]) - 1, 0)
                    gap = Gap(int(seq[j]) + 1, count, j + 1)
            self.watermark = int(seq.max())
        self.duplicates += dropped
        assert self._tag is not None
        token = CommitToken(self.epoch, reader.position)
        return Delivery(batch, token, n, dropped, gap, self.watermark, self._tag)

    # -- committing ------------------------------------------------------------------------

    def commit(self, token: CommitToken) -> bool:
        """Commit the ring position of ``token``: the records before it are done, and a later
        attach under this name resumes there (with ``release="commit"`` the writer may now
        reuse their memory). False, doing nothing, when ``token`` belongs to an earlier attach.

        A ring that was replaced or a slot that was lost meanwhile raises nothing here: the
        next :meth:`read` reports it.
        """
        reader = self._reader
        if reader is None or token.epoch != self.epoch:
            return False
        with contextlib.suppress(RingReset, Overrun):
            reader.commit(token.position)
        return True

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Detach (the name's last commit stays for a later attach) and unmap the ring."""
        self._closed = True
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> ResumingConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
