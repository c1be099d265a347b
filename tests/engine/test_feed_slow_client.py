"""``python -m engine.feed`` with a client that never reads beside one that does: the stuck
client is dropped with a logged reason once its bounded send buffer is full, and the other
keeps receiving (issue 11 item 7)."""

from __future__ import annotations

import base64
import os
import re
import socket
import threading
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as sync_connect

from ..support import wait_until
from .test_feed import FeedProcess, write_csv

#: What the reading client must receive after the stuck one connected: far more than the stuck
#: client's socket buffers (the kernel's at most 4 MiB here) and the feed's own bound hold.
MUST_RECEIVE = 24 << 20


def stuck_client(url: str) -> socket.socket:
    """A TCP client that completes the websocket handshake and then never reads (its receive
    buffer made small, so the kernel's buffers fill soon)."""
    host, port = url.removeprefix("ws://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:  # the 101 response, a byte at a time: nothing beyond it
        byte = sock.recv(1)
        assert byte, f"the feed closed during the handshake: {head!r}"
        head += byte
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


class Reader(threading.Thread):
    """A websocket client that reads every frame and counts the bytes (connected on start)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.ws: ClientConnection | None = None
        self.bytes = 0
        self.frames = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with sync_connect(self.url, open_timeout=10, proxy=None, max_size=None) as ws:
                self.ws = ws
                while True:
                    data = ws.recv(timeout=30)
                    self.bytes += len(data)
                    self.frames += 1
        except ConnectionClosed:
            pass
        except BaseException as exc:  # a stall shows up as a TimeoutError here
            self.error = exc

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        self.join(10)


@pytest.mark.parametrize("speed", ["1", "max"])
def test_a_client_that_never_reads_is_dropped_and_the_others_keep_receiving(
    tmp_path: Path, speed: str
) -> None:
    """``--speed 1``: dropped as soon as its buffer is full; ``--speed max`` (the slowest client
    sets the pace): dropped once its full buffer has not moved for 2 s."""
    # 3,000 quotes, 100 a timestamp 1.5 ms apart: a 45 ms pass of ~0.4 MB, looped (~9 MB/s at
    # speed 1).
    path = write_csv(tmp_path / "busy.csv", 3000, same=100)
    with FeedProcess("--csv", str(path), "--port", "0", "--speed", speed, "--loop") as proc:
        reader = Reader(proc.url)
        reader.start()
        try:
            wait_until(lambda: reader.frames > 0, "the first frame for the reading client")
            stuck = stuck_client(proc.url)
            try:
                peer = "{}:{}".format(*stuck.getsockname())
                proc.wait_line(rf"client connected.* peer={peer} ")
                start = reader.bytes
                wait_until(
                    lambda: reader.bytes - start >= MUST_RECEIVE or reader.error is not None,
                    f"{MUST_RECEIVE} bytes for the reading client beside a stuck one",
                )
                assert reader.error is None, f"the reading client stalled: {reader.error!r}"
                line = proc.wait_line(rf"client dropped.* peer={peer} .*").string
            finally:
                stuck.close()
        finally:
            reader.close()
        assert proc.terminate() == 0
    behind = re.search(r" behind_bytes=(\d+) behind_frames=(\d+)", line)
    assert behind is not None, line
    assert int(behind[1]) > 0 and int(behind[2]) > 0, line
