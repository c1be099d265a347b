"""``python -m exchange`` as a child process of a test, on free ports, with small clients for
its REST API and its Wood ports."""

from __future__ import annotations

import json
import re
import signal
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from . import WAIT
from .programs import Proc

LISTENING = r"listening http=(\d+) private=(\d+) public=(\d+)"


class VenueProc:
    """A running venue: ``http``, ``private``, ``public`` ports, ``url``, a REST ``client``.

    The ports are free ones the venue picks (0), new at each start, unless ``http_port`` is
    given: then a restart comes back on the same HTTP port (a browser page reconnects to it).
    """

    def __init__(self, data_dir: Path, *args: str, http_port: int = 0) -> None:
        self.data_dir = data_dir
        self.args = args
        self.http_port = http_port
        self.proc = self._start()

    def _start(self) -> Proc:
        proc = Proc("exchange", ["--http-port", str(self.http_port), "--private-port", "0",
                                 "--public-port", "0", "--data-dir", str(self.data_dir),
                                 *self.args])  # fmt: skip
        match = re.search(LISTENING, proc.wait_log(LISTENING))
        assert match is not None
        self.http, self.private, self.public = (int(g) for g in match.groups())
        self.url = f"http://127.0.0.1:{self.http}"
        self.client = httpx.Client(base_url=self.url, timeout=WAIT)
        return proc

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        if body is not None and not isinstance(body, str | bytes):
            body = json.dumps(body)
        return self.client.post(path, content=body, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def state(self) -> dict[str, Any]:
        return decimals(self.get("/api/debug/state"))

    def stop(self) -> int:
        """SIGTERM; the exit code."""
        self.client.close()
        self.proc.signal(signal.SIGTERM)
        return self.proc.wait()

    def kill(self) -> None:
        self.client.close()
        self.proc.kill()

    def restart(self) -> None:
        self.proc = self._start()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick; it may be taken again later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def decimals(response: httpx.Response) -> Any:
    """A JSON answer with its numbers as Decimal (exactly as written)."""
    return json.loads(response.content, parse_float=Decimal)


class Wood:
    """A line client of a Wood port (blocking socket, bounded reads)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.file = self.sock.makefile("rb")

    def send(self, message: Any) -> None:
        line = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.sock.sendall(line.rstrip(b"\n") + b"\n")

    def recv(self) -> dict[str, Any]:
        line = self.file.readline()
        assert line, "the venue closed the connection"
        message: dict[str, Any] = json.loads(line, parse_float=Decimal)
        return message

    def recv_raw(self) -> bytes:
        return bytes(self.file.readline())

    def close(self) -> None:
        self.file.close()
        self.sock.close()
