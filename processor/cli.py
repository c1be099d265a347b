"""``python -m processor``: the command line (contract section 4), checked into a ``Config``.

Exit codes: 0 success, 2 a usage or configuration error (one line saying what to fix),
1 a runtime failure. Every message goes to stderr as a structured log line.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn

from common.log import bridge_stdlib, get_logger
from processor import state as statefile

DEFAULT_THRESHOLD = 20.0
THRESHOLD_ENV = "LATENCY_THRESHOLD"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")

DESCRIPTION = """\
Read quotes from the engine's shared-memory ring and write one line per record: the mid price
to the mid log, or the reason there is none to the error log (contract section 3).
"""

EPILOG = f"""\
threshold: --latency-threshold, else the environment variable {THRESHOLD_ENV}, else 20 (ms);
  a historical record whose latency is strictly greater is an error line.

crash safety: both logs and the state file (default: .processor-<name>.state.json next to the
  mid log) are fsynced at least every 100 ms, then the position is committed to the ring. A
  restart under the same --name cuts both logs back to the lengths in the state file and goes on
  from there, dropping records already written (by their seq): after a kill at any moment the
  logs end up exactly as after an uninterrupted run. Without a state file both logs start empty.
  Each log is locked while a processor runs: a second processor on the same files, or with the
  same --name on the same ring, is refused (exit 2).

--parquet is analysis output, not crash-safe: every start rewrites PATH from scratch with the
  mid prices written from that start on (after a resume: from the resume point), one row group
  per flush; a killed processor leaves it unreadable (no footer).

The processor waits for the ring if it does not exist yet, and attaches again when the engine
recreates it. SIGINT/SIGTERM: write what was read, commit, exit 0.
exit codes: 0 success, 1 runtime failure (disk full, records lost), 2 usage or configuration.
"""


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


class UsageError(Exception):
    """A configuration problem the user must fix (exit 2)."""


class Stop:
    """SIGINT/SIGTERM set a flag (the handler does nothing else: no locks, no logging)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``, less once a stop is requested."""
        deadline = time.monotonic() + seconds
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.02))


class _Parser(argparse.ArgumentParser):
    """Reports a usage error as one structured log line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        get_logger("processor").error(f"{message} (see python -m processor --help)")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m processor",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ring", default="quotes", metavar="NAME",
                   help="the ring to read (default: quotes)")
    p.add_argument("--name", default="mid-price", metavar="NAME",
                   help="consumer name: a restart under the same name resumes "
                        "(default: mid-price)")
    p.add_argument("--latency-threshold", metavar="MS",
                   help=f"latency limit in milliseconds (default: ${THRESHOLD_ENV}, else 20)")
    p.add_argument("--mid-log", default="mid_prices.log", metavar="PATH",
                   help="mid price lines (default: mid_prices.log)")
    p.add_argument("--error-log", default="errors.log", metavar="PATH",
                   help="error lines (default: errors.log)")
    p.add_argument("--format", choices=("spec", "extended"), default="spec",
                   help="spec: '<timestamp>, <mid>'; extended: '<timestamp>, <ticker>, <mid>' "
                        "(default: spec)")
    p.add_argument("--exit-at-end", action="store_true",
                   help="exit 0 once the engine has ended the stream and all is written")
    p.add_argument("--parquet", metavar="PATH",
                   help="also write (timestamp, ticker, mid) to this Parquet file "
                        "(rewritten on every start; see below)")
    p.add_argument("--render-threads", type=int, metavar="N",
                   help="batches rendered at once on worker threads; 1 renders in the main "
                        "thread (default: 2 on a machine with 2 cores or more)")
    p.add_argument("--state", metavar="PATH",
                   help="the state file (default: <folder of the mid log>/"
                        ".processor-<name>.state.json)")
    return p


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
    if not _NAME.fullmatch(args.name):
        raise UsageError(
            f"--name {args.name!r}: use 1-32 letters, digits, '_', '.' or '-', starting with "
            "a letter or digit"
        )
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
            raise UsageError(f"{seen[key]} and {flag} name the same file {path}: "
                             "give them different paths")
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
        threads=args.render_threads,
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Parse, check, run; returns the exit code."""
    stop = Stop()
    stop.install()  # before the heavy imports: a stop while they load still exits cleanly
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from(args, os.environ if environ is None else environ)
    except UsageError as exc:
        get_logger("processor").error(str(exc))
        return 2
    from processor.run import run  # the heavy imports (numpy, pyarrow, polars) start here

    bridge_stdlib()  # the ring's log records as structured lines on stderr

    try:
        return run(cfg, stop)
    except Exception as exc:  # a bug or an unforeseen OS problem: still one clear line
        get_logger("processor").error(f"processor failed: {exc!r}")
        return 1
