"""Helpers for ``tests/system/test_faults.py``: a ring reader that keeps tickers, a websocket quote
server that can be killed and restarted on one port, garbage CSV rows, a small tmpfs, and waits
on conditions with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection

import ringbuffer
from engine.wsserver import WsServer

# --- a websocket server that can be killed and restarted --------------------------------------

BASE_NS = 1_759_449_597_290_000_000  # 2025-10-02 23:59:57.290


def quote(i: int) -> dict[str, Any]:
    """Live quote number ``i``: timestamp BASE + i microseconds, ticker ``Q<i % 11>-...``."""
    ns = BASE_NS + i * 1000
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs)) + f".{frac // 1000:06d}"
    return {
        "timestamp": stamp,
        "ticker": f"Q{i % 11}-USDT-SWAP@FLAP",
        "bid_price": i + 0.5,
        "ask_price": i + 0.75,
        "bid_amount": 1.0,
        "ask_amount": 2.0,
    }


def key(i: int) -> tuple[str, int]:
    """(ticker, timestamp ns) of quote ``i``, as a consumer of the ring sees it."""
    return f"Q{i % 11}-USDT-SWAP@FLAP", BASE_NS + i * 1000


Handler = Callable[["QuoteServer", ServerConnection, int], Coroutine[Any, Any, None]]


class QuoteServer(WsServer):
    """The shared test server (``engine.wsserver.WsServer``: 127.0.0.1, its own thread and
    loop) streaming numbered quotes; it can pause, go silent, be killed and restarted.

    :meth:`start` listens (on a free port the first time, then on that same port again),
    :meth:`kill` closes every connection and stops listening. Connection number n (counted over
    the server's lifetime) is served by ``handler(server, ws, n)``; the default handler
    :meth:`stream` sends quotes until the server is paused, killed, or the connection silenced.
    ``sent`` lists (ticker, timestamp) of every quote whose frame was handed to the socket, in
    order; ``frames`` counts every data frame sent (:meth:`send`).
    """

    def __init__(self, handler: Handler | None = None) -> None:
        super().__init__(self._dispatch)
        self.handler = handler or QuoteServer.stream
        self.sent: list[tuple[str, int]] = []
        self.next_id = 0
        self.sending = False  # stream() sends only while this is set
        self._silenced: set[ServerConnection] = set()
        self._lock = asyncio.Lock()  # held while a frame is sent, and while connections go

    async def _dispatch(self, ws: ServerConnection, n: int) -> None:
        await self.handler(self, ws, n)

    async def listen(self) -> None:
        """Listen (again) on the port; ``stream`` connections send at once."""
        await super().listen()
        self.sending = True

    def pause(self) -> None:
        """Stop sending (connections stay open); no frame is being sent when this returns."""

        async def go() -> None:
            async with self._lock:
                self.sending = False

        self.call(go())

    def resume(self) -> None:
        self.sending = True

    def silence(self) -> None:
        """The connections open now stay open but never send again (a half-dead feed)."""

        async def go() -> None:
            async with self._lock:
                self._silenced |= self.clients

        self.call(go())

    def kill(self, how: str = "close", *, code: int = 1001, reason: str = "restarting",
             timeout: float = 10.0) -> None:  # fmt: skip
        """Drop every connection and stop listening. ``how``: ``fin`` (TCP close without a
        websocket close frame), ``rst`` (TCP reset), ``close`` (close frame 1001 "restarting").
        No frame is half sent when the connections go; returns once the port is free."""

        async def go() -> bool:
            async with self._lock:
                self.sending = False
                self.drop(how, code=code, reason=reason)  # stream() handlers return
            return await self.wait_closed(timeout)

        ended = self.call(go(), timeout + 5)
        assert ended, f"the quote server's handlers did not return within {timeout} s"

    def close(self, timeout: float = 5.0) -> None:
        """Kill the server if it is up, end every task, stop the thread."""
        if self.listening:
            self.kill("close")
        super().close(timeout)

    # -- on the loop ---------------------------------------------------------------------------

    async def stream(self, ws: ServerConnection, n: int) -> None:
        """Send frames of 1 to 3 quotes every few milliseconds while ``sending``."""
        while True:
            async with self._lock:
                if not self.listening or ws in self._silenced:
                    break
                if self.sending:
                    k = 1 + self.next_id % 3
                    ids = range(self.next_id, self.next_id + k)
                    body = [quote(i) for i in ids]
                    await self.send(ws, json.dumps(body[0] if k == 1 else body))
                    self.next_id += k
                    self.sent.extend(key(i) for i in ids)
            await asyncio.sleep(0.003)
        await ws.wait_closed()


# --- garbage CSV rows ------------------------------------------------------------------------

CSV_HEADER = b",index,timestamp,ticker,ask_amount,ask_price,bid_price,bid_amount,latency\n"
_EPOCH = dt.datetime(1970, 1, 1)


@dataclass(frozen=True)
class Row:
    """One data line (without its line end); valid rows carry what the ring must show."""

    data: bytes
    kind: str
    ticker: str | None = None
    ns: int | None = None

    @property
    def valid(self) -> bool:
        return self.kind == "valid"


# No comma, quote, CR or LF (they change the row structure: see the xfail tests), no control
# characters, no lone surrogates.
_TICKER_CHARS = st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters=',"')


@st.composite
def _ticker(draw: st.DrawFn, lo: int = 1, hi: int = 64) -> str:
    text = draw(st.text(_TICKER_CHARS, min_size=1, max_size=hi))
    while len(text.encode()) > hi:
        text = text[:-1]
    return text + "X" * max(0, lo - len(text.encode()))


@st.composite
def _stamp(draw: st.DrawFn) -> tuple[str, int]:
    secs = draw(st.integers(-(2**33), 2**33))  # 1697 .. 2242
    digits = draw(st.integers(0, 9))
    frac = draw(st.integers(0, 10**digits - 1))
    sep = draw(st.sampled_from([" ", "T"]))
    text = (_EPOCH + dt.timedelta(seconds=secs)).strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    if digits:
        text += f".{frac:0{digits}d}"
    return text, secs * 10**9 + frac * 10 ** (9 - digits)


_FLOAT = st.floats(allow_nan=False, allow_infinity=False).map(repr)
_PRICE = st.one_of(_FLOAT, st.sampled_from(
    ["0", "-1.5", "3.9e-08", "inf", "-inf", "1e400", "-1e400", " 2.5 ", "+7", ".5", "5."]
))  # fmt: skip
_LATENCY = st.one_of(
    st.floats(min_value=0, allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["0", "120", "24.435913010256233", "1e12", "-0"]),
)
_AMOUNT = st.one_of(_PRICE, st.sampled_from(["", "nan", "abc", "NaN", "1e999"]))
_BAD_UTF8 = st.sampled_from([b"\xff", b"\xc0\x80", b"\xfe", b"\xf5\x80\x80\x80", b"\xc3(",
                             b"\xed\xa0\x80"])  # fmt: skip

GARBAGE_KINDS = ("bytes", "utf8", "nan", "empty", "columns", "long", "timestamp", "negative",
                 "notnumber", "infinite")  # fmt: skip


@st.composite
def _fields(draw: st.DrawFn) -> tuple[list[str], int]:
    text, ns = draw(_stamp())
    fields = [str(draw(st.integers(0, 99999))), str(draw(st.integers(0, 99999))), text,
              draw(_ticker()), draw(_AMOUNT), draw(_PRICE), draw(_PRICE), draw(_AMOUNT),
              draw(_LATENCY)]  # fmt: skip
    return fields, ns


@st.composite
def valid_row(draw: st.DrawFn) -> Row:
    fields, ns = draw(_fields())
    return Row(",".join(fields).encode(), "valid", fields[3], ns)


@st.composite
def garbage_row(draw: st.DrawFn, kind: str) -> Row:
    """A row the engine must reject, of the given kind."""
    f, _ = draw(_fields())
    if kind == "bytes":  # random bytes, the CSV structure characters left out
        data = draw(st.binary(min_size=1, max_size=80)).translate(None, b'\n\r"')
        return Row(data or b"\x00", kind)
    if kind == "utf8":  # invalid UTF-8 in a field the engine reads
        col = draw(st.sampled_from([2, 3, 5, 6, 8]))
        cut = f[col][: draw(st.integers(0, len(f[col])))].encode()
        parts = [x.encode() for x in f]
        tail = draw(st.binary(max_size=4)).translate(None, b'\n\r",')
        parts[col] = cut + draw(_BAD_UTF8) + tail
        return Row(b",".join(parts), kind)
    if kind == "nan":
        f[draw(st.sampled_from([5, 6, 8]))] = draw(st.sampled_from(
            ["nan", "NaN", "-nan", "nan(123)", " NAN "]
        ))  # fmt: skip
    elif kind == "empty":
        col = draw(st.sampled_from([2, 3, 5, 6, 8]))
        f[col] = "" if col == 3 else draw(st.sampled_from(["", " ", "\t"]))
    elif kind == "columns":
        if draw(st.booleans()):
            del f[draw(st.integers(0, 8))]
        else:
            f.insert(draw(st.integers(0, 9)), draw(st.sampled_from(["", "1", "x"])))
    elif kind == "long":
        f[3] = draw(_ticker(65, 300))
    elif kind == "timestamp":
        f[2] = draw(st.sampled_from(
            ["2025-02-30 00:00:00", "2025-01-01 25:00:00", "2025-01-01", "2025-01-01 00:00:00Z",
             "3000-01-01 00:00:00", "yesterday", "2025-01-01 00:00:00.1234567890",
             "2025-1-01 00:00:00", "9999-99-99 99:99:99"]
        ))  # fmt: skip
    elif kind == "infinite":  # an infinite latency cannot be paced: rejected (issue 11)
        f[8] = draw(st.sampled_from(["inf", "1e400", "Infinity", "+INF"]))
    elif kind == "negative":
        f[8] = draw(st.sampled_from(["-1", "-0.001", "-inf", "-1e400", "-5e-324"]))
    elif kind == "notnumber":
        f[draw(st.sampled_from([5, 6, 8]))] = draw(st.sampled_from(
            ["abc", "0x10", "1.2.3", "--1", "1e", "infinit", "true", "1_000", "½"]
        ))  # fmt: skip
    return Row(",".join(f).encode(), kind)


@st.composite
def garbage_file(draw: st.DrawFn) -> list[Row]:
    """Data rows mixing valid and garbage rows; every kind of garbage at least once."""
    rows = [draw(garbage_row(kind)) for kind in GARBAGE_KINDS]
    extra = draw(st.lists(
        st.one_of(valid_row(), st.sampled_from(GARBAGE_KINDS).flatmap(garbage_row)),
        min_size=5, max_size=40,
    ))  # fmt: skip
    return draw(st.permutations(rows + extra))


def csv_bytes(rows: list[Row]) -> bytes:
    return CSV_HEADER + b"".join(r.data + b"\n" for r in rows)


# --- a small file system -----------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (skips the test when mounting is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                          str(path)], capture_output=True, text=True)  # fmt: skip
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {res.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def grow_tmpfs(path: Path, size: str) -> None:
    """Give the tmpfs at ``path`` more room (what freeing disk space does)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def fill(folder: Path) -> Path:
    """Write a file into ``folder`` until its file system is full; returns the file."""
    filler = folder / "filler"
    chunk = b"\0" * 4096
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            if exc.errno != 28:  # ENOSPC
                raise
    return filler


def shm_segments() -> set[str]:
    """Names of the rings whose segments are in the shared-memory folder now."""
    return set(ringbuffer.segments())


def stderr_field(text: str, message: str, name: str) -> str:
    """Value of ``name=`` on the last stderr line that contains ``message``."""
    line = [ln for ln in text.splitlines() if message in ln][-1]
    return next(w.split("=", 1)[1] for w in line.split() if w.startswith(f"{name}="))

