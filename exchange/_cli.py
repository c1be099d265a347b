"""``python -m exchange``: the venue on its three ports (contract section 6).

One process, one event loop (uvloop), the matching core on it: the HTTP port (REST, API docs,
websocket feeds, the page; FastAPI on uvicorn), the Wood private and public TCP ports (asyncio
streams). At start it recovers the data folder and logs ``recovered seq=... state_hash=...``,
then ``listening http=<port> private=<port> public=<port>`` once every port accepts connections.

SIGINT/SIGTERM: stop accepting, finish the commands in flight (each answered once durable),
write a snapshot, release the data folder, exit 0. A fatal journal error (a failed fsync) exits 1;
a damaged journal stops the start with exit 1 naming the file and the offset; a bad command line,
a port in use or a data folder held by another venue is exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import signal
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn

from common.cli import Parser, UsageError, loop_factory, run_program
from common.log import bridge_stdlib, get_logger
from exchange._feeds import Feeds
from exchange._http import MAX_BODY, create_app
from exchange._sequencer import Sequencer
from exchange._symbols import DEFAULT_SYMBOLS, parse_symbols
from exchange._venue import SNAPSHOT_EVERY, Venue
from exchange._views import Views
from exchange._wood import MAX_LINE, WoodPrivate, WoodPublic

PROG = "python -m exchange"
log = get_logger("exchange")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535; 0: a free one)")
    return port


def _venue_name(text: str) -> str:
    if not text or not all(c.isalnum() or c in "-_." for c in text):
        raise argparse.ArgumentTypeError(f"{text!r}: letters, digits, - _ . only")
    return text


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = Parser(prog=PROG, component="exchange", description=__doc__.splitlines()[0])
    p.add_argument("--symbols", default=DEFAULT_SYMBOLS, help="symbol:tick:lot,... (%(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    p.add_argument("--http-port", type=_port, default=8000, help="REST, docs, feeds, page")
    p.add_argument("--private-port", type=_port, default=7001, help="Wood order entry")
    p.add_argument("--public-port", type=_port, default=7002, help="Wood market data")
    p.add_argument("--data-dir", type=Path, default=Path(".exchange"), help="journal, snapshots")
    p.add_argument("--venue", type=_venue_name, default="EXCHANGE", help="quote tickers: S@NAME")
    p.add_argument(
        "--snapshot-every", type=int, default=SNAPSHOT_EVERY,
        help="commands between snapshots (%(default)s); one is also written at a clean stop",
    )  # fmt: skip
    args = p.parse_args(argv)
    try:
        args.symbol_specs = parse_symbols(args.symbols)
    except ValueError as e:
        p.error(f"--symbols: {e}")
    if args.snapshot_every < 1:
        p.error("--snapshot-every must be at least 1")
    return args


def _bind(host: str, port: int, flag: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UsageError(f"{flag} {port} on {host}: {e.strerror}: pick another port") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class _Http(uvicorn.Server):
    """uvicorn without its own signal handling: the venue stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(args: argparse.Namespace, venue: Venue) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sequencer = Sequencer(venue)
    views = Views(args.symbol_specs, args.venue)
    feeds = Feeds(sequencer, views)
    private = WoodPrivate(sequencer, args.symbol_specs, views)
    public = WoodPublic(sequencer, views)
    socks = [
        _bind(args.host, args.http_port, "--http-port"),
        _bind(args.host, args.private_port, "--private-port"),
        _bind(args.host, args.public_port, "--public-port"),
    ]
    servers = [
        await asyncio.start_server(private.handle, sock=socks[1], limit=MAX_LINE),
        await asyncio.start_server(public.handle, sock=socks[2], limit=MAX_LINE),
    ]
    config = uvicorn.Config(
        create_app(sequencer, views, feeds), log_level="warning", access_log=False,
        lifespan="off", ws="websockets-sansio", ws_max_size=MAX_BODY, ws_ping_interval=20,
        timeout_graceful_shutdown=5,
    )  # fmt: skip
    http = _Http(config)
    http_task = asyncio.create_task(http.serve(sockets=[socks[0]]))
    while not http.started:
        if http_task.done():
            http_task.result()
            raise RuntimeError("the HTTP server stopped at start")
        await asyncio.sleep(0.01)
    ports = {
        name: s.getsockname()[1]
        for name, s in zip(("http", "private", "public"), socks, strict=True)
    }
    log.info("listening", **ports)

    async def watch_failure() -> None:
        while sequencer.failed is None and not stop.is_set():
            await asyncio.sleep(0.1)
        stop.set()

    watcher = asyncio.create_task(watch_failure())
    await stop.wait()
    watcher.cancel()
    log.info("stopping: no new connections; finishing the commands in flight")
    for server in servers:
        server.close()
    http.should_exit = True
    await sequencer.drain()
    feeds.quotes.close_all()
    feeds.market.close_all()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(http_task, 10)
    for conn in list(private.connections) + list(public.connections):
        conn.writer.close()
    await sequencer.close()
    if sequencer.failed is not None:
        log.error("stopped: the journal failed", error=repr(sequencer.failed))
        return 1
    log.info("stopped", seq=venue.seq, state_hash=venue.state_hash())
    return 0


def _raise_open_files() -> None:
    """A server holds a descriptor per client: take the hard limit, not the default 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(args: argparse.Namespace) -> int:
    bridge_stdlib("exchange", "exchange")
    _raise_open_files()
    venue = Venue.open(args.data_dir, args.symbol_specs, snapshot_every=args.snapshot_every)
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(serve(args, venue))
    finally:
        venue.close(snapshot=False)  # a no-op after a clean stop; releases the lock otherwise


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_program("exchange", lambda: run(args))
