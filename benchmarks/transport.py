"""Transport measurements: the same quote batches from one writer to R reader processes.

Every contender moves the same records (``common.schema.QUOTE_SCHEMA``: 11 columns, 77 bytes a
record, the ticker as uint32 codes into the ring's symbol table) from one writer to ``R``
reader processes, and every reader receives every record (broadcast):

``ring``
    :class:`RingSession`: the writer (this process) publishes numpy batches; each reader
    process ``attach``es under its own consumer name and reads zero-copy Arrow batches.
``queue``
    :class:`QueueSession`: one ``multiprocessing.Queue`` per reader (a Queue hands an item
    to one consumer only); the writer puts every batch (a dict of numpy arrays, pickled by
    the Queue's feeder thread) to every queue.
``queue/msg``
    :class:`MessageQueueSession`: the naive design, one Queue message (a tuple) per quote,
    one reader.
``memcpy``
    :func:`memcpy_reference`: the physical bound, numpy copying the same bytes in one process.

Every reader does the same work on what it receives: it sums ``seq`` and ``bid_price``
(so reading is not free), and checks the count, both sums and the order of the batch
boundaries against the writer's; any mismatch raises :class:`TransportError`.

Timing: readers start, attach or connect, and take a warm-up (the ring: one full lap, so
every page of the segment is faulted in by the writer and mapped by each reader; a Queue: a
few batches) before the clock starts. The clock runs from just before the writer's first
publish/put to the last reader's completion: each reader stamps ``CLOCK_MONOTONIC`` (one
clock for all processes) when it has tallied the transfer's last record (a ring reader counts
them; a Queue reader stops at the ``None`` after the last batch). Process start-up and exit
are outside it.

Sessions have three phases so pytest-benchmark can time ``transfer`` alone::

    s = RingSession(source, readers=2)
    s.prepare()           # start readers, attach, warm up (untimed)
    run = s.transfer()    # timed; verifies every reader's result; may be repeated
    s.close()             # always (also on failure): stops readers, removes the ring

``Session.run()`` is the three in one; ``ring_vs_queue`` uses it, so every run there has
fresh reader processes.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing as mp
import os
import queue as queue_mod
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np

import ringbuffer
from common.schema import QUOTE_SCHEMA
from ringbuffer import DEFAULT_WAIT, WaitStrategy, storage_dtype

CTX = mp.get_context("spawn")
#: The longest anything waits for anything (a reader for data, the writer for a reader).
WAIT_S = 60.0
#: Ring names start with this, so leftovers are easy to find (``/dev/shm/ringbuffer-<prefix>*``).
RING_PREFIX = "bench-transport-"
SCHEMA: dict[str, str] = dict(QUOTE_SCHEMA)
DTYPES: dict[str, np.dtype] = {k: storage_dtype(v) for k, v in SCHEMA.items()}
#: Bytes of one record as the ring stores it (and as the Queue contenders pickle it).
BYTES_PER_RECORD: int = sum(dt.itemsize for dt in DTYPES.values())
VENUES = ("KRAKEN", "BYBIT", "OKEX", "BINANCE", "BITGET", "GATE-IO", "HTX", "COINBASEINT")
TICKERS: tuple[str, ...] = tuple(f"C{i:04d}-USDT-SWAP@{v}" for i in range(64) for v in VENUES)
_SEQ_AT = list(SCHEMA).index("seq")
_BID_AT = list(SCHEMA).index("bid_price")


def now_ns() -> int:
    """``CLOCK_MONOTONIC`` in nanoseconds: one clock for every process on the machine."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class TransportError(RuntimeError):
    """A reader failed, timed out, or received something other than what was sent."""


# -- the data ------------------------------------------------------------------------------


def make_columns(records: int) -> dict[str, np.ndarray]:
    """``records`` quotes as one numpy array per ``QUOTE_SCHEMA`` column (storage dtypes).

    Values are cheap and deterministic: ``seq`` counts from 0, and ``bid_price`` is a multiple
    of 0.25 below 400, so its sums are exact in float64 whatever the order or the split.

    >>> cols = make_columns(5)
    >>> list(cols) == list(SCHEMA), cols["seq"].tolist(), cols["bid_price"].tolist()[:2]
    (True, [0, 1, 2, 3, 4], [100.0, 100.25])
    """
    seq = np.arange(records, dtype=np.uint64)
    i = seq.astype(np.int64)
    ts = 1_759_363_200_000_000_000 + i * 1_000
    bid = 100.0 + (i % 1000) * 0.25
    cols: dict[str, np.ndarray] = {
        "seq": seq,
        "mode": (i & 1).astype(np.uint8),
        "pos": i,
        "ticker": ((i * 2_654_435_761) % len(TICKERS)).astype(np.uint32),
        "timestamp": ts,
        "arrival": ts + 20_000_000,
        "latency": 20.0 + (i % 7).astype(np.float64),
        "bid_price": bid,
        "ask_price": bid + 0.5,
        "bid_amount": (i % 100).astype(np.float64),
        "ask_amount": (i % 50).astype(np.float64),
    }
    assert {k: v.dtype for k, v in cols.items()} == DTYPES
    return cols


@dataclass(frozen=True)
class Expected:
    """What every reader must have received."""

    count: int
    seq_sum: int
    bid_sum: float


@dataclass(frozen=True)
class Source:
    """The records every contender moves: ``total`` records cut into batches of ``batch``.

    The data is a pool of distinct records (``columns``), larger than any cache by default,
    sent again from its start as often as needed to make ``total``: lap ``k`` repeats the
    pool's ``seq`` values. Batches are views of the pool, never copies; a batch stops at the
    end of the pool.

    >>> s = Source.make(5, batch=2, total=12)
    >>> [b["seq"].tolist() for b in s.batches()]
    [[0, 1], [2, 3], [4], [0, 1], [2, 3], [4], [0, 1]]
    >>> s.expected()
    Expected(count=12, seq_sum=21, bid_sum=1205.25)
    """

    columns: dict[str, np.ndarray]
    batch: int
    total: int

    @classmethod
    def make(cls, pool: int, batch: int, total: int | None = None) -> Source:
        """A pool of ``pool`` fresh records (see :func:`make_columns`), ``total`` to send."""
        return cls(make_columns(pool), batch, pool if total is None else total)

    def with_batch(self, batch: int) -> Source:
        """The same records cut into batches of another size."""
        return replace(self, batch=batch)

    def with_total(self, total: int) -> Source:
        """The same pool, sending ``total`` records."""
        return replace(self, total=total)

    @property
    def pool(self) -> int:
        """Distinct records in the pool; ``seq`` counts 0..pool-1 in every lap."""
        return len(self.columns["seq"])

    @property
    def records(self) -> int:
        """Records sent to every reader (``total``)."""
        return self.total

    @property
    def nbytes(self) -> int:
        """Bytes of records sent to every reader."""
        return self.total * BYTES_PER_RECORD

    def batches(self, total: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Dicts of column views, ``batch`` records each, ``total`` records in all."""
        left = self.total if total is None else total
        pool = self.pool
        while left > 0:
            lap = min(left, pool)
            for at in range(0, lap, self.batch):
                end = min(at + self.batch, lap)
                yield {k: v[at:end] for k, v in self.columns.items()}
            left -= lap

    def expected(self) -> Expected:
        """The count and sums of all records sent."""
        laps, rest = divmod(self.total, self.pool)
        p = self.pool
        bid = self.columns["bid_price"]
        return Expected(
            self.total,
            laps * (p * (p - 1) // 2) + rest * (rest - 1) // 2,
            laps * float(bid.sum()) + float(bid[:rest].sum()),
        )


@dataclass
class Tally:
    """A reader's running count and sums, and whether every batch's ends were in sequence.

    ``seq`` restarts at 0 every ``pool`` records (see :class:`Source`).
    """

    pool: int
    count: int = 0
    seq_sum: int = 0
    bid_sum: float = 0.0
    in_order: bool = True

    def add(self, seq: np.ndarray, bid: np.ndarray) -> None:
        """Account for one batch: sum two columns (touches the data), check its ends.

        >>> t = Tally(pool=100); t.add(np.arange(3, dtype=np.uint64), np.ones(3)); t
        Tally(pool=100, count=3, seq_sum=3, bid_sum=3.0, in_order=True)
        """
        n = len(seq)
        if not n:
            return
        c, pool = self.count, self.pool
        self.in_order &= int(seq[0]) == c % pool and int(seq[-1]) == (c + n - 1) % pool
        self.count += n
        self.seq_sum += int(seq.sum())
        self.bid_sum += float(bid.sum())

    def add_one(self, seq: int, bid: float) -> None:
        """Account for one record (the per-message Queue)."""
        self.in_order &= seq == self.count % self.pool
        self.count += 1
        self.seq_sum += seq
        self.bid_sum += bid

    def problems(self, want: Expected) -> list[str]:
        """What differs from ``want`` (empty when everything matches)."""
        out = []
        if self.count != want.count:
            out.append(f"count {self.count:,} != {want.count:,}")
        if self.seq_sum != want.seq_sum:
            out.append(f"seq checksum {self.seq_sum} != {want.seq_sum}")
        if self.bid_sum != want.bid_sum:
            out.append(f"bid_price checksum {self.bid_sum!r} != {want.bid_sum!r}")
        if not self.in_order:
            out.append("records out of order")
        return out


@dataclass(frozen=True)
class Run:
    """One timed transfer: ``records`` records to each of ``readers`` readers in ``seconds``;
    the CPU seconds the writer (all its threads) and the readers (summed) spent on it."""

    contender: str
    readers: int
    batch: int
    records: int
    seconds: float
    writer_cpu: float = 0.0
    reader_cpu: float = 0.0
    bytes_per_record: int = BYTES_PER_RECORD
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def records_per_s(self) -> float:
        """Stream rate: records delivered to every reader per second."""
        return self.records / self.seconds

    @property
    def mb_per_s(self) -> float:
        """Stream rate in MB (10**6 bytes) of records per second, per reader."""
        return self.records * self.bytes_per_record / self.seconds / 1e6

    @property
    def cpu_us_per_krec(self) -> float:
        """CPU time of the writer and all readers together, in microseconds per 1000 records.

        Unlike wall time it barely depends on what else the machine runs.
        """
        return (self.writer_cpu + self.reader_cpu) / self.records * 1e9

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        out = asdict(self)
        out.update(cpu_us_per_krec=self.cpu_us_per_krec)
        out.update(records_per_s=self.records_per_s, mb_per_s=self.mb_per_s)
        return out


# -- reader processes (module level: the spawn start method imports them) -----------------


def _report_failure(conn: Connection) -> None:
    with contextlib.suppress(Exception):
        conn.send(("error", f"reader pid {os.getpid()}:\n{traceback.format_exc()}"))


def ring_reader(
    ring: str,
    consumer: str,
    warm: int,
    max_records: int,
    pool: int,
    total: int,
    wait: WaitStrategy,
    conn: Connection,
) -> None:
    """Attach, read ``warm`` records, signal; then, transfer after transfer, read ``total``
    records, tallying, and send the tally; stop at the end of the stream."""
    try:
        r = ringbuffer.attach(ring, consumer, timeout=WAIT_S, wait=wait)
        b = None
        try:
            conn.send(("attached",))
            got = 0
            while got < warm:
                b = r.read(max_records=min(max_records, warm - got), timeout=WAIT_S)
                if b is None:
                    raise TransportError(f"the warm-up stopped after {got} of {warm} records")
                got += b.num_rows
            conn.send(("warm",))
            cpu0 = time.process_time()
            while True:
                tally = Tally(pool)
                while tally.count < total:
                    b = r.read(max_records=min(max_records, total - tally.count), timeout=WAIT_S)
                    if b is None:
                        break
                    tally.add(b.column("seq").to_numpy(), b.column("bid_price").to_numpy())
                done = now_ns()
                if tally.count == 0 and r.ended:
                    return  # the session is closed
                if tally.count < total:
                    why = "the end of stream" if r.ended else f"no data for {WAIT_S}s"
                    raise TransportError(f"{tally.count:,} of {total:,} records, then {why}")
                cpu = time.process_time()
                conn.send(("done", asdict(tally), done, cpu - cpu0))
                cpu0 = cpu
        finally:
            b = None  # the last batch views the mapping: drop it before unmapping
            r.close()
    except BaseException:
        _report_failure(conn)
        raise


#: What a Queue writer puts after the last transfer; ``None`` ends one transfer.
STOP = "stop"


def queue_reader(q: Any, warm: int, pool: int, conn: Connection) -> None:
    """Take ``warm`` batches, signal; then, transfer after transfer, get dicts of numpy arrays
    until ``None``, tallying, and send the tally; stop at :data:`STOP`."""
    try:
        conn.send(("attached",))
        for _ in range(warm):
            q.get(timeout=WAIT_S)
        conn.send(("warm",))
        cpu0 = time.process_time()
        while True:
            tally = Tally(pool)
            while (d := q.get(timeout=WAIT_S)) is not None:
                if isinstance(d, str):
                    return
                tally.add(d["seq"], d["bid_price"])
            done = now_ns()
            cpu = time.process_time()
            conn.send(("done", asdict(tally), done, cpu - cpu0))
            cpu0 = cpu
    except BaseException:
        _report_failure(conn)
        raise


def message_reader(q: Any, warm: int, pool: int, conn: Connection) -> None:
    """Take ``warm`` messages, signal; then, transfer after transfer, get one tuple per quote
    until ``None``, tallying, and send the tally; stop at :data:`STOP`."""
    try:
        conn.send(("attached",))
        for _ in range(warm):
            q.get(timeout=WAIT_S)
        conn.send(("warm",))
        cpu0 = time.process_time()
        seq_at, bid_at = _SEQ_AT, _BID_AT
        while True:
            tally = Tally(pool)
            while (t := q.get(timeout=WAIT_S)) is not None:
                if isinstance(t, str):
                    return
                tally.add_one(t[seq_at], t[bid_at])
            done = now_ns()
            cpu = time.process_time()
            conn.send(("done", asdict(tally), done, cpu - cpu0))
            cpu0 = cpu
    except BaseException:
        _report_failure(conn)
        raise


# -- sessions ------------------------------------------------------------------------------


class Session:
    """One contender's writer (this process) and its reader processes; see the module doc."""

    name = "?"

    def __init__(self, source: Source, readers: int) -> None:
        self.source = source
        self.readers = readers
        self._procs: list[BaseProcess] = []
        self._conns: list[Connection] = []
        self.prepared = False

    def _start(self, target: Any, *args: Any) -> None:
        recv_end, send_end = CTX.Pipe(duplex=False)
        p = CTX.Process(target=target, args=(*args, send_end), daemon=True)
        p.start()
        send_end.close()  # ours; the child holds its own copy: EOF here when it exits
        self._procs.append(p)
        self._conns.append(recv_end)

    def _recv(self, i: int, what: str) -> tuple[Any, ...]:
        conn = self._conns[i]
        if not conn.poll(WAIT_S):
            raise TransportError(f"{self.name}: reader {i} sent no {what!r} within {WAIT_S}s")
        try:
            msg = conn.recv()
        except EOFError:
            raise TransportError(
                f"{self.name}: reader {i} exited (code {self._procs[i].exitcode}) before {what!r}"
            ) from None
        if msg[0] == "error":
            raise TransportError(f"{self.name}: reader {i} failed:\n{msg[1]}")
        if msg[0] != what:
            raise TransportError(f"{self.name}: reader {i} sent {msg[0]!r}, not {what!r}")
        return msg

    def _await_all(self, what: str) -> None:
        for i in range(self.readers):
            self._recv(i, what)

    def _finish(
        self, t0: int, cpu0: float, want: Expected, detail: dict[str, Any] | None = None
    ) -> Run:
        """Collect every reader's tally, check it, and time from ``t0`` to the last done;
        ``cpu0``: this process's CPU time at ``t0``.

        After a failure the session cannot transfer again (close it).
        """
        self.prepared = False  # until every reader has reported
        ends = []
        bad = []
        reader_cpu = 0.0
        for i in range(self.readers):
            _, tally, done, cpu = self._recv(i, "done")
            ends.append(done)
            reader_cpu += cpu
            problems = Tally(**tally).problems(want)
            if problems:
                bad.append(f"reader {i}: " + "; ".join(problems))
        writer_cpu = time.process_time() - cpu0  # all threads (a Queue's feeders too)
        if bad:
            raise TransportError(f"{self.name}: wrong result\n" + "\n".join(bad))
        self.prepared = True
        seconds = (max(ends) - t0) / 1e9
        return Run(
            self.name,
            self.readers,
            self.source.batch,
            want.count,
            seconds,
            writer_cpu=writer_cpu,
            reader_cpu=reader_cpu,
            detail=detail or {},
        )

    def prepare(self) -> None:
        """Start the readers and wait until each is connected and warm (not timed)."""
        raise NotImplementedError

    def transfer(self) -> Run:
        """Send every record to every reader; time it; verify every reader's result."""
        raise NotImplementedError

    def _stop_procs(self) -> None:
        for p in self._procs:
            p.join(5.0)
            if p.is_alive():
                p.terminate()
                p.join(5.0)
            if p.is_alive():
                p.kill()
                p.join(5.0)
        for c in self._conns:
            c.close()
        self._procs.clear()
        self._conns.clear()

    def close(self) -> None:
        """Stop the readers and release everything (safe to call after any failure)."""
        self._stop_procs()

    def run(self) -> Run:
        """prepare, transfer, close."""
        try:
            self.prepare()
            return self.transfer()
        finally:
            self.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_label(wait: WaitStrategy) -> str:
    """A short name for a wait strategy: ``default``, ``busy`` or ``s64/y32/…``.

    >>> wait_label(DEFAULT_WAIT), wait_label(WaitStrategy(spins=0, yields=4, max_sleep=1e-3))
    ('default', 's0/y4/50us-1ms')
    """
    if wait == DEFAULT_WAIT:
        return "default"
    if wait == ringbuffer.BUSY_SPIN:
        return "busy"

    def us(s: float) -> str:
        return f"{s * 1e3:g}ms" if s >= 1e-3 else f"{s * 1e6:g}us"

    return f"s{wait.spins}/y{wait.yields}/{us(wait.min_sleep)}-{us(wait.max_sleep)}"


class RingSession(Session):
    """The ring: writer publishes each batch once; R consumers each read every record.

    ``capacity`` records of ring (default the ``create`` default, 2**20); readers ask for up
    to ``max_records`` per read (default: the batch size); ``wait`` is used by the writer and
    every reader. ``warm`` publishes one full lap before the clock starts.
    """

    def __init__(
        self,
        source: Source,
        readers: int,
        *,
        capacity: int = 1 << 20,
        wait: WaitStrategy = DEFAULT_WAIT,
        max_records: int | None = None,
        warm: bool = True,
    ) -> None:
        super().__init__(source, readers)
        self.capacity = capacity
        self.wait = wait
        self.max_records = max_records or source.batch
        self.warm = capacity if warm else 0
        label = wait_label(wait)
        self.name = "ring" if label == "default" else f"ring[{label}]"
        self.ring = f"{RING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:10]}"
        self._w: ringbuffer.Writer | None = None

    def prepare(self) -> None:
        """Create the ring, intern the tickers, start and attach readers, publish one lap."""
        self._w = w = ringbuffer.create(self.ring, SCHEMA, self.capacity, wait=self.wait)
        codes = w.symbol_codes(list(TICKERS))  # ticker codes in the data index this table
        assert np.array_equal(codes, np.arange(len(TICKERS))), "fresh ring, codes 0..n-1"
        for i in range(self.readers):
            self._start(
                ring_reader,
                self.ring,
                f"r{i}",
                self.warm,
                self.max_records,
                self.source.pool,
                self.source.total,
                self.wait,
            )
        self._await_all("attached")
        for b in self.source.batches(self.warm):
            w.publish(b)
        self._await_all("warm")
        self.prepared = True

    def transfer(self) -> Run:
        """Publish every batch; done when the last reader has read (and summed) the last record."""
        assert self._w is not None and self.prepared, "prepare() first"
        w, want = self._w, self.source.expected()
        batches = list(self.source.batches())
        cpu0, t0 = time.process_time(), now_ns()
        for b in batches:
            w.publish(b)
        return self._finish(
            t0,
            cpu0,
            want,
            {
                "capacity": self.capacity,
                "wait": wait_label(self.wait),
                "max_records": self.max_records,
            },
        )

    def close(self) -> None:
        """Stop the readers, close (and so remove) the ring."""
        try:
            if self._w is not None and not self._w.closed:
                self._w.end()  # readers still waiting see the end and exit
            self._stop_procs()
        finally:
            if self._w is not None:
                self._w.close()
                self._w = None


class QueueSession(Session):
    """One ``multiprocessing.Queue`` per reader; the writer puts every batch to every queue.

    Each queue holds up to ``capacity // batch`` batches (the same records in flight as the
    ring, and bounded memory like the ring); ``warm`` batches go through before the clock.
    """

    name = "queue"

    def __init__(
        self, source: Source, readers: int, *, capacity: int = 1 << 20, warm: int = 4
    ) -> None:
        super().__init__(source, readers)
        self.maxsize = max(2, capacity // source.batch)
        self.warm = warm
        self._queues: list[Any] = []

    def prepare(self) -> None:
        """Start one reader per queue; put ``warm`` batches to each."""
        warm = list(itertools.islice(self.source.batches(self.warm * self.source.batch), self.warm))
        self._queues = [CTX.Queue(maxsize=self.maxsize) for _ in range(self.readers)]
        for q in self._queues:
            self._start(queue_reader, q, len(warm), self.source.pool)
        self._await_all("attached")
        for b in warm:
            for q in self._queues:
                q.put(b, timeout=WAIT_S)
        self._await_all("warm")
        self.prepared = True

    def transfer(self) -> Run:
        """Put every batch to every queue, then ``None``; done at the last reader's ``None``."""
        assert self.prepared, "prepare() first"
        want, queues = self.source.expected(), self._queues
        batches = list(self.source.batches())
        cpu0, t0 = time.process_time(), now_ns()
        for b in batches:
            for q in queues:
                q.put(b, timeout=WAIT_S)
        for q in queues:
            q.put(None, timeout=WAIT_S)
        return self._finish(t0, cpu0, want, {"maxsize": self.maxsize})

    def close(self) -> None:
        """Stop the readers and the queues' feeder threads."""
        try:
            for q in self._queues:
                with contextlib.suppress(queue_mod.Full, ValueError, OSError):
                    q.put_nowait(STOP)  # a reader still waiting ends
            self._stop_procs()
        finally:
            for q in self._queues:
                q.cancel_join_thread()  # readers are gone: never block on unflushed data
                q.close()
            self._queues = []


class MessageQueueSession(Session):
    """The naive design: one Queue message (a tuple of Python scalars) per quote, 1 reader.

    The tuples are built before the clock starts; only the transport is timed.
    """

    name = "queue/msg"

    def __init__(self, source: Source, *, capacity: int = 1 << 20, warm: int = 1000) -> None:
        super().__init__(source, 1)
        self.maxsize = capacity
        self.warm = warm
        self._queue: Any = None
        self._tuples: list[tuple[Any, ...]] = []

    def prepare(self) -> None:
        """Build the tuples, start the reader, send ``warm`` messages."""
        distinct = min(self.source.total, self.source.pool)
        cols = [c[:distinct].tolist() for c in self.source.columns.values()]
        pool = list(zip(*cols, strict=True))
        laps, rest = divmod(self.source.total, len(pool))
        self._tuples = pool * laps + pool[:rest]
        self._queue = q = CTX.Queue(maxsize=self.maxsize)
        self._start(message_reader, q, self.warm, self.source.pool)
        self._await_all("attached")
        for i in range(self.warm):
            q.put(self._tuples[i % len(self._tuples)], timeout=WAIT_S)
        self._await_all("warm")
        self.prepared = True

    def transfer(self) -> Run:
        """Put one tuple per record, then ``None``."""
        assert self.prepared, "prepare() first"
        want, q = self.source.expected(), self._queue
        put = q.put
        cpu0, t0 = time.process_time(), now_ns()
        for t in self._tuples:
            put(t)
        put(None)
        return self._finish(t0, cpu0, want, {"maxsize": self.maxsize})

    def close(self) -> None:
        """Stop the reader and the queue's feeder thread."""
        try:
            if self._queue is not None:
                with contextlib.suppress(queue_mod.Full, ValueError, OSError):
                    self._queue.put_nowait(STOP)
            self._stop_procs()
        finally:
            if self._queue is not None:
                self._queue.cancel_join_thread()
                self._queue.close()
                self._queue = None
            self._tuples = []


# -- the physical reference ----------------------------------------------------------------


def memcpy_destination(source: Source) -> dict[str, np.ndarray]:
    """Arrays the size of the source's pool, written once (so copies into them do not fault)."""
    dst = {k: np.empty_like(v) for k, v in source.columns.items()}
    for v in dst.values():
        v.fill(0)
    return dst


def memcpy_columns(source: Source, dst: dict[str, np.ndarray]) -> None:
    """Copy ``source.total`` records into ``dst``, whole columns at a time, pool by pool."""
    left = source.total
    while left > 0:
        n = min(left, source.pool)
        for k, v in source.columns.items():
            np.copyto(dst[k][:n], v[:n])
        left -= n


def memcpy_reference(source: Source, capacity: int = 1 << 20) -> tuple[Run, Run]:
    """numpy copying the same bytes in this process: the bound for the ring's writer.

    Returns two runs: ``memcpy`` (each whole column copied at once into a destination of the
    same size: memory bandwidth) and ``np copy/batch`` (each batch copied column by column into
    ring-sized arrays, wrapping like the ring: the writer's least possible work). Destinations
    are written once before the clock, so page faults are not timed.

    >>> big, per_batch = memcpy_reference(Source.make(1000, 256), capacity=512)
    >>> big.contender, per_batch.contender, big.records
    ('memcpy', 'np copy/batch', 1000)
    """
    cols = source.columns
    dst = memcpy_destination(source)
    t0 = now_ns()
    memcpy_columns(source, dst)
    t1 = now_ns()
    n = min(source.total, source.pool)
    for k, v in cols.items():
        if not np.array_equal(dst[k][:n], v[:n]):
            raise TransportError(f"memcpy: column {k} differs")
    del dst
    ring = {k: np.empty(capacity, v.dtype) for k, v in cols.items()}
    for v in ring.values():
        v.fill(0)
    batches = list(source.batches())
    at = 0
    t2 = now_ns()
    for b in batches:
        n = len(b["seq"])
        done = 0
        while done < n:  # the writer's loop: at most two slices per wrap
            i = at % capacity
            step = min(n - done, capacity - i)
            for name, src in b.items():
                ring[name][i : i + step] = src[done : done + step]
            at += step
            done += step
    t3 = now_ns()
    last = (source.total - 1) % capacity
    if int(ring["seq"][last]) != (source.total - 1) % source.pool:
        raise TransportError("np copy/batch: the last record is not where it belongs")
    return (
        Run("memcpy", 1, source.batch, source.total, (t1 - t0) / 1e9, (t1 - t0) / 1e9),
        Run("np copy/batch", 1, source.batch, source.total, (t3 - t2) / 1e9, (t3 - t2) / 1e9),
    )


def leftover_rings() -> list[str]:
    """Segments under /dev/shm this module's rings (any process's) left behind."""
    return [ringbuffer.segment_path(ring).name for ring in ringbuffer.segments(RING_PREFIX)]
