"""The live source: a websocket client in a background thread, batching quotes for the engine.

``LiveSource`` connects to a quote feed (contract section 1, "Live messages"), parses every frame
with ``engine.live_parse.parse_frame`` and hands the engine batches of records (``TABLE_SCHEMA``)
together with the rejects of the same frames, through a bounded queue that the engine drains
with ``poll``. The thread runs its own asyncio loop (uvloop when installed), never raises, and
reconnects with exponential backoff and full jitter after any failure.

Batching: a batch is handed over when it holds ``batch_records`` records (rejects count too),
``batch_interval`` seconds after its first record, when the connection ends, and on ``stop``.

Flow control: at most ``max_pending`` batches wait for ``poll``. When the engine stops polling
(e.g. blocked on a full ring), the reader stops calling ``recv``; websockets then stops reading
the socket once its own small frame buffer is full, and TCP holds the server. Nothing is dropped.

Liveness: a connection that delivers no frame for ``idle_timeout`` seconds while the reader is
waiting for one is considered dead, closed and reopened (time spent blocked on a full queue does
not count). Keepalive pings go out every ``KEEPALIVE_INTERVAL`` seconds so that middleboxes and
the server see a live client; they carry no pong deadline while the idle timeout is enabled,
because a pong deadline would also fire while we deliberately leave the socket unread under
backpressure. With ``idle_timeout <= 0`` (idle detection off) pongs are required within
``KEEPALIVE_INTERVAL`` seconds instead.

An incoming frame larger than ``max_frame`` is refused by websockets itself (``max_size``): the
library fails the connection with close code 1009 without handing the frame over. The source
then records one ``Rejected`` for that frame (reason "frame is larger than ... bytes", empty raw
text, its own frame number) and reconnects; the frames the server sent after it on the old
connection are lost, as with any disconnect.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI
from websockets.uri import parse_uri

from common.log import get_logger
from common.schema import Mode
from engine.live_parse import parse_frame
from engine.rejects import Rejected

log = get_logger("live")

#: Seconds between keepalive pings.
KEEPALIVE_INTERVAL = 10.0
#: Seconds allowed for the opening handshake.
OPEN_TIMEOUT = 10.0
#: Seconds allowed for the closing handshake before the TCP connection is dropped.
CLOSE_TIMEOUT = 0.5
#: Seconds ``stop`` waits for the thread.
STOP_TIMEOUT = 1.9
#: Frames websockets buffers before it stops reading the socket (its flow control); with
#: ``max_frame`` this bounds the library's memory (16 x 1 MiB by default).
WS_MAX_QUEUE = 16

# websockets logs through the standard library; our own structured lines say what matters.
_ws_logger = logging.getLogger("engine.live.websockets")
_ws_logger.addHandler(logging.NullHandler())
_ws_logger.propagate = False

Batch = tuple[pa.Table | None, list[Rejected]]


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop when it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in requirements
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def check_url(url: str) -> str:
    """``url`` if it is a ``ws://`` or ``wss://`` URL, else ValueError saying what is wrong."""
    try:
        parse_uri(url)
    except InvalidURI as exc:
        raise ValueError(f"not a websocket URL (ws://host:port/path): {url!r} ({exc})") from None
    return url


def backoff_delay(attempt: int, initial: float, cap: float) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, initial * 2**attempt)]."""
    return random.uniform(0.0, min(cap, initial * 2.0 ** min(attempt, 60)))


class LiveSource:
    """Quotes from a websocket feed, polled in batches by the engine's main thread.

    ``start`` connects in a background thread and returns at once; ``stop`` closes the
    connection and joins the thread within ~2 s; batches not yet polled stay pollable. The two
    may alternate any number of times; frame numbers (the ``line`` column and ``Rejected.line``)
    keep increasing over the source's whole lifetime, and ``stats`` accumulate.
    """

    mode = Mode.LIVE

    def __init__(
        self,
        url: str,
        *,
        batch_records: int = 4096,
        batch_interval: float = 0.005,
        idle_timeout: float = 10.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        max_frame: int = 1 << 20,
        max_pending: int = 64,
    ) -> None:
        """``batch_records`` records (rejects count too) or ``batch_interval`` seconds make a
        batch, whichever comes first; at most ``max_pending`` batches wait for ``poll``;
        ``idle_timeout <= 0`` turns idle detection off. Raises ValueError for a URL that is
        not ``ws://`` or ``wss://`` or a setting out of range."""
        check_url(url)
        if batch_records < 1 or max_pending < 1 or max_frame < 1:
            raise ValueError("batch_records, max_pending and max_frame must be at least 1")
        if batch_interval <= 0 or backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("batch_interval and backoff_initial must be > 0, backoff_max >= it")
        self.url = url
        self.batch_records = batch_records
        self.batch_interval = batch_interval
        self.idle_timeout = idle_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_frame = max_frame
        self.max_pending = max_pending

        self._stats = {
            "connects": 0,
            "disconnects": 0,
            "frames": 0,
            "records": 0,
            "rejected": 0,
            "bytes": 0,
        }
        self._frame_no = 0
        # The queue to poll(): guarded by _cond; _waiting is True while the reader waits for room.
        self._pending: collections.deque[Batch] = collections.deque()
        self._cond = threading.Condition()
        self._waiting = False
        # The thread and its loop.
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._wake_stop: asyncio.Event | None = None
        self._room: asyncio.Event | None = None
        # The batch being filled (only touched on the loop thread, or after it ended).
        self._tables: list[pa.Table] = []
        self._rejects: list[Rejected] = []
        self._batch_size = 0
        self._batch_t0 = 0.0
        self._batch_started: asyncio.Event | None = None
        self._last_rx = 0.0
        self._blocked = False

    # --- the engine's side ------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        """Counters over the source's lifetime: connects, disconnects, frames, records,
        rejected (objects and frames), bytes (frame payloads)."""
        return dict(self._stats)

    @property
    def pending_batches(self) -> int:
        """Batches waiting for ``poll`` (at most ``max_pending``, plus one after ``stop``)."""
        return len(self._pending)

    def start(self) -> None:
        """Begin connecting in a background thread; returns at once. No-op when running."""
        old = self._thread
        if old is not None and old.is_alive():
            if not self._stopping.is_set():
                return
            old.join(STOP_TIMEOUT)  # a stop that timed out: let that thread finish first
            if old.is_alive():
                log.warning("previous live thread still running; start ignored", url=self.url)
                return
        self._stopping.clear()
        self._loop = None
        with self._cond:
            self._waiting = False
        self._thread = threading.Thread(target=self._run, name="live-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the connection and join the thread (bounded); pending batches stay pollable."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        loop, wake = self._loop, self._wake_stop
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(wake.set)
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            log.warning("live thread did not stop in time", url=self.url, seconds=STOP_TIMEOUT)
        else:
            self._thread = None
            self._flush(force=True)  # whatever the loop left behind (normally nothing)

    def poll(self, timeout: float) -> Batch:
        """The next batch (records in arrival order and rejects), waiting up to ``timeout``
        seconds; ``(None, [])`` when nothing arrived."""
        with self._cond:
            if not self._pending and timeout > 0:
                self._cond.wait_for(lambda: bool(self._pending), timeout)
            if not self._pending:
                return None, []
            batch = self._pending.popleft()
            wake = self._waiting
        if wake:
            loop, room = self._loop, self._room
            if loop is not None and room is not None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(room.set)
        return batch

    # --- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(self._main())
        except BaseException as exc:  # never raise from the thread
            log.error("live thread failed", url=self.url, error=repr(exc))

    async def _main(self) -> None:
        self._wake_stop = asyncio.Event()
        self._room = asyncio.Event()
        self._batch_started = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._stopping.is_set():
            return
        stopper = asyncio.create_task(self._wake_stop.wait())
        task: asyncio.Task[None] | None = None
        try:
            while not self._stopping.is_set():
                task = asyncio.create_task(self._connect_loop())
                await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if stopper.done() or self._stopping.is_set():
                    break
                # _connect_loop handles its own errors; this is the last line of defence.
                error = task.exception() if not task.cancelled() else None
                log.error("live loop failed, restarting", url=self.url, error=repr(error))
                await asyncio.wait({stopper}, timeout=self.backoff_max)
        finally:
            for t in (task, stopper):
                if t is not None:
                    t.cancel()
            await asyncio.gather(*(t for t in (task, stopper) if t is not None),
                                 return_exceptions=True)
            self._flush(force=True)
            self._loop = None

    async def _connect_loop(self) -> None:
        attempt = 0
        down_since: float | None = None  # when the last connection ended (for the gap)
        while not self._stopping.is_set():
            try:
                ws = await connect(
                    self.url,
                    max_size=self.max_frame,
                    max_queue=WS_MAX_QUEUE,
                    open_timeout=OPEN_TIMEOUT,
                    close_timeout=CLOSE_TIMEOUT,
                    ping_interval=KEEPALIVE_INTERVAL,
                    ping_timeout=None if self.idle_timeout > 0 else KEEPALIVE_INTERVAL,
                    proxy=None,
                    logger=_ws_logger,
                )
            except Exception as exc:
                delay = backoff_delay(attempt, self.backoff_initial, self.backoff_max)
                attempt += 1
                log.warning(
                    "connect failed",
                    url=self.url,
                    error=_describe(exc),
                    attempt=attempt,
                    retry_in=round(delay, 3),
                )
                await asyncio.sleep(delay)
                continue
            self._stats["connects"] += 1
            fields: dict[str, Any] = {"url": self.url, "connects": self._stats["connects"]}
            if down_since is None:
                log.info("connected", **fields)
            else:
                gap = round(time.monotonic() - down_since, 3)
                log.info("reconnected", gap_s=gap, **fields)
            frames_before = self._stats["frames"]
            records_before = self._stats["records"]
            try:
                reason = await self._session(ws)
            except asyncio.CancelledError:
                await _close(ws)
                self._disconnected("stopped", records_before)
                raise
            except Exception as exc:  # a bug or an unexpected library error: log and retry
                reason = f"error {_describe(exc)}"
            await _close(ws)
            self._disconnected(reason, records_before)
            down_since = time.monotonic()
            if self._batch_size:  # hand over what arrived before the drop, then reconnect
                await self._wait_room()
                self._flush()
            if self._stats["frames"] > frames_before:
                attempt = 0  # a connection that delivered something resets the backoff
            if self._stopping.is_set():
                return
            delay = backoff_delay(attempt, self.backoff_initial, self.backoff_max)
            attempt += 1
            log.info("reconnecting", url=self.url, attempt=attempt, retry_in=round(delay, 3))
            await asyncio.sleep(delay)

    def _disconnected(self, reason: str, records_before: int) -> None:
        self._stats["disconnects"] += 1
        log.info(
            "disconnected",
            url=self.url,
            reason=reason,
            records=self._stats["records"],
            connection_records=self._stats["records"] - records_before,
        )

    async def _session(self, ws: ClientConnection) -> str:
        """Read one connection until it ends; returns why it ended."""
        self._last_rx = time.monotonic()
        self._blocked = False
        reader = asyncio.create_task(self._reader(ws))
        ticker = asyncio.create_task(self._ticker())
        try:
            done, _ = await asyncio.wait({reader, ticker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (reader, ticker):
                t.cancel()
            results = await asyncio.gather(reader, ticker, return_exceptions=True)
        first = reader if reader in done else ticker
        result = results[0] if first is reader else results[1]
        if isinstance(result, BaseException):
            raise result
        return str(result)

    async def _reader(self, ws: ClientConnection) -> str:
        source, max_frame = self.url, self.max_frame
        stats = self._stats
        while True:
            try:
                data = await ws.recv(decode=False)
            except ConnectionClosed as exc:
                return self._closed_reason(exc)
            received_ns = time.time_ns()
            self._last_rx = time.monotonic()
            self._frame_no += 1
            stats["frames"] += 1
            stats["bytes"] += len(data)
            try:
                table, rejected = parse_frame(
                    data,
                    source=source,
                    frame_no=self._frame_no,
                    received_ns=received_ns,
                    max_bytes=max_frame,
                )
            except Exception as exc:  # parse_frame is total; this is belt and braces
                text = bytes(data[:200]).decode("utf-8", "replace")
                table, rejected = None, [
                    Rejected(source, self._frame_no, f"frame could not be parsed ({exc!r})", text)
                ]
            self._add(table, rejected)
            if self._batch_size >= self.batch_records:
                await self._wait_room()
                self._flush()

    def _closed_reason(self, exc: ConnectionClosed) -> str:
        """Why the connection closed; an oversized frame also becomes a reject."""
        sent, rcvd = exc.sent, exc.rcvd
        if sent is not None and sent.code == 1009 and (rcvd is None or rcvd.code == 1009):
            self._frame_no += 1
            self._stats["frames"] += 1
            reason = f"frame is larger than {self.max_frame} bytes (refused by the websocket)"
            self._add(None, [Rejected(self.url, self._frame_no, reason, "")])
            log.warning("oversized frame", url=self.url, frame=self._frame_no, limit=self.max_frame)
            return f"frame larger than {self.max_frame} bytes (close 1009)"
        frame = rcvd if rcvd is not None else sent
        if frame is None:
            return "connection lost (no close frame)"
        who = "server" if rcvd is not None and (sent is None or exc.rcvd_then_sent) else "client"
        text = f"closed by {who} code {frame.code}"
        return f"{text} ({frame.reason})" if frame.reason else text

    async def _ticker(self) -> str:
        """Flush the batch every ``batch_interval`` seconds; end the session when idle."""
        started = self._batch_started
        assert started is not None
        idle = self.idle_timeout
        while True:
            now = time.monotonic()
            if self._batch_size:
                due = self._batch_t0 + self.batch_interval - now
                if due > 0:
                    await asyncio.sleep(due)
                if self._batch_size and not self._full():
                    self._flush()
                elif self._batch_size:  # no room: wait a little rather than spin
                    await asyncio.sleep(self.batch_interval)
            else:
                started.clear()
                wait = idle - (now - self._last_rx) if idle > 0 else None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(wait, 0.0) if wait is not None else None):
                        await started.wait()
            if (
                idle > 0
                and not self._blocked
                and time.monotonic() - self._last_rx >= idle
                and not self._stopping.is_set()
            ):
                log.warning("connection idle", url=self.url, idle_timeout=idle)
                return f"idle for {idle:g} s"

    # --- the batch --------------------------------------------------------------------------

    def _add(self, table: pa.Table | None, rejected: list[Rejected]) -> None:
        if not self._batch_size:
            self._batch_t0 = time.monotonic()
            if self._batch_started is not None:
                self._batch_started.set()
        if table is not None:
            self._tables.append(table)
            self._batch_size += table.num_rows
            self._stats["records"] += table.num_rows
        if rejected:
            self._rejects.extend(rejected)
            self._batch_size += len(rejected)
            self._stats["rejected"] += len(rejected)

    def _full(self) -> bool:
        return len(self._pending) >= self.max_pending

    async def _wait_room(self) -> None:
        """Wait until the queue has room for one more batch (the engine polled)."""
        room = self._room
        assert room is not None
        while True:
            with self._cond:
                if not self._full():
                    self._waiting = False
                    break
                self._waiting = True
                room.clear()
            self._blocked = True
            try:
                await room.wait()
            finally:
                self._blocked = False
                self._last_rx = time.monotonic()  # time spent blocked is not idle time

    def _flush(self, force: bool = False) -> None:
        """Move the batch being filled to the queue (``force``: even beyond ``max_pending``)."""
        if not self._batch_size:
            return
        tables, rejected = self._tables, self._rejects
        self._tables, self._rejects, self._batch_size = [], [], 0
        if not tables:
            table = None
        elif len(tables) == 1:
            table = tables[0]
        else:
            table = pa.concat_tables(tables).combine_chunks()
        with self._cond:
            if not force and self._full():  # callers check; never lose the batch anyway
                log.debug("queue over its bound", pending=len(self._pending))
            self._pending.append((table, rejected))
            self._cond.notify()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _close(ws: ClientConnection) -> None:
    """Close ``ws`` within ``CLOSE_TIMEOUT`` (websockets drops TCP after that); never raise."""
    try:
        await ws.close()
    except Exception as exc:  # pragma: no cover - close() handles its own failures
        log.debug("close failed", error=_describe(exc))
