"""The processor's configuration: a checked command line (contract sections 3 and 4).

Nothing here parses ``sys.argv`` or prints: ``processor.cli`` builds the parser, this module
turns what it parsed, and the environment, into a :class:`Config` or a ``UsageError`` (exit 2).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common.cli import UsageError, check_consumer_name
from processor import state as statefile

DEFAULT_THRESHOLD = 20.0
THRESHOLD_ENV = "LATENCY_THRESHOLD"


@dataclass(frozen=True)
class Config:
    """A checked command line."""

    ring: str
    name: str
    threshold: float
    mid_log: Path
    error_log: Path
    extended: bool
    exit_at_end: bool
    parquet: Path | None
    state: Path
    threads: int | None = None  # render threads; None: two when the machine has two cores
    redis: str | None = None  # read the relay's stream on this Redis instead of the ring
    stream: str = "quotes"


def parse_threshold(text: str, source: str) -> float:
    """``text`` as a finite number >= 0, or a UsageError naming ``source``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UsageError(
            f"{source} must be a finite number of milliseconds >= 0, not {text!r}"
            + (f": fix or unset {THRESHOLD_ENV}" if source.startswith("environment") else "")
        )
    return value


def threshold_from(flag: str | None, environ: Mapping[str, str]) -> float:
    """The flag, else the environment variable, else the default."""
    if flag is not None:
        return parse_threshold(flag, "--latency-threshold")
    if THRESHOLD_ENV in environ:
        return parse_threshold(environ[THRESHOLD_ENV], f"environment variable {THRESHOLD_ENV}")
    return DEFAULT_THRESHOLD


def config_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """Check the parsed arguments; raises UsageError."""
    threshold = threshold_from(args.latency_threshold, environ)
    import ringbuffer  # imported here: usage errors above stay quick

    try:
        ringbuffer.check_name(args.ring)
    except ValueError as exc:
        raise UsageError(f"--ring: {exc}") from exc
    check_consumer_name(args.name)
    mid_log, error_log = Path(args.mid_log), Path(args.error_log)
    state = Path(args.state) if args.state else statefile.default_path(mid_log, args.name)
    parquet = Path(args.parquet) if args.parquet else None
    if args.render_threads is not None and not 1 <= args.render_threads <= 64:
        raise UsageError(f"--render-threads {args.render_threads}: use 1 to 64")
    files = {"--mid-log": mid_log, "--error-log": error_log, "--state": state}
    if parquet is not None:
        files["--parquet"] = parquet
    seen: dict[Path, str] = {}
    for flag, path in files.items():
        key = path.resolve()
        if key in seen:
            raise UsageError(
                f"{seen[key]} and {flag} name the same file {path}: give them different paths"
            )
        seen[key] = flag
    return Config(
        ring=args.ring,
        name=args.name,
        threshold=threshold,
        mid_log=mid_log,
        error_log=error_log,
        extended=args.format == "extended",
        exit_at_end=args.exit_at_end,
        parquet=parquet,
        state=state,
        redis=args.redis,
        stream=args.stream,
        threads=args.render_threads,
    )
