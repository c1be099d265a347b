"""A venue's websocket endpoint played from a fixture file (``tests/engine/venues/*.json``).

:class:`FakeVenue` speaks the protocol a fixture describes: it waits for the subscription
messages the venue's documentation asks for (``sent_on_connect``; ``"$id"`` matches any request
id and is echoed in the acknowledgements, ``"$any"`` matches anything), answers the client's
heartbeats (``heartbeat``: what the client sends, what the server answers), then sends the
acknowledgements and the fixture's frames, each once over the server's life. It can drop the
first connection after ``drop_after`` frames (a close frame with 1001, as a venue going down
for maintenance), and, as OKX does, close a connection that sent no heartbeat for
``heartbeat_deadline`` seconds. Everything the client sent is kept in ``received``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any, Self

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from engine.wsserver import WsServer

FIXTURES = Path(__file__).resolve().parent.parent / "engine" / "venues"


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.json"))


def frame_text(frame: dict[str, Any]) -> str:
    """A fixture frame as sent: ``{"json": value}`` or ``{"text": "raw"}``."""
    return frame["text"] if "text" in frame else json.dumps(frame["json"])


def matches(actual: Any, template: Any, ids: list[Any]) -> bool:
    """``actual`` has the shape of ``template`` (``"$id"`` and ``"$any"`` match anything; the
    values matched by ``"$id"`` are appended to ``ids``)."""
    if template in ("$id", "$any"):
        if template == "$id":
            ids.append(actual)
        return True
    if isinstance(template, dict):
        return (isinstance(actual, dict) and actual.keys() == template.keys()
                and all(matches(actual[k], v, ids) for k, v in template.items()))  # fmt: skip
    if isinstance(template, list):
        pairs = zip(actual, template, strict=False)
        return (isinstance(actual, list) and len(actual) == len(template)
                and all(matches(a, t, ids) for a, t in pairs))  # fmt: skip
    return bool(actual == template)


def fill(template: Any, value: Any) -> Any:
    """``template`` with every ``"$id"`` replaced by ``value``."""
    if template == "$id":
        return value
    if isinstance(template, dict):
        return {k: fill(v, value) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, value) for v in template]
    return template


class _Conn:
    def __init__(self, expected: list[Any]) -> None:
        self.expected = list(expected)
        self.ids: list[Any] = []
        self.subscribed = asyncio.Event()
        if not self.expected:
            self.subscribed.set()
        self.last_heartbeat = asyncio.get_running_loop().time()


class FakeVenue:
    """The fixture's venue on 127.0.0.1 and a free port (module docstring)."""

    def __init__(
        self,
        fixture: dict[str, Any],
        *,
        drop_after: int | None = None,
        heartbeat_deadline: float | None = None,
    ) -> None:
        self.fixture = fixture
        self.frames = [frame_text(f) for f in fixture["frames"]]
        self.drop_after = drop_after
        self.heartbeat_deadline = heartbeat_deadline
        self.received: list[tuple[int, str]] = []  # (connection, text) of every client message
        self.unexpected: list[tuple[int, str]] = []
        self.subscriptions: list[int] = []  # connections whose subscription was complete
        self.heartbeats: Counter[int] = Counter()  # client heartbeats by connection
        self.deadline_closes = 0
        self.sent = 0  # fixture frames sent, over all connections
        self.server = WsServer(self._handler)

    def __enter__(self) -> Self:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.close()

    @property
    def url(self) -> str:
        return self.server.url + self.fixture["path"]

    @property
    def connections(self) -> int:
        return self.server.connections

    async def _handler(self, ws: ServerConnection, n: int) -> None:
        conn = _Conn(self.fixture["sent_on_connect"])
        tasks = [asyncio.create_task(self._read(ws, n, conn))]
        if self.heartbeat_deadline is not None:
            tasks.append(asyncio.create_task(self._watch(ws, conn, self.heartbeat_deadline)))
        try:
            await conn.subscribed.wait()
            self.subscriptions.append(n)
            request_id = conn.ids[0] if conn.ids else None
            for ack in self.fixture["acks"]:
                await ws.send(json.dumps(fill(ack, request_id)))
            while self.sent < len(self.frames):
                if n == 1 and self.sent == self.drop_after:
                    await ws.close(1001, "going away for maintenance")
                    return
                await ws.send(self.frames[self.sent])
                self.sent += 1
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _read(self, ws: ServerConnection, n: int, conn: _Conn) -> None:
        heartbeat = self.fixture.get("heartbeat")
        try:
            async for message in ws:
                text = message if isinstance(message, str) else message.decode()
                self.received.append((n, text))
                try:
                    doc: Any = json.loads(text)
                except ValueError:
                    doc = text
                if heartbeat is not None and matches(doc, heartbeat["client"], []):
                    self.heartbeats[n] += 1
                    conn.last_heartbeat = asyncio.get_running_loop().time()
                    answer = heartbeat["server"]
                    await ws.send(answer if isinstance(answer, str) else json.dumps(answer))
                elif conn.expected and matches(doc, conn.expected[0], conn.ids):
                    conn.expected.pop(0)
                    if not conn.expected:
                        conn.subscribed.set()
                else:
                    self.unexpected.append((n, text))
        except ConnectionClosed:
            pass

    async def _watch(self, ws: ServerConnection, conn: _Conn, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() - conn.last_heartbeat < deadline:
            await asyncio.sleep(deadline / 20)
        self.deadline_closes += 1
        await ws.close(4000, "no heartbeat")
