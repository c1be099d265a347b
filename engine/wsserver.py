"""One websocket server for ``python -m engine.feed``, the tests and the benchmarks.

:class:`WsServer` is websockets' asyncio server on one port with a handler coroutine per
connection: connection number ``n`` (counted over the server's lifetime, from 1) is served by
``await handler(ws, n)``; a ``ConnectionClosed`` escaping the handler ends that connection
quietly. It counts connections (``connections``), holds the open ones (``clients``), counts the
data frames sent through :meth:`WsServer.send` (``frames``), and drops every client on demand
in three ways: ``close`` (a close frame, code 1001 unless told), ``fin`` (TCP closed without a
close frame) and ``rst`` (TCP aborted). It listens on 127.0.0.1 and a free port unless told;
after a drop it listens again on the same port.

It runs either on the caller's event loop (the feed, the benchmark's server process)::

    server = WsServer(handler, host=host, port=port, ping_timeout=None)
    await server.listen()              # OSError when the port cannot be had
    ...
    closed = await server.shutdown(timeout=3)

or in a thread of its own, with its own loop, driven from the test's thread::

    with WsServer(handler) as server:  # start() ... close()
        server.kill("rst")             # drop every client, stop listening
        server.start()                 # listen again, same port
        server.call(coroutine)         # run something on the server's loop
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

Handler = Callable[[ServerConnection, int], Awaitable[None]]
#: The ways :meth:`WsServer.drop` can end the connections.
DROPS = ("close", "fin", "rst")


class WsServer:
    """A websockets server: a handler per connection, counted, droppable (module docstring).

    ``options`` go to ``websockets.asyncio.server.serve`` (``compression`` is off unless
    given). The thread that :meth:`start` runs has asyncio's own event loop.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **options: Any,
    ) -> None:
        self.host = host
        self.port = port
        self.connections = 0
        self.frames = 0
        self.clients: set[ServerConnection] = set()
        self._handler = handler
        self._options: dict[str, Any] = {"compression": None, **options}
        self._server: Server | None = None
        self._closing: Server | None = None  # dropped, its handlers maybe still running
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of the first listening socket (the port bound when 0 was asked)."""
        sockets = self._server.sockets if self._server is not None else ()
        if sockets:
            name = sockets[0].getsockname()
            return str(name[0]), int(name[1])
        return self.host, self.port

    @property
    def listening(self) -> bool:
        return self._server is not None

    # --- on the server's loop ---------------------------------------------------------------

    async def listen(self) -> None:
        """Listen on ``host`` and ``port`` (the port bound the first time when it was 0)."""
        if self._server is not None:
            return
        self._server = await serve(self._serve, self.host, self.port, **self._options)
        self.port = self.address[1]

    async def send(self, ws: ServerConnection, frame: str | bytes, *, text: bool = True) -> None:
        """Send one data frame and count it in ``frames``."""
        await ws.send(frame, text=text)
        self.frames += 1

    def drop(self, how: str = "close", *, code: int = 1001, reason: str = "") -> None:
        """Stop listening and end every connection: ``close`` sends a close frame (``code``,
        ``reason``), ``fin`` closes TCP without one, ``rst`` aborts TCP (ValueError for
        anything else). Returns at once; :meth:`wait_closed` waits for the handlers."""
        if how not in DROPS:
            raise ValueError(f"how must be one of {', '.join(DROPS)}, not {how!r}")
        server, self._server = self._server, None
        if server is None:
            return
        self._closing = server
        if how == "close":
            server.close(close_connections=True, code=code, reason=reason)
            return
        server.close(close_connections=False)
        for ws in list(self.clients):
            if how == "fin":
                ws.transport.close()
            else:
                ws.transport.abort()

    async def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the connections dropped are closed and their handlers returned; False
        when that took longer than ``timeout`` seconds."""
        server = self._closing
        if server is None:
            return True
        try:
            async with asyncio.timeout(timeout):
                await server.wait_closed()
        except TimeoutError:
            return False
        if self._closing is server:
            self._closing = None
        return True

    async def shutdown(
        self, how: str = "close", *, code: int = 1001, reason: str = "",
        timeout: float | None = None,
    ) -> bool:  # fmt: skip
        """:meth:`drop`, then :meth:`wait_closed`."""
        self.drop(how, code=code, reason=reason)
        return await self.wait_closed(timeout)

    async def _serve(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.clients.add(ws)
        try:
            with contextlib.suppress(ConnectionClosed):
                await self._handler(ws, self.connections)
        finally:
            self.clients.discard(ws)

    # --- from another thread ----------------------------------------------------------------

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 15.0) -> Any:
        """Run ``coro`` on the server's thread; its result (or exception) within ``timeout``."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("the server's thread is not running: start() it first")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> Self:
        """Listen from a thread of its own (made on first use), at once: the port is bound
        when this returns."""
        if self._thread is None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._thread = threading.Thread(target=loop.run_forever, name="ws-server",
                                            daemon=True)  # fmt: skip
            self._thread.start()
        self.call(self.listen())
        return self

    def kill(self, how: str = "close", *, code: int = 1001, reason: str = "",
             timeout: float = 10.0) -> None:  # fmt: skip
        """Drop every connection and stop listening (see :meth:`drop`); returns once the
        handlers have returned and the port is free. TimeoutError after ``timeout`` seconds."""
        if not self.call(self.shutdown(how, code=code, reason=reason, timeout=timeout),
                         timeout + 5):  # fmt: skip
            raise TimeoutError(f"the server's handlers did not return within {timeout} s")

    def close(self, timeout: float = 5.0) -> None:
        """Drop the clients if listening, end every task still on the loop, stop the thread.
        RuntimeError when the thread does not stop within ``timeout`` seconds."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def end() -> None:
            await self.shutdown(timeout=timeout)
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.call(end(), timeout + 5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"the websocket server's thread did not stop within {timeout} s")
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
