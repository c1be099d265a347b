"""``engine.wsserver.WsServer``, the one websocket server of the feed, the tests and the
benchmarks: connections numbered and counted, the three ways of dropping them, listening again
on the same port. Every receive is bounded; the server runs in its own thread.
"""

from __future__ import annotations

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from engine.wsserver import WsServer
from tests.support import wait_until


async def greet(ws: ServerConnection, n: int) -> None:
    """Say which connection this is, then hold it until it goes."""
    await ws.send(f"connection {n}")
    await ws.wait_closed()


def client(server: WsServer) -> ClientConnection:
    return connect(server.url, open_timeout=5, proxy=None)


def test_connections_are_numbered_counted_and_held() -> None:
    with WsServer(greet) as server:
        assert server.listening and server.port > 0
        with client(server) as a, client(server) as b:
            assert a.recv(timeout=5) == "connection 1"
            assert b.recv(timeout=5) == "connection 2"
            assert server.connections == 2 and len(server.clients) == 2


@pytest.mark.parametrize("how", ["close", "fin", "rst"])
def test_kill_drops_every_client_then_listens_again_on_the_same_port(how: str) -> None:
    with WsServer(greet) as server:
        port = server.port
        with client(server) as ws:
            assert ws.recv(timeout=5) == "connection 1"
            server.kill(how, reason="restarting")
            assert not server.listening and not server.clients
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
        rcvd = closed.value.rcvd
        if how == "close":
            assert rcvd is not None and (rcvd.code, rcvd.reason) == (1001, "restarting")
        else:
            assert rcvd is None, "no close frame: the TCP connection just went"
        server.start()
        assert server.port == port
        with client(server) as ws:
            assert ws.recv(timeout=5) == "connection 2"


def test_send_counts_frames_and_a_bad_way_to_drop_is_refused() -> None:
    async def two(ws: ServerConnection, n: int) -> None:
        await server.send(ws, "a")
        await server.send(ws, b"b", text=False)
        await ws.wait_closed()

    with WsServer(two) as server, client(server) as ws:
        assert [ws.recv(timeout=5), ws.recv(timeout=5)] == ["a", b"b"]
        # The client can hold a frame before the server's thread has counted it: wait, bounded.
        wait_until(lambda: server.frames == 2, "the server to count both frames")
        with pytest.raises(ValueError, match="close, fin, rst"):
            server.kill("politely")
        assert server.listening
