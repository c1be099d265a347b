"""The live source's asyncio client: connect with backoff, read frames, keep alive, reconnect.

:class:`Connection` runs on the bridge's event loop (``engine.live._bridge``). It connects to
the feed, parses every frame with ``engine.live_parse.parse_frame``, feeds the records and
rejects to the :class:`~engine.live._batcher.Batcher` and hands due batches over through the
bridge's :class:`~engine.live._bridge.Handoff`; the batcher decides what is due, this module
only does the waiting and the socket work.

Reconnecting: after any failure (refused, dropped, closed, idle) it connects again after the
delay of a :class:`~engine.live._backoff.Backoff` (exponential, full jitter, capped at
``backoff_max``); the backoff starts over only after a connection stayed up for twice
``backoff_max`` (what it delivered does not count), so a feed that sends a quote and closes is
not hammered. The records of a connection that ended are handed over before it connects
again.

Keepalive: pings go out every ``KEEPALIVE_INTERVAL`` seconds so that middleboxes and the server
see a live client; they carry no pong deadline while idle detection is on, because a pong
deadline would also fire while the reader deliberately leaves the socket unread under
backpressure (the batcher's idle rule does not count that time). With ``idle_timeout <= 0``
(idle detection off) pongs are required within ``KEEPALIVE_INTERVAL`` seconds instead.

Flow control: when the reader stops calling ``recv`` (the queue is full), websockets stops
reading the socket once its own small frame buffer (``WS_MAX_QUEUE`` frames) is full, and TCP
holds the server. Nothing is dropped.

Oversized frames: an incoming frame larger than ``max_frame`` is refused by websockets itself
(``max_size``): the library fails the connection with close code 1009 without handing the
frame over. The source then records one ``Rejected`` for that frame (reason "frame is larger
than ... bytes", empty raw text, its own frame number) and reconnects; the frames the server
sent after it on the old connection are lost, as with any disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from common.log import get_logger
from engine.live._backoff import Backoff
from engine.live._batcher import Batcher
from engine.live._settings import LiveSettings
from engine.rejects import Rejected
from engine.venues import Adapter, Decoded, Note

if TYPE_CHECKING:
    from engine.live._bridge import Handoff

log = get_logger("live")

#: Seconds between keepalive pings.
KEEPALIVE_INTERVAL = 10.0
#: Seconds allowed for the opening handshake.
OPEN_TIMEOUT = 10.0
#: Seconds allowed for the closing handshake before the TCP connection is dropped.
CLOSE_TIMEOUT = 0.5
#: Frames websockets buffers before it stops reading the socket (its flow control); with
#: ``max_frame`` this bounds the library's memory (16 x 1 MiB by default).
WS_MAX_QUEUE = 16

# websockets logs through the standard library; our own structured lines say what matters.
_ws_logger = logging.getLogger("engine.live.websockets")
_ws_logger.addHandler(logging.NullHandler())
_ws_logger.propagate = False


class Connection:
    """Connects to ``url`` again and again until ``stopping`` is set (see the module docstring).

    ``frame_no`` (the ``line`` of records and rejects) and ``stats`` count over the object's
    whole lifetime, across connections and runs.
    """

    def __init__(
        self,
        url: str,
        batcher: Batcher,
        handoff: Handoff,
        stopping: threading.Event,
        settings: LiveSettings,
        adapter: Adapter,
    ) -> None:
        self.url = url
        self.adapter = adapter
        self.batcher = batcher
        self.handoff = handoff
        self.stopping = stopping
        self.settings = settings
        self.stats = {
            "connects": 0,
            "disconnects": 0,
            "frames": 0,
            "records": 0,
            "rejected": 0,
            "bytes": 0,
        }
        self.frame_no = 0
        # Set when the open batch gets its first item (wakes the ticker); made on the loop.
        self._started: asyncio.Event | None = None

    async def run(self) -> None:
        """Connect, read, reconnect, until ``stopping`` is set or the task is cancelled."""
        self._started = asyncio.Event()
        backoff = Backoff(initial=self.settings.backoff_initial, cap=self.settings.backoff_max)
        down_since: float | None = None  # when the last connection ended (for the gap)
        while not self.stopping.is_set():
            idle = self.batcher.idle_timeout
            try:
                ws = await connect(
                    self.url,
                    max_size=self.settings.max_frame,
                    max_queue=WS_MAX_QUEUE,
                    open_timeout=OPEN_TIMEOUT,
                    close_timeout=CLOSE_TIMEOUT,
                    ping_interval=KEEPALIVE_INTERVAL,
                    ping_timeout=None if idle > 0 else KEEPALIVE_INTERVAL,
                    proxy=None,
                    logger=_ws_logger,
                )
            except Exception as exc:
                delay = backoff.next_delay()
                log.warning(
                    "connect failed",
                    url=self.url,
                    error=_describe(exc),
                    attempt=backoff.attempt,
                    retry_in=round(delay, 3),
                )
                await asyncio.sleep(delay)
                continue
            self.stats["connects"] += 1
            backoff.connected(time.monotonic())
            fields: dict[str, Any] = {"url": self.url, "connects": self.stats["connects"]}
            if down_since is None:
                log.info("connected", **fields)
            else:
                gap = round(time.monotonic() - down_since, 3)
                log.info("reconnected", gap_s=gap, **fields)
            records_before = self.stats["records"]
            try:
                await self._subscribe(ws)
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
            backoff.disconnected(down_since)  # a healthy connection starts the backoff over
            if self.batcher.disconnected():  # hand over what arrived before the drop
                await self.handoff.hand_over()
            if self.stopping.is_set():
                return
            delay = backoff.next_delay()
            log.info(
                "reconnecting", url=self.url, attempt=backoff.attempt, retry_in=round(delay, 3)
            )
            await asyncio.sleep(delay)

    def _disconnected(self, reason: str, records_before: int) -> None:
        self.stats["disconnects"] += 1
        log.info(
            "disconnected",
            url=self.url,
            reason=reason,
            records=self.stats["records"],
            connection_records=self.stats["records"] - records_before,
            **{k: v for k, v in self.adapter.counts.items() if k != "quotes"},
        )

    async def _subscribe(self, ws: ClientConnection) -> None:
        """Send what the venue's protocol sends first (its subscriptions), on every connection."""
        messages = self.adapter.connected()
        for text in messages:
            await ws.send(text)
        if messages:
            log.info("subscribed", url=self.url, format=self.adapter.format,
                     messages=len(messages), instruments=len(self.adapter.instruments))  # fmt: skip

    async def _heartbeats(self, ws: ClientConnection, interval: float) -> str:
        """Send the venue's heartbeat every ``interval`` seconds (OKX's ``ping``, Bybit's)."""
        while True:
            await asyncio.sleep(interval)
            text = self.adapter.heartbeat_message()
            if text is None:
                return "no heartbeat"  # pragma: no cover - adapters with an interval send one
            await ws.send(text)

    async def _session(self, ws: ClientConnection) -> str:
        """Read one connection until it ends; returns why it ended."""
        self.batcher.connected(time.monotonic())
        tasks = [asyncio.create_task(self._reader(ws)), asyncio.create_task(self._ticker())]
        interval = self.adapter.heartbeat_interval
        if interval:
            tasks.append(asyncio.create_task(self._heartbeats(ws, interval)))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        result = next(r for t, r in zip(tasks, results, strict=True) if t in done)
        if isinstance(result, ConnectionClosed):  # a heartbeat sent on a closed connection
            return self._closed_reason(result)
        if isinstance(result, BaseException):
            raise result
        return str(result)

    async def _reader(self, ws: ClientConnection) -> str:
        """Receive and decode frames; hand a full batch over before reading on."""
        source, decode = self.url, self.adapter.decode
        stats = self.stats
        while True:
            try:
                data = await ws.recv(decode=False)
            except ConnectionClosed as exc:
                return self._closed_reason(exc)
            received_ns = time.time_ns()
            now = time.monotonic()
            self.frame_no += 1
            stats["frames"] += 1
            stats["bytes"] += len(data)
            try:
                d = decode(data, self.frame_no, received_ns)
            except Exception as exc:  # adapters are total; this is belt and braces
                text = bytes(data[:200]).decode("utf-8", "replace")
                reason = f"frame could not be parsed ({exc!r})"
                d = Decoded([], self.frame_no, received_ns,
                            [Rejected(source, self.frame_no, reason, text)], [], [])  # fmt: skip
            # The quotes first: nothing below can lose them.
            full = self._add(d.rows, received_ns, d.rejected, now)
            if d.notes:
                _log_notes(d.notes, self.url)
            for text in d.replies:
                await ws.send(text)
            if full:
                await self.handoff.hand_over()

    def _add(
        self, rows: list[tuple], received_ns: int, rejected: list[Rejected], now: float
    ) -> bool:
        """Count and batch the current frame's quotes (rows: one table per batch) and rejects;
        True when the batch is full (hand it over)."""
        if not self.batcher.size and self._started is not None:
            self._started.set()
        self.stats["records"] += len(rows)
        if rejected:
            self.stats["rejected"] += len(rejected)
        return self.batcher.add_rows(rows, self.frame_no, received_ns, rejected, now)

    def _closed_reason(self, exc: ConnectionClosed) -> str:
        """Why the connection closed; an oversized frame also becomes a reject."""
        sent, rcvd = exc.sent, exc.rcvd
        if sent is not None and sent.code == 1009 and (rcvd is None or rcvd.code == 1009):
            self.frame_no += 1
            self.stats["frames"] += 1
            reason = (
                f"frame is larger than {self.settings.max_frame} bytes (refused by the websocket)"
            )
            rejected = [Rejected(self.url, self.frame_no, reason, "")]
            self._add([], time.time_ns(), rejected, time.monotonic())
            limit = self.settings.max_frame
            log.warning("oversized frame", url=self.url, frame=self.frame_no, limit=limit)
            return f"frame larger than {limit} bytes (close 1009)"
        frame = rcvd if rcvd is not None else sent
        if frame is None:
            return "connection lost (no close frame)"
        who = "server" if rcvd is not None and (sent is None or exc.rcvd_then_sent) else "client"
        text = f"closed by {who} code {frame.code}"
        return f"{text} ({frame.reason})" if frame.reason else text

    async def _ticker(self) -> str:
        """Hand the batch over when its interval is due; end the session when idle."""
        started = self._started
        assert started is not None
        batcher = self.batcher
        while True:
            now = time.monotonic()
            if batcher.due(now):
                self.handoff.flush()  # refused while the queue is full: looked at again later
            if batcher.idle(now) and not self.stopping.is_set():
                idle = batcher.idle_timeout
                log.warning("connection idle", url=self.url, idle_timeout=idle)
                return f"idle for {idle:g} s"
            wake = batcher.deadline(now)
            wait = None if wake is None else max(wake - now, 0.0)
            if batcher.size:  # the batch's own deadline comes first: nothing else to wait for
                await asyncio.sleep(wait or 0.0)
                continue
            started.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await started.wait()


def _log_notes(notes: list[Note], url: str) -> None:
    """Log an adapter's notes (a field may not be called ``message``: the log line's own)."""
    for note in notes:
        fields = {("text" if k == "message" else k): v for k, v in note.fields.items()}
        getattr(log, note.level)(note.message, url=url, **fields)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _close(ws: ClientConnection) -> None:
    """Close ``ws`` within ``CLOSE_TIMEOUT`` (websockets drops TCP after that); never raise."""
    try:
        await ws.close()
    except Exception as exc:  # pragma: no cover - close() handles its own failures
        log.debug("close failed", error=_describe(exc))
