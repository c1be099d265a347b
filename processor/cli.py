"""``python -m processor``: the command line (contract section 4).

The parser is here; ``processor.config`` checks what it parsed into a ``Config``, and
``processor.run`` runs it. Exit codes as every program's (``common.cli``): 0 success, 2 a usage or
configuration error (one line saying what to fix), 1 a runtime failure.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence

from common.cli import Parser, StopFlag, run_program
from common.log import bridge_stdlib
from processor.config import THRESHOLD_ENV, config_from

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


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m processor",
        component="processor",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--ring", default="quotes", metavar="NAME", help="the ring to read (default: quotes)"
    )
    p.add_argument(
        "--name",
        default="mid-price",
        metavar="NAME",
        help="consumer name: a restart under the same name resumes (default: mid-price)",
    )
    p.add_argument(
        "--latency-threshold",
        metavar="MS",
        help=f"latency limit in milliseconds (default: ${THRESHOLD_ENV}, else 20)",
    )
    p.add_argument(
        "--mid-log",
        default="mid_prices.log",
        metavar="PATH",
        help="mid price lines (default: mid_prices.log)",
    )
    p.add_argument(
        "--error-log",
        default="errors.log",
        metavar="PATH",
        help="error lines (default: errors.log)",
    )
    p.add_argument(
        "--format",
        choices=("spec", "extended"),
        default="spec",
        help="spec: '<timestamp>, <mid>'; extended: '<timestamp>, <ticker>, <mid>' (default: spec)",
    )
    p.add_argument(
        "--exit-at-end",
        action="store_true",
        help="exit 0 once the engine has ended the stream and all is written",
    )
    p.add_argument(
        "--parquet",
        metavar="PATH",
        help="also write (timestamp, ticker, mid) to this Parquet file "
        "(rewritten on every start; see below)",
    )
    p.add_argument(
        "--render-threads",
        type=int,
        metavar="N",
        help="batches rendered at once on worker threads; 1 renders in the main "
        "thread (default: 2 on a machine with 2 cores or more)",
    )
    p.add_argument(
        "--redis",
        metavar="URL",
        help="read the relay's Redis stream instead of the ring (contract section 7), "
        "e.g. redis://HOST:6379/0; the consumer group is --name",
    )
    p.add_argument(
        "--stream",
        default="quotes",
        metavar="NAME",
        help="with --redis: the stream the relay writes (default: quotes)",
    )
    p.add_argument(
        "--state",
        metavar="PATH",
        help="the state file (default: <folder of the mid log>/.processor-<name>.state.json)",
    )
    return p


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Parse, check, run; returns the exit code."""
    stop = StopFlag()
    stop.install()  # before the heavy imports: a stop while they load still exits cleanly
    args = build_parser().parse_args(argv)
    bridge_stdlib()  # the ring's log records as structured lines on stderr

    def body() -> int:
        cfg = config_from(args, os.environ if environ is None else environ)
        from processor.run import run  # the heavy imports (numpy, pyarrow) start here

        return run(cfg, stop)

    return run_program("processor", body)
