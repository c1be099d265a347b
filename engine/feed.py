"""``python -m engine.feed``: a websocket server that plays a CSV as live JSON quotes.

The CSV (live layout, contract section 1) is loaded once; rejected rows are logged with their
file and line and skipped. One shared playback starts when the first client connects: every
client gets the quotes sent from the moment it connected on (live semantics). ``--speed 1``
follows the timestamps, ``--speed N`` N times faster, ``--speed max`` as fast as the clients
take the frames. Quotes with the same timestamp go out together
as one JSON array frame (``--frame array``, at most ``MAX_OBJECTS`` objects a frame) or one
object a frame (``--frame object``). At the end the feed starts again with ``--loop``, else it
keeps the clients connected but idle. SIGINT/SIGTERM close every client with code 1001 and
exit 0.

Slow clients: each client has its own send buffer of at most ``MAX_BEHIND_BYTES`` (8 MiB) of
frames, beyond what the kernel's socket buffers hold, drained by a writer task of its own, so
one client's pace never holds the others. When a frame does not fit, the client is too far
behind: it is dropped (a close frame with code 1008 if it can still take one, else the TCP
connection is aborted) with a warning naming its address and how far behind it was (bytes and
frames), and the others go on at the feed's pace. With ``--speed max`` the slowest client sets
the pace, as before: the playback waits for room in every buffer, and only a client whose full
buffer has not moved for ``STALL_SECONDS`` (2 s) is dropped.

The encoding is pure and tested directly: ``format_timestamps``, ``encode_objects`` and
``encode_frames`` turn table rows into the exact JSON of the contract's example.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import errno
import json
import logging
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from common.cli import Parser, UsageError, loop_factory, run_program
from common.log import get_logger
from common.schema import REQUIRED_COLUMNS, Mode
from engine.historical import load_historical
from engine.pacing import parse_speed
from engine.venues import EMULATED, Emulation
from engine.wsserver import WsServer

log = get_logger("feed")

PROG = "python -m engine.feed"
DEFAULT_CSV = "data/live_sample.csv"
#: Largest number of quote objects in one array frame (a bigger group is split).
MAX_OBJECTS = 1000
#: Rows encoded at a time during playback (memory stays flat for any file size).
BLOCK_ROWS = 4096
#: Seconds between progress lines.
PROGRESS_INTERVAL = 5.0
#: Rejected rows logged one by one before only the count is reported.
MAX_LOGGED_REJECTS = 100
#: Bytes of frames a client's send buffer holds (beyond the kernel's socket buffers); a client
#: further behind is dropped.
MAX_BEHIND_BYTES = 8 << 20
#: ``--speed max``: seconds a client's full buffer may stay unmoved before it is dropped.
STALL_SECONDS = 2.0
#: Seconds a dropped client gets to take its close frame before its TCP connection is aborted.
DROP_CLOSE_TIMEOUT = 1.0

FrameMode = Literal["array", "object"]

_ws_logger = logging.getLogger("engine.feed.websockets")
_ws_logger.addHandler(logging.NullHandler())
_ws_logger.propagate = False


# --- encoding (pure) --------------------------------------------------------------------------


def format_timestamps(ns: np.ndarray) -> list[str]:
    """int64 UTC nanoseconds as ``YYYY-MM-DD HH:MM:SS.ffffff``: at least 6 fraction digits,
    more (up to 9) only when the value needs them, so the text parses back to the same ns.
    Runs of equal values (quotes due together) are formatted once."""
    ns = np.asarray(ns, dtype=np.int64)
    n = len(ns)
    if n == 0:
        return []
    heads = np.flatnonzero(ns[1:] != ns[:-1]) + 1
    heads = np.concatenate([[0], heads])
    distinct = ns[heads]
    whole_us = (distinct % 1000 == 0).tolist()
    text = np.datetime_as_string(distinct.astype("datetime64[ns]"), unit="ns")
    chars = text.view("<U1").reshape(len(distinct), -1)
    chars[:, 10] = " "  # YYYY-MM-DDTHH:MM:SS.fffffffff -> a space for the T
    texts = text.tolist()
    for i, s in enumerate(texts):
        if s.startswith("NaT"):  # numpy reads the int64 minimum as "not a time"
            s = _format_one(int(distinct[i]))
        texts[i] = s[:-3] if whole_us[i] else s[:26] + s[26:].rstrip("0")
    if len(heads) == n:
        return texts
    counts = np.diff(np.append(heads, n))
    return np.repeat(np.array(texts, dtype=object), counts).tolist()


def _format_one(ns: int) -> str:
    """``YYYY-MM-DD HH:MM:SS.fffffffff`` of one nanosecond time, without numpy."""
    secs, frac = divmod(ns, 1_000_000_000)
    days, rest = divmod(secs, 86400)
    date = (np.datetime64(0, "D") + np.timedelta64(days, "D")).astype(str)
    return f"{date} {rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}.{frac:09d}"


def _number_texts(values: np.ndarray) -> list[str]:
    """Floats as JSON numbers (Python ``repr``); inf/-inf as JSON strings, which the contract
    allows for numbers and JSON numbers cannot hold."""
    texts = list(map(repr, values.tolist()))
    finite = np.isfinite(values)
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            texts[i] = json.dumps(texts[i])  # "inf", "-inf", "nan"
    return texts


def _amount_texts(key: str, values: np.ndarray) -> list[str]:
    """``, "key": value`` per row, or ``""`` where the amount is NaN (omitted)."""
    prefix = f', "{key}": '
    texts = [prefix + t for t in _number_texts(values)]
    missing = np.isnan(values)
    if missing.any():
        for i in np.flatnonzero(missing).tolist():
            texts[i] = ""
    return texts


def _ticker_texts(column: pa.ChunkedArray | pa.Array) -> list[str]:
    """Tickers as JSON strings, escaping each distinct ticker once."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not pa.types.is_dictionary(column.type):
        column = column.dictionary_encode()
    escaped = np.array(
        [json.dumps(t, ensure_ascii=False) for t in column.dictionary.to_pylist()] or [""],
        dtype=object,
    )
    indices = column.indices.to_numpy(zero_copy_only=False)
    return escaped[indices].tolist()


def encode_objects(table: pa.Table) -> list[str]:
    """One JSON object text per row of a ``TABLE_SCHEMA`` table, exactly as in the contract:
    ``{"timestamp": "...", "ticker": "...", "bid_price": 1.5, "ask_price": 1.6,
    "bid_amount": 2.0, "ask_amount": 3.0}``; NaN amounts are left out."""
    if table.num_rows == 0:
        return []
    stamps = format_timestamps(table.column("timestamp").to_numpy())
    tickers = _ticker_texts(table.column("ticker"))
    bids = _number_texts(table.column("bid_price").to_numpy())
    asks = _number_texts(table.column("ask_price").to_numpy())
    bid_amounts = _amount_texts("bid_amount", table.column("bid_amount").to_numpy())
    ask_amounts = _amount_texts("ask_amount", table.column("ask_amount").to_numpy())
    return [
        f'{{"timestamp": "{t}", "ticker": {k}, "bid_price": {b}, "ask_price": {a}{ba}{aa}}}'
        for t, k, b, a, ba, aa in zip(
            stamps, tickers, bids, asks, bid_amounts, ask_amounts, strict=True
        )
    ]


def group_starts(timestamps: np.ndarray) -> np.ndarray:
    """Start rows of the runs of equal timestamps (quotes due together), plus the end."""
    ts = np.asarray(timestamps)
    if len(ts) == 0:
        return np.zeros(1, np.int64)
    starts = np.flatnonzero(ts[1:] != ts[:-1]) + 1
    return np.concatenate([[0], starts, [len(ts)]]).astype(np.int64)


def encode_frames(
    table: pa.Table, frame: FrameMode = "array", max_objects: int = MAX_OBJECTS
) -> list[tuple[int, bytes]]:
    """``(timestamp_ns, frame)`` for the rows of ``table`` in order: in ``array`` mode one JSON
    array per run of equal timestamps (split after ``max_objects``), in ``object`` mode one
    object per frame. Frames are UTF-8 bytes to send as text."""
    objects = encode_objects(table)
    ts = table.column("timestamp").to_numpy()
    if frame == "object":
        return [(t, o.encode()) for t, o in zip(ts.tolist(), objects, strict=True)]
    bounds = group_starts(ts).tolist()
    frames = []
    for start, end in pairwise(bounds):
        t = int(ts[start])
        for s in range(start, end, max_objects):
            body = ", ".join(objects[s : min(end, s + max_objects)])
            frames.append((t, f"[{body}]".encode()))
    return frames


def blocks(timestamps: np.ndarray, rows: int = BLOCK_ROWS) -> Iterator[tuple[int, int]]:
    """``(start, end)`` row ranges of about ``rows`` rows that never split a run of equal
    timestamps."""
    ts = np.asarray(timestamps)
    n = len(ts)
    start = 0
    while start < n:
        end = min(start + rows, n)
        if end < n and ts[end] == ts[end - 1]:
            end = int(np.searchsorted(ts, ts[end - 1], side="right"))
        yield start, end
        start = end


def playback_order(table: pa.Table) -> pa.Table:
    """``table`` in order of its own timestamps, equal timestamps in file order."""
    ts = table.column("timestamp").to_numpy()
    line = table.column("line").to_numpy()
    later, same = ts[1:] > ts[:-1], ts[1:] == ts[:-1]
    if bool(np.all(later | (same & (line[1:] > line[:-1])))):
        return table
    order = np.lexsort((line, ts))
    return table.take(pa.array(order))


# --- the server -------------------------------------------------------------------------------


class Client:
    """One connected client: its bounded send buffer and the writer task that drains it."""

    def __init__(self, ws: ServerConnection, peer: str, room: asyncio.Event) -> None:
        self.ws = ws
        self.peer = peer
        self.frames: collections.deque[bytes] = collections.deque()
        self.queued = 0  # bytes in ``frames``
        self.stalled_since: float | None = None  # full and unmoved since (``--speed max``)
        self._room = room  # set whenever a frame leaves any buffer
        self._ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def fits(self, size: int) -> bool:
        """A frame of ``size`` bytes fits in the buffer (an empty buffer takes any frame)."""
        return not self.queued or self.queued + size <= MAX_BEHIND_BYTES

    def put(self, frame: bytes) -> None:
        self.frames.append(frame)
        self.queued += len(frame)
        self._ready.set()

    async def write(self) -> None:
        """Send the buffered frames in order until the connection closes."""
        ws, frames = self.ws, self.frames
        with contextlib.suppress(ConnectionClosed):
            while True:
                while not frames:
                    self._ready.clear()
                    await self._ready.wait()
                frame = frames[0]
                await ws.send(frame, text=True)
                frames.popleft()
                self.queued -= len(frame)
                self.stalled_since = None
                self._room.set()


class Feed:
    """The shared playback and the set of connected clients."""

    def __init__(
        self, table: pa.Table, *, speed: float | None, loop: bool, frame: FrameMode,
        emulation: Emulation | None = None,
    ) -> None:  # fmt: skip
        """``speed`` None means as fast as the clients take the frames; ``emulation``: speak
        a venue's protocol instead of ours (``engine.venues``)."""
        self.table = table
        self.emulation = emulation
        self.speed = speed
        self.loop = loop
        self.frame: FrameMode = frame
        self.clients: dict[ServerConnection, Client] = {}
        self.first_client = asyncio.Event()
        self.quotes_sent = 0
        self.frames_sent = 0
        self.passes = 0
        self.dropped = 0
        self._room = asyncio.Event()

    async def handler(self, ws: ServerConnection, n: int) -> None:
        """Hold a client (connection number ``n``) until it goes; its writer does the sending."""
        peer = _peer(ws)
        client = Client(ws, peer, self._room)
        client.task = asyncio.create_task(client.write())
        self.clients[ws] = client
        log.info("client connected", peer=peer, clients=len(self.clients))
        self.first_client.set()
        try:
            if self.emulation is None:
                await ws.wait_closed()
            else:  # a venue answers subscriptions and heartbeats
                await self._answer(ws, client, self.emulation)
        finally:
            self.clients.pop(ws, None)
            client.task.cancel()
            code = ws.close_code
            log.info(
                "client disconnected",
                peer=peer,
                code=code if code is not None else "none",
                clients=len(self.clients),
            )

    async def _answer(self, ws: ServerConnection, client: Client, emulation: Emulation) -> None:
        """Answer what the client sends as the emulated venue would, through the client's own
        buffer (after the frames already in it); a client too far behind to take an answer is
        dropped, as for any frame (:meth:`_drop`)."""
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                for text in emulation.answer(message):
                    frame = text.encode()
                    if not client.fits(len(frame)):
                        self._drop(client)  # closes it with 1008 (or aborts)
                        await ws.wait_closed()
                        return
                    client.put(frame)

    async def _send(self, frame: bytes) -> None:
        """Put ``frame`` in every client's buffer; drop a client it does not fit (``--speed
        max``: wait for room first, dropping only clients stalled for ``STALL_SECONDS``)."""
        if not self.clients:
            return
        size = len(frame)
        if self.speed is None:
            await self._wait_for_room(size)
        for client in list(self.clients.values()):
            if client.fits(size):
                client.put(frame)
            else:
                self._drop(client)

    async def _wait_for_room(self, size: int) -> None:
        while True:
            full = [c for c in self.clients.values() if not c.fits(size)]
            if not full:
                return
            now = time.monotonic()
            wait, dropped = STALL_SECONDS, False
            for client in full:
                if client.stalled_since is None:
                    client.stalled_since = now
                elif now - client.stalled_since >= STALL_SECONDS:
                    self._drop(client)
                    dropped = True
                    continue
                wait = min(wait, client.stalled_since + STALL_SECONDS - now)
            if dropped:
                continue
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.0)):
                    await self._room.wait()

    def _drop(self, client: Client) -> None:
        """Drop a client that fell ``MAX_BEHIND_BYTES`` behind; the others go on."""
        if self.clients.pop(client.ws, None) is None:
            return
        self.dropped += 1
        log.warning(
            "client dropped: too far behind",
            peer=client.peer,
            behind_bytes=client.queued,
            behind_frames=len(client.frames),
            limit_bytes=MAX_BEHIND_BYTES,
            clients=len(self.clients),
        )
        if client.task is not None:
            client.task.cancel()
        client.frames.clear()
        client.queued = 0
        reason = f"too slow: more than {MAX_BEHIND_BYTES} bytes behind"
        task = asyncio.create_task(_close_slow(client.ws, reason))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def play(self) -> None:
        """Wait for the first client, then play the table (again and again with ``loop``)."""
        await self.first_client.wait()
        n = self.table.num_rows
        log.info("playback started", quotes=n, speed=self.speed or "max", frame=self.frame)
        ts_all = self.table.column("timestamp").to_numpy()
        last_progress = time.monotonic()
        while True:
            self.passes += 1
            t0_wall, t0_data = time.monotonic(), int(ts_all[0]) if n else 0
            for start, end in blocks(ts_all):
                part = self.table.slice(start, end - start)
                frames = (encode_frames(part, self.frame) if self.emulation is None
                          else self.emulation.encode(part))  # fmt: skip
                for t, frame in frames:
                    if self.speed is not None:
                        delay = t0_wall + (t - t0_data) / 1e9 / self.speed - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    await self._send(frame)
                    self.frames_sent += 1
                self.quotes_sent += end - start
                await asyncio.sleep(0)  # let handshakes, closes and signals through
                now = time.monotonic()
                if now - last_progress >= PROGRESS_INTERVAL:
                    last_progress = now
                    self._progress("progress")
            if not self.loop or n == 0:
                break
            self._progress("pass complete, starting again")
        self._progress("feed complete")

    def _progress(self, message: str) -> None:
        log.info(
            message,
            quotes=self.quotes_sent,
            frames=self.frames_sent,
            passes=self.passes,
            clients=len(self.clients),
            dropped=self.dropped,
        )


#: Close tasks of dropped clients (held so that they are not collected while running).
_closing: set[asyncio.Task[None]] = set()


async def _close_slow(ws: ServerConnection, reason: str) -> None:
    """A close frame (1008) if the client can still take one in time, else abort TCP."""
    with contextlib.suppress(TimeoutError, ConnectionClosed):
        async with asyncio.timeout(DROP_CLOSE_TIMEOUT):
            await ws.close(1008, reason)
    ws.transport.abort()  # no-op once closed


def _peer(ws: ServerConnection) -> str:
    addr = ws.remote_address
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else str(addr)


async def serve_feed(feed: Feed, host: str, port: int) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit code."""
    server = WsServer(
        feed.handler,
        host=host,
        port=port,
        max_size=1 << 16,
        ping_interval=20,
        ping_timeout=None,  # a client that stops reading is dropped by its full send buffer
        close_timeout=1,
        logger=_ws_logger,
    )
    try:
        await server.listen()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            why = "address already in use (pick another --port)"
        else:
            why = str(exc.strerror or exc)
        log.error(f"cannot listen on {host}:{port}: {why}", host=host, port=port)
        return 1
    address = server.address
    log.info("listening", url=f"ws://{address[0]}:{address[1]}", host=address[0], port=address[1])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    player = asyncio.create_task(feed.play())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({player, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if player.done() and not player.cancelled() and player.exception() is not None:
        log.error("playback failed", error=repr(player.exception()))
        stopper.cancel()
        await server.shutdown()
        return 1
    await stop.wait()  # playback finished: stay up, clients idle, until a signal
    log.info("stopping", clients=len(feed.clients), quotes=feed.quotes_sent)
    player.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await player
    if not await server.shutdown("close", code=1001, timeout=3):  # 1001: going away
        log.warning("clients did not close in time")
    log.info("stopped")
    return 0


# --- command line -----------------------------------------------------------------------------


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535 (0: any free port), not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m engine.feed`` argument parser."""
    p = Parser(
        component="feed",
        prog=PROG,
        description="A websocket server that plays a CSV (live layout) as live JSON quotes, "
        "at the pace of its timestamps, to any number of clients.",
        epilog="Playback starts when the first client connects and is shared: a client gets the "
        "quotes from the moment it connects. Exit codes: 0 stopped by SIGINT/SIGTERM, "
        "1 runtime failure (e.g. port in use), 2 usage or input error.",
    )
    p.add_argument("--csv", default=DEFAULT_CSV, metavar="PATH",
                   help=f"quotes to play (default: {DEFAULT_CSV})")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8765,
                   help="port to listen on, 0 for any free one (default: 8765)")
    p.add_argument("--speed", type=parse_speed, default=1.0, metavar="X|max",
                   help="1 follows the timestamps, N is N times faster, max as fast as the "
                        "clients read (default: 1)")
    p.add_argument("--loop", action="store_true", help="start again at the end of the file")
    p.add_argument("--frame", choices=("array", "object"), default="array",
                   help="quotes with the same timestamp as one JSON array frame, or one object "
                        "per frame (default: array)")
    p.add_argument("--as", dest="as_venue", choices=EMULATED, metavar="FORMAT",
                   help="speak a venue's protocol instead of ours, one message a quote ("
                        + ", ".join(EMULATED) + "): try python -m engine --live-format FORMAT "
                        "without a network")  # fmt: skip
    return p


def _csv_path(text: str) -> Path:
    path = Path(text)
    if text == DEFAULT_CSV and not path.exists():  # run from elsewhere: the project's sample
        path = Path(__file__).resolve().parent.parent / DEFAULT_CSV
    return path


def load_table(path: Path) -> pa.Table:
    """The CSV's valid rows in playback order; rejected rows logged and counted.

    Raises ``InputError`` (a ``UsageError``) for a file that cannot be used at all."""
    parsed = load_historical(path, required=REQUIRED_COLUMNS[Mode.LIVE])
    for rej in parsed.rejected[:MAX_LOGGED_REJECTS]:
        log.warning("rejected row skipped", file=rej.source, line=rej.line, reason=rej.reason)
    if parsed.rejected_count:
        log.warning("rejected rows skipped", file=str(path), count=parsed.rejected_count)
    table = playback_order(parsed.table)
    log.info("loaded", file=str(path), quotes=table.num_rows, rejected=parsed.rejected_count)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Run the feed; returns the exit code (``common.cli.run_program``'s: a missing or unusable
    CSV is a usage error, 2)."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        path = _csv_path(args.csv)
        if not path.is_file():
            raise UsageError(f"--csv: no such file {str(path)!r}")
        emulation = Emulation(args.as_venue) if args.as_venue else None
        feed = Feed(load_table(path), speed=args.speed, loop=args.loop, frame=args.frame,
                    emulation=emulation)  # fmt: skip
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(serve_feed(feed, args.host, args.port))

    return run_program("feed", body)


if __name__ == "__main__":
    sys.exit(main())
