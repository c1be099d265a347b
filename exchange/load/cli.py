"""``python -m exchange.load``: the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from common.cli import Parser, loop_factory, run_program
from exchange.load._report import render, summary
from exchange.load._run import Settings, run_load
from exchange.load._traders import KNOWN, PROG, log


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def _rate(text: str) -> float | None:
    return None if text == "max" else _positive_float(text)


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive decimal")
    return value


def _http_url(text: str) -> str:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - ValueError for a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(f"must be http://host:port, not {text!r}")
    return text.rstrip("/")


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def parse_args(argv: Sequence[str] | None) -> Settings:
    p = Parser(
        prog=PROG,
        component="exchange.load",
        description="Simulated traders against a running venue (Wood TCP or REST).",
    )
    p.add_argument("--url", type=_http_url, help="the venue's HTTP port: REST, and the start mid")
    p.add_argument("--private", type=_address, help="the venue's Wood order-entry port HOST:PORT")
    p.add_argument("--protocol", choices=("wood", "rest"), default="wood")
    p.add_argument("--connections", type=_positive_int, default=8, help="traders (%(default)s)")
    p.add_argument(
        "--rate", type=_rate, default=1000.0,
        help="commands per second over all connections, or max (%(default)s)",
    )  # fmt: skip
    end = p.add_mutually_exclusive_group()
    end.add_argument("--duration", type=_positive_float, help="seconds to send (default 10)")
    end.add_argument("--orders", type=_positive_int, help="commands to send in all")
    p.add_argument("--symbol", default="BTC-USDT", help="(%(default)s)")
    p.add_argument("--tick", type=_decimal, help="the symbol's tick (known for default symbols)")
    p.add_argument("--lot", type=_decimal, help="the symbol's lot (known for default symbols)")
    p.add_argument("--seed", type=int, default=1, help="(%(default)s)")
    p.add_argument(
        "--window", type=_positive_int, default=128,
        help="Wood, --rate max: commands in flight per connection (%(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--drain", type=_positive_float, default=10.0,
        help="seconds to wait for what is in flight at the end (%(default)s)",
    )  # fmt: skip
    p.add_argument("--json", type=Path, help="write the result as JSON here too")
    a = p.parse_args(argv)
    if a.protocol == "wood" and a.private is None:
        p.error("--protocol wood needs --private HOST:PORT")
    if a.protocol == "rest" and a.url is None:
        p.error("--protocol rest needs --url http://HOST:PORT")
    tick, lot = KNOWN.get(a.symbol, (None, None))
    tick, lot = a.tick or tick, a.lot or lot
    if tick is None or lot is None:
        p.error(f"--symbol {a.symbol} is not a default symbol: give --tick and --lot")
    if a.duration is None and a.orders is None:
        a.duration = 10.0
    return Settings(
        url=a.url, private=a.private, protocol=a.protocol, connections=a.connections,
        rate=a.rate, duration=a.duration, orders=a.orders, symbol=a.symbol, tick=tick, lot=lot,
        seed=a.seed, window=a.window, drain=a.drain, json_path=a.json,
    )  # fmt: skip


def run(settings: Settings) -> int:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        stats = runner.run(run_load(settings))
    result = summary(settings, stats)
    print(render(result), flush=True)
    if settings.json_path is not None:
        settings.json_path.write_text(json.dumps(result, indent=2) + "\n")
    lost = result["unacknowledged"]
    if lost or any("closed by the venue" in e or "REST:" in e for e in stats.errors):
        log.error("failed", unacknowledged=lost, errors=len(stats.errors))
        return 1
    log.info("done", acknowledged=result["acknowledged"], per_s=result["acknowledged_per_s"])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    return run_program("exchange.load", lambda: run(settings))
