"""``python -m engine``: command line, files and signals around :class:`engine.core.Engine`.

Exit codes: 0 done, 2 usage or configuration error (one line saying what to fix), 1 runtime
failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

import ringbuffer
from common.cli import Parser, UsageError, check_ws_url, run_program
from common.log import bridge_stdlib, get_logger
from common.schema import QUOTE_SCHEMA, REQUIRED_COLUMNS, Mode
from engine import cache, runs, statedir
from engine.blocks import read_blocks
from engine.checkpoint import Checkpoint, recover
from engine.control import ModeControl
from engine.core import Engine, EngineOptions, StrictStop
from engine.csvread import InputError
from engine.pacing import SystemClock, parse_speed
from engine.rejects import Rejected, RejectLog
from engine.runs import RunFile
from engine.sources import StreamingHistoricalSource, TableSource
from ringbuffer import salvage

log = get_logger("engine")
REQUIRED = REQUIRED_COLUMNS[Mode.HISTORICAL]

def power_of_two(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 2 or n & (n - 1):
        raise argparse.ArgumentTypeError(f"--capacity takes a power of two >= 2, not {text!r}")
    return n


#: Consumer slots of the engine's ring: at most this many consumers attach at once.
CONSUMER_SLOTS = 64


def consumer_count(text: str) -> int:
    """argparse type of --wait-for-consumers: a whole number from 0 to the ring's slots."""
    if not text.isdigit() or int(text) > CONSUMER_SLOTS:
        raise argparse.ArgumentTypeError(
            f"--wait-for-consumers takes a whole number from 0 to {CONSUMER_SLOTS} (the "
            f"ring's consumer slots), not {text!r}"
        )
    return int(text)


def ring_name(text: str) -> str:
    """A ring name the ring accepts (argparse type)."""
    try:
        ringbuffer.check_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m engine",
        component="engine",
        description="Replay historical quotes (CSV) or relay live ones (websocket JSON) into a "
        "shared-memory ring. SIGUSR1 toggles the mode; writing 'historical' or 'live' into the "
        "control file sets it; SIGINT/SIGTERM end the stream and exit 0.",
    )
    p.add_argument("--mode", required=True, choices=[str(m) for m in Mode])
    p.add_argument("--historical", default="data/historical_sample.csv", metavar="PATH",
                   help="historical CSV (default %(default)s)")  # fmt: skip
    add_live_arguments(p)
    p.add_argument("--speed", type=parse_speed, default=1.0, metavar="X|max",
                   help="historical pace: 1 = arrival times, N = N times faster, max (default 1)")
    p.add_argument("--ring", type=ring_name, default="quotes", metavar="NAME",
                   help="ring name (default quotes)")
    p.add_argument("--capacity", type=power_of_two, default=1 << 18, metavar="N",
                   help="records the ring holds, a power of two (default 262144)")
    p.add_argument("--control-file", metavar="PATH", help="default <state-dir>/mode")
    p.add_argument("--state-dir", default=".replay-state", metavar="PATH",
                   help="checkpoint, cache and rejected_rows.csv (default %(default)s)")
    p.add_argument("--wait-for-consumers", type=consumer_count, default=0, metavar="N",
                   help="publish nothing until N consumers are attached")
    p.add_argument("--exit-at-end", action="store_true",
                   help="historical: after the last record, wait until every consumer has read "
                   "everything, then exit 0")
    p.add_argument("--strict", action="store_true", help="stop at the first rejected row (exit 2)")
    p.add_argument("--consumer-grace", type=seconds("--consumer-grace", zero="not at all"),
                   default=5.0, metavar="SECONDS",
                   help="how long a dead consumer keeps holding the writer, so a supervisor can "
                   "restart it without loss (default 5)")
    p.add_argument("--evict-after", type=seconds("--evict-after"), default=None, metavar="SECONDS",
                   help="opt-in: stop waiting for a live consumer that blocks the writer this "
                   "long; it then fails with an overrun error (default: never, lossless)")
    return p


def add_live_arguments(p: argparse.ArgumentParser) -> None:
    """The live source's options (``python -m engine`` and ``python -m engine.record``)."""
    p.add_argument("--live-url", default="ws://127.0.0.1:8765", metavar="URL",
                   help="websocket feed (default %(default)s)")  # fmt: skip
    p.add_argument("--live-format", default="ours", choices=LIVE_FORMATS, metavar="FORMAT",
                   help="how the feed speaks: " + ", ".join(LIVE_FORMATS) + " (default ours, "
                   "contract section 1); see README, Live sources")  # fmt: skip
    p.add_argument("--live-symbols", type=symbol_list, default=(), metavar="A,B,...",
                   help="live: the instruments to subscribe to, as the venue names them "
                   "(BTCUSDT, BTC-USDT-SWAP, BTC-USD, BTC/USD); needed by every venue format "
                   "but ours and binance")  # fmt: skip
    p.add_argument("--live-heartbeat", type=seconds("--live-heartbeat"), default=None,
                   metavar="SECONDS", help="live: seconds between the client's heartbeats, for "
                   "venues that want them (default: the venue's documented interval)")  # fmt: skip
    p.add_argument("--live-idle-timeout", type=seconds("--live-idle-timeout", zero="never"),
                   default=10.0, metavar="SECONDS",
                   help="live: a feed silent this long is dropped and reconnected; 0 never "
                   "(default 10)")  # fmt: skip
    p.add_argument("--live-backoff-max", type=seconds("--live-backoff-max"), default=5.0,
                   metavar="SECONDS", help="live: the longest wait between reconnects; a "
                   "connection counts as healthy after twice this (default 5)")  # fmt: skip
    p.add_argument("--live-max-frame", type=live_bytes, default=1 << 20, metavar="BYTES",
                   help="live: a larger frame is refused and recorded as rejected (default "
                   "1048576)")  # fmt: skip


#: ``--live-format``'s choices: ``engine.venues.FORMATS``' names (a test holds them equal), not
#: imported here so that ``--help`` and usage errors do not pay for loading the adapters (their
#: module constants make pyarrow load pandas, ~130 ms).
LIVE_FORMATS = ("ours", "binance", "okx", "okx-tickers", "bybit", "coinbase", "kraken")


def symbol_list(text: str) -> tuple[str, ...]:
    """argparse type of ``--live-symbols``: comma-separated instrument names, none empty."""
    names = tuple(name.strip() for name in text.split(","))
    if not all(names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"--live-symbols takes distinct comma-separated instrument names, not {text!r}"
        )
    return names


def check_live(args: argparse.Namespace) -> None:
    """The live options that only make sense together: a UsageError saying what to fix."""
    check_ws_url(args.live_url, "--live-url")
    if args.live_format == "ours":
        if args.live_symbols:
            raise UsageError("--live-symbols is for a venue's format: the ours feed sends "
                             "everything (add --live-format)")  # fmt: skip
        return
    from engine.venues import FORMATS  # a venue's format: its adapter is needed anyway

    if FORMATS[args.live_format].needs_instruments and not args.live_symbols:
        raise UsageError(f"--live-format {args.live_format} subscribes to instruments: "
                         "name them with --live-symbols")  # fmt: skip


def seconds(flag: str, *, zero: str | None = None) -> Any:
    """argparse type of a duration: a finite number of seconds > 0, or >= 0 when ``zero``
    says what 0 means."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value >= 0 if zero else value > 0)):
            what = f"a number of seconds >= 0 (0: {zero})" if zero else "a number of seconds > 0"
            raise argparse.ArgumentTypeError(f"{flag} takes {what}, not {text!r}")
        return value

    return parse


def live_bytes(text: str) -> int:
    """argparse type of ``--live-max-frame``: a whole number of bytes >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            f"--live-max-frame takes a whole number of bytes >= 1, not {text!r}"
        )
    return int(text)


def live_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ``LiveSource`` settings the command line sets (the first backoff step is at most
    the cap)."""
    return {
        "idle_timeout": args.live_idle_timeout,
        "backoff_max": args.live_backoff_max,
        "backoff_initial": min(BACKOFF_INITIAL, args.live_backoff_max),
        "max_frame": args.live_max_frame,
        "format": args.live_format,
        "instruments": tuple(args.live_symbols),
        "heartbeat": args.live_heartbeat,
    }


#: ``LiveSettings.backoff_initial``'s default (not imported: engine.live loads websockets).
BACKOFF_INITIAL = 0.1

def load_historical(
    args: argparse.Namespace, state_dir: Path, rejects: RejectLog, stop: Any = lambda: False
) -> RunFile:
    """The sorted runs of the historical file: stored ones, else parsed block by block and
    stored (``engine.runs``); each rejected row is logged and recorded once, as it is found."""
    ident = cache.identity_or_none(args.historical)
    stored = runs.load(args.historical, state_dir, REQUIRED, ident) if ident else None
    from_cache = stored is not None
    if stored is not None:
        manifest = stored.manifest
        if manifest.rejected_count:
            log.info("rejected rows of this file were recorded on its first load",
                     rejected=manifest.rejected_count, file=str(rejects.path))  # fmt: skip
    else:

        def on_rejected(rows: list[Rejected]) -> None:
            for r in rows:
                log.warning("rejected", file=r.source, line=r.line, reason=r.reason)
                if args.strict:
                    rejects.append([r])
                    raise StrictStop(f"{r.source}:{r.line}: {r.reason} (--strict)")
            rejects.append(rows)

        if ident is None:  # unreadable: the block reader raises the proper InputError
            next(read_blocks(args.historical), None)
            raise InputError(f"{args.historical}: cannot read")
        stored = runs.build(args.historical, state_dir, ident, on_rejected, stop=stop)
        manifest = stored.manifest
    log.info("historical input loaded", file=args.historical, rows=manifest.rows,
             rejected=manifest.rejected_count, cached=from_cache,
             runs=len(manifest.runs))  # fmt: skip
    return stored


def run(args: argparse.Namespace) -> int:
    bridge_stdlib()  # the ring's log records as structured lines on stderr
    check_live(args)
    mode = Mode[args.mode.upper()]
    state_dir = Path(args.state_dir)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        statedir.lock(state_dir)  # one engine per state folder, for this process's life
    except OSError as exc:
        raise UsageError(
            f"--state-dir {state_dir}: not a writable folder ({exc.strerror or exc}); "
            "choose another with --state-dir"
        ) from exc
    control_path = Path(args.control_file or state_dir / "mode")
    if (control_path.exists() and not control_path.is_file()) or control_path.is_symlink():
        raise UsageError(f"--control-file {control_path}: exists and is not a regular file")
    try:
        control_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--control-file {control_path}: its folder cannot be made ({exc.strerror or exc})"
        ) from exc
    control = ModeControl(control_path, log)
    rejects = RejectLog(state_dir)
    clock = SystemClock()
    cp = Checkpoint.load(state_dir)
    if cp is None:
        cp = Checkpoint(mode=str(mode))
        log.info("new stream", stream=cp.stream, state_dir=str(state_dir))
    left = salvage(args.ring)
    cp, carry = recover(cp, left)

    def make_historical() -> StreamingHistoricalSource:
        stored = load_historical(args, state_dir, rejects,
                                 lambda: engine is not None and engine.stopping)  # fmt: skip
        ident = dataclasses.asdict(cache.identity(args.historical))
        if cp.input != ident:
            if cp.input is not None:
                log.info("different historical input: starting from its beginning",
                         file=args.historical)  # fmt: skip
            cp.input, cp.pos = ident, 0
        elif cp.pos:
            log.info("resuming historical replay", pos=cp.pos, of=stored.manifest.rows)
        return StreamingHistoricalSource(stored, pos=cp.pos, speed=args.speed, clock=clock)

    def make_live() -> Any:
        from engine.live import LiveSource  # websockets and asyncio: only when live is used

        return TableSource(LiveSource(args.live_url, **live_settings(args)))

    # The ring first: consumers attach while the input is parsed (the engine's first step).
    writer = ringbuffer.create(
        args.ring, QUOTE_SCHEMA, capacity=args.capacity, tag=cp.stream,
        dead_grace=args.consumer_grace, evict_after=args.evict_after, n_slots=CONSUMER_SLOTS,
    )  # fmt: skip
    engine: Engine | None = None
    try:
        engine = Engine(
            EngineOptions(mode, args.exit_at_end, args.strict, args.wait_for_consumers,
                          progress=sys.stderr.isatty()),
            writer, cp, state_dir, control, rejects,
            {Mode.HISTORICAL: make_historical, Mode.LIVE: make_live},
            clock, log,
        )
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: engine.stop())
        signal.signal(signal.SIGUSR1, lambda *_: control.toggle())
        log.info("ring ready", ring=args.ring, capacity=args.capacity, stream=cp.stream,
                 seq=cp.next_seq, pid=os.getpid())  # fmt: skip
        if carry and left is not None:
            engine.publish_carried(left.records)
        return engine.run()
    finally:
        writer.end()  # consumers never wait for a stream that will not go on (idempotent)
        if engine is not None and engine.keep_ring:  # for the next engine to carry them
            writer.close(keep=True, ended=engine.keep_end)
        else:
            writer.close()
        rejects.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The input, checkpoint and --strict errors are UsageErrors; a ring owned by another live
    # writer is one too (the ring library does not know this program's exit codes).
    return run_program("engine", lambda: run(args), (ringbuffer.RingBusy,))


if __name__ == "__main__":
    sys.exit(main())
