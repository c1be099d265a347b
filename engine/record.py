"""``python -m engine.record``: record a live feed into CSV files of the historical layout.

    python -m engine.record --live-url URL [--live-format F] [--live-symbols A,B] --out DIR
                            [--rotate-rows N | --rotate-minutes M]

The feed is read by the engine's own live source (``engine.live``: any ``--live-format``, the
same reconnects, heartbeats and rejects), over a connection of its own. Each record becomes a
line of the historical layout with its measured latency (``engine.recording``), in
``DIR/quotes-<run start, UTC>-<NNNN>.csv``, a new file every ``--rotate-rows`` rows (default
100,000) or ``--rotate-minutes`` minutes; items the feed sent that are not quotes go to
``DIR/rejected_rows.csv`` (as the engine's). A stats line is logged per file.

Crash safety: the lines of each batch are written with one ``write`` to a file opened for
appending, so a kill -9 cannot leave half a row (the kernel completes a write it has begun
into the page cache); files are fsynced every second, at each rotation and at the end, and the
folder after a file is created. After a power loss a file may end in a torn row, which the
engine's reader rejects and records like any bad row. A run never appends to an earlier
file. SIGINT/SIGTERM: what was received is written and synced, exit 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from common.cli import Parser, StopFlag, UsageError, run_program
from common.log import bridge_stdlib, get_logger
from engine.cli import add_live_arguments, check_live, live_settings
from engine.recording import HEADER, FileStats, Rotation, render
from engine.rejects import Rejected, RejectLog

PROG = "python -m engine.record"
DEFAULT_ROTATE_ROWS = 100_000
FSYNC_EVERY = 1.0  # seconds
log = get_logger("record")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = Parser(prog=PROG, component="record", description=__doc__.splitlines()[0])
    add_live_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="the folder of the recording")
    rotate = p.add_mutually_exclusive_group()
    rotate.add_argument("--rotate-rows", type=int, metavar="N",
                        help=f"a new file every N rows (default {DEFAULT_ROTATE_ROWS})")
    rotate.add_argument("--rotate-minutes", type=float, metavar="M",
                        help="a new file every M minutes of arrival time")  # fmt: skip
    args = p.parse_args(argv)
    if args.rotate_rows is not None and args.rotate_rows < 1:
        p.error(f"--rotate-rows takes a whole number >= 1, not {args.rotate_rows}")
    if args.rotate_minutes is not None and not 0 < args.rotate_minutes < 1e9:
        p.error(f"--rotate-minutes takes a number of minutes > 0, not {args.rotate_minutes}")
    return args


class Recorder:
    """The files of one recording run in ``folder`` (module docstring)."""

    def __init__(self, folder: Path, rotation: Rotation, stats: Any = dict) -> None:
        self.folder = folder
        self.rotation = rotation
        self.source_stats = stats  # what the stats line adds (the live source's counters)
        self.run_name = time.strftime("quotes-%Y%m%dT%H%M%SZ", time.gmtime())
        self.files = 0
        self.records = 0
        self._fd: int | None = None
        self._path: Path | None = None
        self._rows = 0
        self._started: int | None = None
        self._stats = FileStats()
        self._synced = time.monotonic()

    def write(self, table: pa.Table) -> None:
        """Append the records of ``table`` (``TABLE_SCHEMA``), rotating as told."""
        arrivals = table.column("arrival").to_numpy()
        done = 0
        while done < table.num_rows:
            take = 0
            if self._fd is not None:
                take = self.rotation.take(arrivals[done:], rows_in_file=self._rows,
                                          file_started_ns=self._started)  # fmt: skip
            if not take:
                self._next_file(int(arrivals[done]))
                continue
            part = table.slice(done, take)
            data, latency = render(part, self._rows, self.records)
            self._write_all(data)
            self._rows += take
            self.records += take
            self._stats.add(part, latency)
            done += take
        if time.monotonic() - self._synced >= FSYNC_EVERY:
            self.sync()

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
        self._synced = time.monotonic()

    def close(self) -> None:
        """Sync and close the current file, with its stats line."""
        if self._fd is None:
            return
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        log.info("recorded", file=str(self._path), **self._stats.summary(), **self.source_stats())

    def _next_file(self, started_ns: int) -> None:
        self.close()
        while True:
            self.files += 1
            path = self.folder / f"{self.run_name}-{self.files:04d}.csv"
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            try:
                fd = os.open(path, flags, 0o644)
                break
            except FileExistsError:  # another run started in the same second: next number
                continue
        self._fd, self._path, self._rows, self._started = fd, path, 0, started_ns
        self._stats = FileStats()
        self._write_all(HEADER.encode())
        dir_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _write_all(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]


def run(args: argparse.Namespace, stop: StopFlag) -> int:
    check_live(args)
    from engine.live import LiveSource  # websockets and asyncio: after the checks

    folder = Path(args.out)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {folder}: cannot create it ({exc.strerror})") from None
    if args.rotate_minutes is not None:
        rotation = Rotation(minutes=args.rotate_minutes)
    else:
        rotation = Rotation(rows=args.rotate_rows or DEFAULT_ROTATE_ROWS)
    try:
        source = LiveSource(args.live_url, **live_settings(args))
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    def counters() -> dict[str, int]:
        s = source.stats
        return {"reconnects": max(s["connects"] - 1, 0), "rejected": s["rejected"],
                **{k: v for k, v in s.items() if k == "venue_no_exchange_time" and v}}  # fmt: skip

    recorder = Recorder(folder, rotation, counters)
    rejects = RejectLog(folder)
    log.info("recording", url=args.live_url, format=args.live_format, out=str(folder),
             files=f"{recorder.run_name}-NNNN.csv")  # fmt: skip
    source.start()
    try:
        while not stop.requested:
            _take(source.poll(0.1), recorder, rejects)
        source.stop()
        while True:  # what arrived before the stop
            batch = source.poll(0)
            if batch[0] is None and not batch[1]:
                break
            _take(batch, recorder, rejects)
    finally:
        source.stop()
        recorder.close()
        rejects.close()
    log.info("stopped", records=recorder.records, files=recorder.files, rejected=rejects.count)
    return 0


def _take(batch: tuple[pa.Table | None, list[Rejected]], recorder: Recorder,
          rejects: RejectLog) -> None:  # fmt: skip
    table, rejected = batch
    if table is not None:
        recorder.write(table)
    if rejected:
        for r in rejected:
            log.warning("rejected", source=r.source, frame=r.line, reason=r.reason)
        rejects.append(rejected)


def main(argv: Sequence[str] | None = None) -> int:
    stop = StopFlag()
    stop.install()
    args = parse_args(argv)
    bridge_stdlib()
    return run_program("record", lambda: run(args, stop))


if __name__ == "__main__":
    sys.exit(main())
