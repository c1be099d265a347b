"""The venue on the event loop: every command from every port, one at a time, acknowledged only
once durable.

``Sequencer.submit(command, origin)`` stamps the receive time, applies the command at once (the
matching core is synchronous and fast, so commands from all ports are serialised by the event
loop itself: no locks) and returns a future of its events. A refused command's future is done at
once (nothing to make durable). An accepted one waits for the group commit that covers it:

- while no fsync is running, the journal is written (``Venue.flush``) and its fsync started in a
  thread of its own (``Venue.sync``: it releases the GIL, so matching goes on meanwhile);
- commands accepted while an fsync runs wait for the next one: the batch grows with the load
  (group commit), and the latency of a command is at most two fsyncs.

When an fsync returns, its batch is *published*, in execution order: each listener (the Wood
ports, the websocket feeds) gets the batch's :class:`Published` commands and events, then each
command's future is resolved (the REST answer). Nothing leaves the venue before it is on disk,
market data included, so no client ever saw what a crash could undo.

A failed journal write (a full disk) voids the commands not yet written (their futures raise
:class:`JournalWriteError`; the venue rebuilt its state from the disk). A failed fsync is fatal:
every waiting future fails and :attr:`Sequencer.failed` is set; the program stops with exit 1 and
a restart recovers from the journal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from exchange._journal import JournalWriteError
from exchange._model import Command, Event, Rejected
from exchange._venue import Venue

log = logging.getLogger("exchange")


class Published(NamedTuple):
    """One durable command as the listeners see it."""

    origin: Any  # who sent it (a Wood connection, or None)
    command: Command
    time: int
    events: list[Event]


Listener = Callable[[list[Published]], None]


class VenueStopped(RuntimeError):
    """The venue cannot take commands any more (a fatal journal error, or it is stopping)."""


class Sequencer:
    """Serialises commands onto the venue and releases them once durable (see the module)."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.listeners: list[Listener] = []
        self._waiting: list[tuple[asyncio.Future[list[Event]], Published]] = []
        self._syncing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_time = 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="journal-fsync")
        self.failed: BaseException | None = None
        self.closed = False
        self.commits = 0

    def submit(
        self, command: Command, origin: Any = None
    ) -> tuple[list[Event], asyncio.Future[list[Event]]]:
        """Apply ``command`` now: its events (to keep, not to send yet) and a future of them,
        resolved once they are durable (at once for a refused command)."""
        if self.failed is not None or self.closed:
            raise VenueStopped("the venue is stopping")
        now = time.time_ns()
        if now <= self._last_time:  # receive times never go back (a clock step)
            now = self._last_time + 1
        self._last_time = now
        events = self.venue.submit(command, now)
        future: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        if type(events[0]) is Rejected:
            future.set_result(events)
            return events, future
        self._waiting.append((future, Published(origin, command, now, events)))
        if not self._syncing:
            self._start_sync()
        return events, future

    def _start_sync(self) -> None:
        try:
            upto = self.venue.flush()
        except JournalWriteError as e:
            waiting, self._waiting = self._waiting, []
            for future, _ in waiting:
                future.set_exception(e)
            return
        batch, self._waiting = self._waiting, []
        self._syncing = True
        self._idle.clear()
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self._executor, self.venue.sync, upto)
        done.add_done_callback(lambda f: self._synced(f, batch))

    def _synced(self, done: asyncio.Future[None], batch: list[Any]) -> None:
        self._syncing = False
        error = done.exception()
        if error is not None:
            self.failed = error
            log.error("journal fsync failed: stopping", extra={"fields": {"error": repr(error)}})
            for future, _ in batch + self._waiting:
                future.set_exception(VenueStopped(f"journal fsync failed: {error}"))
            self._waiting = []
            self._idle.set()
            return
        self.commits += 1
        published = [pub for _, pub in batch]
        for listener in self.listeners:
            try:
                listener(published)
            except Exception:
                log.exception("a market-data listener failed")
        for future, pub in batch:
            if not future.done():
                future.set_result(pub.events)
        if self._waiting:
            self._start_sync()
        else:
            self.venue.maybe_snapshot()
            self._idle.set()

    async def drain(self) -> None:
        """Wait until every accepted command is durable and published."""
        while self._waiting or self._syncing:
            await self._idle.wait()
            if self._waiting and not self._syncing:
                self._start_sync()

    async def close(self) -> None:
        """Refuse new commands, finish what is in flight, snapshot, release the data folder."""
        self.closed = True
        await self.drain()
        self._executor.shutdown(wait=True)
        if self.failed is None:
            self.venue.close()
