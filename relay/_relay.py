"""The relay: a consumer of the ring that appends its batches to a Redis stream.

- **One entry a batch** (:mod:`relay._entries`): Arrow IPC with the batch's first and last
  ``seq``; Redis does one round trip per few thousand records.
- **Resume without repeats**: the relay reads the ring as consumer ``--name`` with
  ``release="commit"`` and commits a batch only after its XADD returned; after a crash it
  resumes from that commit, and at start it sets its watermark to the last ``seq`` the stream
  already holds (same engine stream), so what was appended but not committed is not appended
  twice.
- **Backpressure**: before each read of the ring the relay measures how far the slowest
  consumer group is behind, in records: from the first entry it has not acknowledged to the
  last entry appended (with no group yet, everything in the stream). While that exceeds
  ``--max-lag`` the relay does not read, so the ring fills and the engine waits, as with a slow
  local consumer. Memory stays bounded in the ring, the relay and Redis.
- **Trimming**: entries every group has acknowledged (before the oldest first-unacknowledged
  entry over all groups) are trimmed (XTRIM MINID); nothing a group still needs is trimmed. A
  new group starts at the oldest entry still in the stream.
- **The end travels**: when the engine ends the stream, the relay appends an end entry; remote
  processors with ``--exit-at-end`` stop there. With ``--exit-at-end`` the relay exits then too.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import redis

import ringbuffer
from common.cli import StopFlag
from common.log import Logger
from relay._entries import Entry, decode, encode, end_marker
from relay._redis import Gone, retry

READ_MAX = 65536
LAG_POLL = 0.02  # seconds between looks at the groups while the slowest is too far behind
TRIM_EVERY = 0.5  # seconds between trims


class Relay:
    def __init__(
        self, client: redis.Redis, stream: str, consumer: ringbuffer.ResumingConsumer,
        *, max_lag: int, exit_at_end: bool, stop: StopFlag, log: Logger,
    ) -> None:  # fmt: skip
        self.r = client
        self.stream = stream
        self.ring = consumer
        self.max_lag = max_lag
        self.exit_at_end = exit_at_end
        self.stop = stop
        self.log = log
        self.last_seq: int | None = None  # the last seq in the stream
        self.end_written = False
        self.entries = self.records = 0
        self._trimmed_at = 0.0

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        return retry(call, self.log, what, lambda: self.stop.requested)

    def _last_entry(self) -> Entry | None:
        got = self._call("XREVRANGE", lambda: self.r.xrevrange(self.stream, count=1))
        return decode(*got[0]) if got else None

    def start(self) -> None:
        """Take up where the stream is (see the module's notes on resuming)."""
        last = self._last_entry()
        if last is not None and last.tag == self.ring.tag:
            self.last_seq = last.last
            self.ring.watermark = last.last if last.last >= 0 else None
            self.end_written = last.end
            self.log.info("resuming the stream", stream=self.stream, last_seq=last.last,
                          ended=last.end)  # fmt: skip

    def run(self) -> int:
        try:
            self.start()
            while not self.stop.requested:
                self._wait_for_room()
                got = self.ring.read(max_records=READ_MAX, timeout=0.1)
                if got is None:
                    if self.ring.ended and not self.end_written:
                        self._append(end_marker(tag=self._tag(), last=self.last_seq))
                        self.end_written = True
                        self.log.info("the engine ended the stream; end entry appended",
                                      last_seq=self.last_seq)  # fmt: skip
                    if self.ring.ended and self.exit_at_end:
                        break
                    self._trim()
                    continue
                if got.gap is not None:
                    gap = got.gap
                    self.log.error("the ring skipped records; relayed as they came (the "
                                   "processors will see the gap)", first_missing=gap.first_missing,
                                   count=gap.count)  # fmt: skip
                if got.batch.num_rows:
                    self._append(encode(got.batch, tag=got.tag))
                    self.last_seq = got.last_seq
                    self.end_written = False
                    self.records += got.batch.num_rows
                self.ring.commit(got.token)
                self._trim()
        except Gone:
            pass
        self.log.info("stopping", entries=self.entries, records=self.records,
                      signal=self.stop.signum)  # fmt: skip
        return 0

    def _tag(self) -> int:
        tag = self.ring.tag
        assert tag is not None
        return tag

    def _append(self, fields: dict[bytes, bytes]) -> None:
        self._call("XADD", lambda: self.r.xadd(self.stream, fields))  # type: ignore[arg-type]
        if not self.entries:
            self.log.info("first entry appended", stream=self.stream,
                          first_seq=fields.get(b"first_seq", b"-").decode())  # fmt: skip
        self.entries += 1

    # -- backpressure and trimming ---------------------------------------------------------

    def _first_unacked(self) -> list[tuple[str, Entry | None]]:
        """For each group: the first entry it has not acknowledged (None: it is up to date)."""
        out: list[tuple[str, Entry | None]] = []
        for group in self._call("XINFO GROUPS", lambda: self.r.xinfo_groups(self.stream)):
            name = group["name"].decode() if isinstance(group["name"], bytes) else group["name"]
            got = self._call("first unacknowledged", functools.partial(self._first_of, group, name))
            out.append((name, decode(*got[0]) if got else None))
        return out

    def _first_of(self, group: dict[str, Any], name: str) -> Any:
        if group["pending"]:
            first_id = self.r.xpending(self.stream, name)["min"]
            if first_id is not None:  # (None: acknowledged since XINFO looked)
                return self.r.xrange(self.stream, first_id, first_id)
        after = group["last-delivered-id"]
        after = after.decode() if isinstance(after, bytes) else after
        return self.r.xrange(self.stream, f"({after}", "+", count=1)

    def behind(self) -> int:
        """Records the slowest group is behind the stream's end (all, when no group exists)."""
        if self.last_seq is None:
            return 0
        firsts = self._first_unacked()
        if not firsts:
            oldest = self._call("XRANGE", lambda: self.r.xrange(self.stream, count=1))
            firsts = [("", decode(*oldest[0]) if oldest else None)]
        lags = [self.last_seq - e.first + 1 for _, e in firsts if e is not None and not e.end]
        return max(lags, default=0)

    def _wait_for_room(self) -> None:
        waited = False
        while not self.stop.requested and self.behind() > self.max_lag:
            if not waited:
                self.log.info("holding: the slowest consumer group is behind", max_lag=self.max_lag)
                waited = True
            self.stop.sleep(LAG_POLL)
            self._trim()

    def _trim(self) -> None:
        now = time.monotonic()
        if now - self._trimmed_at < TRIM_EVERY:
            return
        self._trimmed_at = now
        firsts = self._first_unacked()
        if not firsts:
            return  # no group has read anything: every entry is still owed
        if any(e is None for _, e in firsts):
            ids = [e.id for _, e in firsts if e is not None]
            if not ids:  # every group is up to date: keep the last entry only
                last = self._call("XREVRANGE", lambda: self.r.xrevrange(self.stream, count=1))
                ids = [last[0][0]] if last else []
        else:
            ids = [e.id for _, e in firsts if e is not None]
        if ids:
            oldest = min(ids, key=_id_key)
            self._call("XTRIM", lambda: self.r.xtrim(self.stream, minid=oldest, approximate=False))


def _id_key(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, n = text.partition("-")
    return int(ms), int(n or 0)
