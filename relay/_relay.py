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
  entry over all groups) are trimmed (XTRIM MINID); nothing a group still needs is trimmed.
  The relay trims every half second, and after each ``--max-lag`` records appended: the stream
  holds at most about twice ``--max-lag`` records and a batch. A new group starts at the
  oldest entry still in the stream.
- **The end travels**: when the engine ends the stream, the relay appends an end entry; remote
  processors with ``--exit-at-end`` stop there. With ``--exit-at-end`` the relay exits then too.
"""

from __future__ import annotations

import bisect
import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

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
        self._since_trim = 0  # records appended since the last trim
        self._heads = Heads()  # the entries this run appended: no payload fetched to measure lag

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
                    self._since_trim += got.batch.num_rows
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
        """XADD ``fields``; after a lost connection, first look whether the lost XADD was done
        (the stream's last entry is this one): an entry is not appended twice."""
        unsure = False

        def lost() -> None:
            nonlocal unsure
            unsure = True

        def add() -> Any:
            if unsure:
                got: Any = self.r.xrevrange(self.stream, count=1)
                if got and _same(got[0][1], fields):
                    return got[0][0]
            return self.r.xadd(self.stream, fields)  # type: ignore[arg-type]

        entry_id = retry(add, self.log, "XADD", lambda: self.stop.requested, lost=lost)
        first = fields.get(b"first_seq")
        self._heads.add(Head(entry_id, int(first) if first is not None else 0, first is None))
        if not self.entries:
            self.log.info("first entry appended", stream=self.stream,
                          first_seq=fields.get(b"first_seq", b"-").decode())  # fmt: skip
        self.entries += 1

    # -- backpressure and trimming ---------------------------------------------------------

    def _first_unacked(self) -> list[tuple[str, Head | None]]:
        """For each group: the first entry it has not acknowledged (None: it is up to date)."""
        out: list[tuple[str, Head | None]] = []
        for group in self._call("XINFO GROUPS", self._groups):
            name = group["name"].decode() if isinstance(group["name"], bytes) else group["name"]
            first = functools.partial(self._first_of, group, name)
            head = self._call("first unacknowledged", first)
            out.append((name, head))
        return out

    def _groups(self) -> list[dict[str, Any]]:
        """The stream's consumer groups; none while the stream does not exist yet."""
        try:
            groups: list[dict[str, Any]] = self.r.xinfo_groups(self.stream)
        except redis.ResponseError as e:
            if "no such key" in str(e).lower():
                return []
            raise
        return groups

    def _first_of(self, group: dict[str, Any], name: str) -> Head | None:
        if group["pending"]:
            first_id = self.r.xpending(self.stream, name)["min"]
            if first_id is not None:  # (None: acknowledged since XINFO looked)
                return self._heads.at(first_id) or _head(
                    self.r.xrange(self.stream, first_id, first_id)
                )
        after = group["last-delivered-id"]
        known, head = self._heads.after(after)
        if known:
            return head
        after = after.decode() if isinstance(after, bytes) else after
        return _head(self.r.xrange(self.stream, f"({after}", "+", count=1))

    def behind(self) -> int:
        """Records the slowest group is behind the stream's end (all, when no group exists)."""
        if self.last_seq is None:
            return 0
        firsts = self._first_unacked()
        if not firsts:
            oldest = self._call("XRANGE", lambda: self.r.xrange(self.stream, count=1))
            firsts = [("", _head(oldest))]
        lags = [self.last_seq - h.first + 1 for _, h in firsts if h is not None and not h.end]
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
        if now - self._trimmed_at < TRIM_EVERY and self._since_trim < self.max_lag:
            return
        self._trimmed_at = now
        self._since_trim = 0
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
            self._heads.trim(oldest)


class Head(NamedTuple):
    """What the lag and the trimming need of an entry: its id, first seq, and if it is the end."""

    id: bytes
    first: int
    end: bool


def _head(got: Any) -> Head | None:
    """The first entry of an XRANGE reply, or None."""
    if not got:
        return None
    e = decode(*got[0])
    return Head(e.id, e.first, e.end)


class Heads:
    """The entries appended by this run, in stream order (ids increase), down to the last trim.

    >>> h = Heads()
    >>> for i, first in ((b"5-0", 0), (b"7-0", 100), (b"7-1", 200)):
    ...     h.add(Head(i, first, False))
    >>> h.at(b"7-0").first, h.at(b"9-0")
    (100, None)
    >>> h.after(b"5-0"), h.after(b"7-1"), h.after(b"4-0")
    ((True, Head(id=b'7-0', first=100, end=False)), (True, None), (False, None))
    >>> h.trim(b"7-0"); h.after(b"5-0")
    (False, None)
    """

    def __init__(self) -> None:
        self._keys: list[tuple[int, int]] = []
        self._heads: list[Head] = []

    def add(self, head: Head) -> None:
        self._keys.append(_id_key(head.id))
        self._heads.append(head)

    def at(self, entry_id: bytes | str) -> Head | None:
        key = _id_key(entry_id)
        i = bisect.bisect_left(self._keys, key)
        return self._heads[i] if i < len(self._keys) and self._keys[i] == key else None

    def after(self, entry_id: bytes | str) -> tuple[bool, Head | None]:
        """(known, the first entry after ``entry_id``): known only when ``entry_id`` is one of
        these entries (an older id may be followed by entries of an earlier run)."""
        key = _id_key(entry_id)
        i = bisect.bisect_left(self._keys, key)
        if i == len(self._keys) or self._keys[i] != key:
            return False, None
        return True, self._heads[i + 1] if i + 1 < len(self._heads) else None

    def trim(self, min_id: bytes | str) -> None:
        """Forget the entries below ``min_id`` (trimmed)."""
        i = bisect.bisect_left(self._keys, _id_key(min_id))
        del self._keys[:i], self._heads[:i]


def _same(a: dict[Any, Any], b: dict[bytes, bytes]) -> bool:
    """The same entry (tag, seqs, end; the batch follows from them)."""
    keys = (b"fmt", b"tag", b"first_seq", b"last_seq", b"end")
    return all(a.get(k) == b.get(k) for k in keys)


def _id_key(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, n = text.partition("-")
    return int(ms), int(n or 0)
