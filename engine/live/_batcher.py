"""The live source's rules, without I/O: batching, the bounded queue, the idle rule.

:class:`Batcher` is driven by explicit inputs (a connection opened, a frame's parsed records and
rejects arrived, the connection ended, a batch was taken) and a clock value ``now`` passed in
(seconds, any monotonic origin); it answers what is due: a batch to hand over, whether the
reader must stop reading, whether the connection is idle-dead, and when to look again. It has
no asyncio, sockets or threads, so tests drive it with a fake clock (as websockets tests its
protocol object); ``engine.live._connection`` and ``engine.live._bridge`` do the I/O around it.

The rules:

- **Batching.** Records and rejects of consecutive frames gather in the *open batch*; rejects
  count toward its size like records. The batch is due when it holds ``batch_records``
  (:meth:`add` returns True: hand it over before reading on), ``batch_interval`` seconds after
  its first record arrived, and at once when its connection ends (:meth:`disconnected`).
  :meth:`flush` moves it to the queue as one table (``TABLE_SCHEMA``, one chunk a column) and
  the rejects of the same frames.
- **The bounded queue.** At most ``max_pending`` batches wait to be taken. :meth:`flush`
  refuses while the queue is full, and the batch stays open. A batch due by its interval keeps
  filling meanwhile; a batch due by its size or by the end of its connection makes the reader
  stop reading (:attr:`stop_reading`) until there is room, so that memory stays bounded and
  the server is held by flow control; nothing is dropped. ``flush(force=True)`` (on stop)
  ignores the bound: the queue then holds one batch more.
- **Idle.** A connection that delivers no frame for ``idle_timeout`` seconds while the reader
  is waiting for one is idle-dead (:meth:`idle`); time spent not reading because the queue is
  full does not count. ``idle_timeout <= 0`` turns the rule off.

Threads: :meth:`take` and :attr:`pending` may be called from one other thread while the rest
is being called (the queue is a ``collections.deque``, whose ``append`` and ``popleft`` are
atomic; one thread appends, the other takes); every other call comes from one thread at a
time. Waiting for a batch or for room is the caller's business (``engine.live._bridge``).

>>> b = Batcher(batch_records=3, batch_interval=0.5, max_pending=1, idle_timeout=10.0)
>>> b.connected(now=0.0)
>>> b.add(None, [Rejected("ws://x", 1, "bad", "")], now=1.0)
False
>>> b.due(now=1.2), b.due(now=1.5)
(False, True)
>>> b.flush(now=1.5), b.pending
(True, 1)
>>> b.take()[1][0].reason
'bad'
"""

from __future__ import annotations

import collections

import numpy as np
import pyarrow as pa

from engine.live_parse import quotes_table
from engine.rejects import Rejected

#: What the engine polls: the records of some frames (None when they were all rejected) and the
#: rejects of the same frames, in arrival order.
Batch = tuple[pa.Table | None, list[Rejected]]


class Batcher:
    """Batches, the bounded queue of pending batches, and the idle rule (module docstring)."""

    def __init__(
        self,
        *,
        batch_records: int = 4096,
        batch_interval: float = 0.005,
        max_pending: int = 64,
        idle_timeout: float = 10.0,
    ) -> None:
        """Raises ValueError for a setting out of range (``idle_timeout`` may be anything:
        ``<= 0`` turns idle detection off)."""
        if batch_records < 1 or max_pending < 1:
            raise ValueError("batch_records and max_pending must be at least 1")
        if not batch_interval > 0:
            raise ValueError("batch_interval must be > 0")
        self.batch_records = batch_records
        self.batch_interval = batch_interval
        self.max_pending = max_pending
        self.idle_timeout = idle_timeout
        self._queue: collections.deque[Batch] = collections.deque()
        # The open batch: its tables and rejects, their count, when its first item arrived,
        # and whether its connection ended.
        self._tables: list[pa.Table] = []
        # Rows not made into a table yet (venue adapters): the rows, and per frame its number,
        # receive time and row count; sealed into one table in order (:meth:`_seal`).
        self._rows: list[tuple] = []
        self._row_frames: list[tuple[int, int, int]] = []
        self._rejects: list[Rejected] = []
        self._size = 0
        self._t0 = 0.0
        self._ended = False
        # When the reader last received a frame, or last resumed reading after a full queue.
        self._last_rx = 0.0

    # --- inputs -------------------------------------------------------------------------------

    def connected(self, now: float) -> None:
        """A connection opened at ``now``: the idle clock starts."""
        self._last_rx = now
        self._ended = False

    def add(self, table: pa.Table | None, rejected: list[Rejected], now: float) -> bool:
        """A frame's parsed records (``table``, None for none) and rejects arrived at ``now``.

        Returns True when the open batch reached ``batch_records``: the reader is to hand it
        over (:meth:`flush`) before it reads on, and waits while the queue is full."""
        self._last_rx = now
        if not self._size:
            self._t0 = now
        if table is not None:
            if self._rows:
                self._seal()
            self._tables.append(table)
            self._size += table.num_rows
        if rejected:
            self._rejects.extend(rejected)
            self._size += len(rejected)
        return self._size >= self.batch_records

    def add_rows(
        self, rows: list[tuple], frame_no: int, received_ns: int, rejected: list[Rejected],
        now: float,
    ) -> bool:  # fmt: skip
        """As :meth:`add`, for a frame's quotes as rows ``(ticker, ns, bid, ask, bid_amount,
        ask_amount)`` received as frame ``frame_no`` at ``received_ns``: they become part of
        one table per batch (``engine.live_parse.quotes_table``)."""
        if rows:
            self._rows.extend(rows)
            self._row_frames.append((frame_no, received_ns, len(rows)))
            if not self._size:
                self._t0 = now
            self._size += len(rows)
        return self.add(None, rejected, now)

    def _seal(self) -> None:
        """The pending rows as one table, after the tables before them."""
        frames = np.array(self._row_frames, np.int64)
        counts = frames[:, 2]
        self._tables.append(quotes_table(self._rows, np.repeat(frames[:, 0], counts),
                                         np.repeat(frames[:, 1], counts)))  # fmt: skip
        self._rows, self._row_frames = [], []

    def disconnected(self) -> bool:
        """The connection ended: its records are due at once. Returns True when there is an
        open batch to hand over (the reader waits for room before it connects again)."""
        self._ended = bool(self._size)
        return self._ended

    def flush(self, now: float, *, force: bool = False) -> bool:
        """Move the open batch to the queue when there is room (``force``: even when there is
        none, as on stop). Returns True when no batch is left open.

        Handing over a batch that stopped the reader restarts the idle clock at ``now``: time
        spent waiting for room is not idle time."""
        if not self._size:
            return True
        if not force and len(self._queue) >= self.max_pending:
            return False
        if self.stop_reading:
            self._last_rx = now
        if self._rows:
            self._seal()
        tables, rejected = self._tables, self._rejects
        self._tables, self._rejects, self._size, self._ended = [], [], 0, False
        if not tables:
            table = None
        elif len(tables) == 1:
            table = tables[0]
        else:
            table = pa.concat_tables(tables).combine_chunks()
        self._queue.append((table, rejected))
        return True

    def take(self) -> Batch | None:
        """The oldest pending batch, or None when the queue is empty."""
        return self._queue.popleft() if self._queue else None

    # --- what is due --------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Records and rejects in the open batch."""
        return self._size

    @property
    def pending(self) -> int:
        """Batches waiting to be taken."""
        return len(self._queue)

    @property
    def full(self) -> bool:
        """The queue holds ``max_pending`` batches (or more, after a forced flush)."""
        return len(self._queue) >= self.max_pending

    @property
    def stop_reading(self) -> bool:
        """The open batch must be handed over before the reader reads on: it reached
        ``batch_records`` or its connection ended. Stays True while the queue is full."""
        return self._size >= self.batch_records or self._ended

    def due(self, now: float) -> bool:
        """There is an open batch to hand over at ``now`` (its size, interval or end)."""
        return bool(self._size) and (
            self.stop_reading or now - self._t0 >= self.batch_interval
        )

    def idle(self, now: float) -> bool:
        """The connection is idle-dead at ``now``: no frame for ``idle_timeout`` seconds while
        the reader was reading (not while :attr:`stop_reading`)."""
        return (
            self.idle_timeout > 0
            and not self.stop_reading
            and now - self._last_rx >= self.idle_timeout
        )

    def deadline(self, now: float) -> float | None:
        """When to look again (the earliest of the open batch's interval and the idle timeout),
        or None when only an input can make something due. A batch due while the queue is
        full is looked at again ``batch_interval`` seconds later."""
        times = []
        if self._size:
            due = self._t0 + self.batch_interval
            times.append(due if due > now else now + self.batch_interval)
        if self.idle_timeout > 0 and not self.stop_reading:
            times.append(self._last_rx + self.idle_timeout)
        return min(times) if times else None
