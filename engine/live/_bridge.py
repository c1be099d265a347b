"""The thread bridge: ``LiveSource`` runs the client in a thread of its own, the engine polls.

The engine's main thread calls ``start``, ``poll`` and ``stop``; a background thread runs an
asyncio loop (``common.cli.loop_factory``: uvloop when installed) with the
:class:`~engine.live._connection.Connection` on it. Batches cross between the two through the
:class:`~engine.live._batcher.Batcher`'s bounded queue, wrapped by :class:`Handoff`, which adds
the waiting: the engine waits (bounded) for a batch, the reader waits for room. The thread
never raises; a failure of the client is logged and the client restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

from common.cli import UsageError, check_ws_url, loop_factory
from common.log import get_logger
from common.schema import Mode
from engine.live._batcher import Batch, Batcher
from engine.live._connection import Connection
from engine.live._settings import LiveSettings
from engine.venues import make_adapter

log = get_logger("live")

#: Seconds ``stop`` waits for the thread.
STOP_TIMEOUT = 1.9


class Handoff:
    """The batcher's queue between two threads: the loop hands batches over, the engine takes
    them. Only the loop's thread calls :meth:`flush` and :meth:`hand_over` (and only the engine's
    once the loop has ended); only the engine's calls :meth:`take`."""

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher
        self._cond = threading.Condition()
        self._waiting = False  # the reader waits for room (guarded by _cond)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room: asyncio.Event | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve the reader on ``loop`` (called on that loop, at the start of a run)."""
        self._room = asyncio.Event()
        self._loop = loop
        with self._cond:
            self._waiting = False

    def detach(self) -> None:
        self._loop = None

    # --- the loop's side ----------------------------------------------------------------------

    def flush(self, *, force: bool = False) -> bool:
        """Hand the open batch over if there is room (``force``: in any case); True when done."""
        batcher = self.batcher
        if not batcher.size:
            return True
        if not batcher.flush(time.monotonic(), force=force):
            return False
        with self._cond:
            self._cond.notify()
        return True

    async def hand_over(self) -> None:
        """Hand the open batch over, waiting until the engine makes room (not reading meanwhile:
        the batcher does not count this time as idle)."""
        room = self._room
        assert room is not None
        while True:
            with self._cond:
                if not self.batcher.full:
                    self._waiting = False
                    break
                self._waiting = True
                room.clear()
            await room.wait()
        self.flush()

    # --- the engine's side --------------------------------------------------------------------

    def take(self, timeout: float) -> Batch:
        """The next batch, waiting up to ``timeout`` seconds; ``(None, [])`` when none came."""
        batcher = self.batcher
        with self._cond:
            if not batcher.pending and timeout > 0:
                self._cond.wait_for(lambda: batcher.pending > 0, timeout)
            batch = batcher.take()
            if batch is None:
                return None, []
            wake = self._waiting
        if wake:
            loop, room = self._loop, self._room
            if loop is not None and room is not None:
                with contextlib.suppress(RuntimeError):  # the loop already closed
                    loop.call_soon_threadsafe(room.set)
        return batch


class LiveSource:
    """Quotes from a websocket feed, polled in batches by the engine's main thread.

    Frames follow contract section 1 ("Live messages"); each is parsed into records
    (``TABLE_SCHEMA``) and rejects. ``start`` connects in a background thread and returns at
    once; ``stop`` closes the connection and joins the thread within ~2 s; batches not yet
    polled stay pollable. The two may alternate any number of times; frame numbers (the
    ``line`` column and ``Rejected.line``) keep increasing over the source's whole lifetime,
    and ``stats`` accumulate. The rules (batching, the bounded queue, idle detection) are the
    :class:`~engine.live._batcher.Batcher`'s; connecting, backoff, keepalive and oversized
    frames are the :class:`~engine.live._connection.Connection`'s.
    """

    mode = Mode.LIVE

    def __init__(self, url: str, **settings: Any) -> None:
        """``settings``: the fields of :class:`~engine.live._settings.LiveSettings` (batch
        size and interval, queue bound, idle timeout, backoff, frame limit). Raises ValueError
        for a URL that is not ``ws://`` or ``wss://``, a setting out of range, an unknown
        ``format`` or a venue format without ``instruments``."""
        try:
            check_ws_url(url, "the URL")
        except UsageError as exc:
            raise ValueError(f"not a websocket URL: {exc}") from None
        self.url = url
        self.settings = LiveSettings(**settings)
        self._batcher = Batcher(
            batch_records=self.settings.batch_records,
            batch_interval=self.settings.batch_interval,
            max_pending=self.settings.max_pending,
            idle_timeout=self.settings.idle_timeout,
        )
        self._handoff = Handoff(self._batcher)
        self._stopping = threading.Event()
        s = self.settings
        #: The venue's protocol (``engine.venues``): what is sent on connect, how frames read.
        self.adapter = make_adapter(s.format, s.instruments, source=url, url=url,
                                    max_bytes=s.max_frame, heartbeat=s.heartbeat)  # fmt: skip
        self._connection = Connection(
            url, self._batcher, self._handoff, self._stopping, self.settings, self.adapter
        )
        # The thread and its loop.
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_stop: asyncio.Event | None = None

    # --- the engine's side --------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        """Counters over the source's lifetime: connects, disconnects, frames, records,
        rejected (objects and frames), bytes (frame payloads); and the venue adapter's
        counts, prefixed ``venue_`` (control messages, heartbeats, venue errors, unknown
        messages, quotes without an exchange time, one-sided books, ...)."""
        counts = {f"venue_{k}": v for k, v in self.adapter.counts.items() if k != "quotes"}
        return {**self._connection.stats, **counts}

    @property
    def pending_batches(self) -> int:
        """Batches waiting for ``poll`` (at most ``max_pending``, plus one after ``stop``)."""
        return self._batcher.pending

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
            self._handoff.flush(force=True)  # whatever the loop left behind (normally nothing)

    def poll(self, timeout: float) -> Batch:
        """The next batch (records in arrival order and rejects), waiting up to ``timeout``
        seconds; ``(None, [])`` when nothing arrived."""
        return self._handoff.take(timeout)

    # --- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                runner.run(self._main())
        except BaseException as exc:  # never raise from the thread
            log.error("live thread failed", url=self.url, error=repr(exc))

    async def _main(self) -> None:
        self._wake_stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._handoff.attach(loop)
        self._loop = loop
        if self._stopping.is_set():
            return
        stopper = asyncio.create_task(self._wake_stop.wait())
        task: asyncio.Task[None] | None = None
        try:
            while not self._stopping.is_set():
                task = asyncio.create_task(self._connection.run())
                await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if stopper.done() or self._stopping.is_set():
                    break
                # Connection.run handles its own errors; this is the last line of defence.
                error = task.exception() if not task.cancelled() else None
                log.error("live loop failed, restarting", url=self.url, error=repr(error))
                await asyncio.wait({stopper}, timeout=self.settings.backoff_max)
        finally:
            for t in (task, stopper):
                if t is not None:
                    t.cancel()
            await asyncio.gather(*(t for t in (task, stopper) if t is not None),
                                 return_exceptions=True)
            self._handoff.flush(force=True)
            self._handoff.detach()
            self._loop = None
