"""The processor's source on another machine: the relay's Redis stream, read as the ring is.

:class:`StreamConsumer` offers what the processor uses of ``ringbuffer.ResumingConsumer``
(``attach``, ``read``, ``commit``, ``watermark``, ``tag``, ``ended``...), so the processor's
loop, rules, writer and state file are the same for both sources.

- **Group**: the consumer group is the processor's ``--name`` (created at the oldest entry
  still in the stream when new), the consumer inside it the same name. At start it first reads
  its own pending entries (delivered before a crash, never acknowledged), then new ones.
- **Exactly once**: records at or below the watermark (the processor's ``last_seq``) are
  dropped, as on the ring, so re-delivered entries cost nothing and a gap is reported.
- **Acknowledge when durable**: :meth:`commit` XACKs the entries a token covers; the processor
  commits a token only once the lines of its records are on disk. The end-of-stream entry is
  acknowledged with the last data entry before it, so a processor that dies before its last
  lines are durable gets it again.
- **The end**: the relay's end entry sets :attr:`ended` (``--exit-at-end`` stops there);
  reading goes on, and entries after it (another engine stream) clear it again.
- **Connection lost** while running: logged, retried with backoff; a stop request ends the wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import redis

from common.log import Logger
from relay._entries import Entry, decode
from relay._redis import Gone, connect, retry
from ringbuffer import CommitToken, Delivery, Gap

READ_COUNT = 64  # entries a read asks for at most (each holds a ring batch) ...
#: ... and fewer when entries are big: about ``max_records`` records a read (bounded memory)


class StreamConsumer:
    """Reads stream ``stream`` as group ``group`` (see the module's notes)."""

    capacity = 1 << 20  # what the writer's cycle is sized on: a stream has no fixed size

    def __init__(
        self,
        url: str,
        stream: str,
        group: str,
        *,
        log: Logger,
        stop: Callable[[], bool],
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.url, self.ring, self.name = url, stream, group
        self.log = log
        self._stop = stop
        self._sleep = sleep
        self.client: redis.Redis = connect(url, "--redis")
        self.watermark: int | None = None
        self.epoch = 1
        self.duplicates = 0
        self.ended = False
        self._tag: int | None = None
        self._position = 0  # entries delivered (a token's position)
        self._unacked: list[tuple[int, bytes]] = []  # (position, entry id), in order
        self._backlog = True  # pending entries (delivered before a restart) come first
        self._backlog_start: bytes | str = "0"
        self._entry_records = 1  # records in the last data entry read (sizes the next read)
        self._more = False  # the last read was full: more entries are probably waiting

    @property
    def tag(self) -> int | None:
        return self._tag

    @property
    def position(self) -> int:
        return self._position

    @property
    def attached(self) -> bool:
        return self._tag is not None

    def lag(self) -> int:
        """Not known exactly: 1 when the last read came back full (more is waiting), else 0."""
        return int(self._more)

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        return retry(call, self.log, what, self._stop)

    def attach(self) -> bool:
        """Create the group if needed; wait for the stream's first entry (its stream tag).
        False if a stop came first."""
        try:
            self._call("XGROUP CREATE", self._create_group)
            waited = False
            while True:
                first = self._call("XRANGE", lambda: self.client.xrange(self.ring, count=1))
                if first:
                    self._tag = decode(*first[0]).tag
                    break
                if not waited:
                    self.log.info("waiting for the stream", stream=self.ring, redis=self.url)
                    waited = True
                if self._stop():
                    return False
                self._sleep(0.01)
        except Gone:
            return False
        self.log.info("attached", stream=self.ring, group=self.name, tag=self._tag)
        return True

    def _create_group(self) -> None:
        try:
            self.client.xgroup_create(self.ring, self.name, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def read(self, max_records: int = 65536, timeout: float | None = 1.0) -> Delivery | None:
        """The next records above the watermark, or None (nothing yet, or the end)."""
        if self.ended and self._stop():
            return None
        count = max(1, min(READ_COUNT, max_records // max(1, self._entry_records)))

        def fetch() -> Any:
            start = self._backlog_start if self._backlog else ">"
            block = None if self._backlog else max(1, int((timeout or 0) * 1000))
            return self.client.xreadgroup(
                self.name, self.name, {self.ring: start}, count=count, block=block
            )

        try:
            reply = retry(fetch, self.log, "XREADGROUP", self._stop, lost=self._rewind)
        except Gone:
            return None
        entries = reply[0][1] if reply else []
        self._more = len(entries) == count
        if self._backlog and not entries:
            self._backlog = False  # every pending entry was delivered again
            return None
        if self._backlog:  # the next backlog read starts after these
            self._backlog_after(entries, count)
        data: list[Entry] = []
        for entry_id, fields in entries:
            entry = decode(entry_id, fields)
            if entry.tag != self._tag:
                self.log.warning("the stream carries another engine stream; delivering all "
                                 "its records", old_tag=self._tag, new_tag=entry.tag)  # fmt: skip
                self._tag, self.watermark = entry.tag, None
            if entry.end:
                self.ended = True
                self._unacked.append((self._position, entry.id))  # acked with the last data
                continue
            self.ended = False  # entries after an end: the engine started another stream
            self._position += 1
            self._unacked.append((self._position, entry.id))
            self._entry_records = entry.last - entry.first + 1
            data.append(entry)
        if not data:
            return None
        return self._deliver(data)

    def _rewind(self) -> None:
        """The connection went during a read: its reply (entries now pending for this group)
        may be lost, so the next read starts again from this consumer's pending entries; what
        was delivered already is dropped by the watermark."""
        self._backlog, self._backlog_start = True, "0"

    def _backlog_after(self, entries: list[Any], count: int) -> None:
        """Pending entries are read by id, from 0 on: the next read of them starts after the
        last one read; a short read was the last of them."""
        self._backlog = len(entries) == count
        self._backlog_start = entries[-1][0]

    def _deliver(self, data: list[Entry]) -> Delivery:
        """Drop the records at or below the watermark, entry by entry (an entry appended twice,
        by an XADD retried after a lost reply, is dropped whole), then look for a gap as the
        ring's consumer does."""
        watermark = start = self.watermark
        records = duplicates = 0
        batches: list[pa.RecordBatch] = []
        seqs: list[np.ndarray] = []
        for entry in data:
            batch = entry.batch
            assert batch is not None
            seq = batch.column("seq").to_numpy(zero_copy_only=False).astype(np.int64)
            records += len(seq)
            if watermark is not None:
                keep = seq > watermark
                kept = int(np.count_nonzero(keep))
                if kept < len(seq):
                    duplicates += len(seq) - kept
                    batch, seq = batch.filter(pa.array(keep)), seq[keep]
            if len(seq):
                batches.append(batch)
                seqs.append(seq)
                watermark = int(seq.max())
        self.duplicates += duplicates
        if not batches:
            batch, seq = data[0].batch.slice(0, 0), np.zeros(0, np.int64)  # type: ignore[union-attr]
        elif len(batches) == 1:
            batch, seq = batches[0], seqs[0]
        else:
            batch, seq = pa.concat_batches(batches), np.concatenate(seqs)
        gap = None
        if len(seq):
            first = int(seq[0])
            if start is not None and first > start + 1:
                gap = Gap(start + 1, first - start - 1, 0)
            elif len(seq) > 1:  # a break inside (or records out of order: count 0)
                jumps = np.flatnonzero(np.diff(seq) != 1)
                if len(jumps):
                    j = int(jumps[0])
                    gap = Gap(int(seq[j]) + 1, max(int(seq[j + 1]) - int(seq[j]) - 1, 0), j + 1)
        self.watermark = watermark
        assert self._tag is not None
        return Delivery(
            batch=batch, token=CommitToken(self.epoch, self._position), records=records,
            duplicates=duplicates, gap=gap, last_seq=self.watermark, tag=self._tag,
        )  # fmt: skip

    def commit(self, token: CommitToken) -> bool:
        """Acknowledge every entry up to ``token`` (its records' lines are durable)."""
        ids = [entry_id for position, entry_id in self._unacked if position <= token.position]
        if not ids:
            return True
        try:
            self._call("XACK", lambda: self.client.xack(self.ring, self.name, *ids))
        except Gone:
            return False
        self._unacked = [(p, i) for p, i in self._unacked if p > token.position]
        return True

    def close(self) -> None:
        self.client.close()
