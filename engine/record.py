"""``python -m engine.record``: record a live feed into CSV files of the historical layout.

    python -m engine.record --live-url URL [--live-format F] [--live-symbols A,B] --out DIR
                            [--rotate-rows N | --rotate-minutes M]
    python -m engine.record --ring NAME [--name record] [--exit-at-end] --out DIR ...

The feed is read by the engine's own live source (``engine.live``: any ``--live-format``, the
same reconnects, heartbeats and rejects), over a connection of its own. Each record becomes a
line of the historical layout with its measured latency (``engine.recording``), in
``DIR/quotes-<run start, UTC>-<NNNN>.csv``, a new file every ``--rotate-rows`` rows (default
100,000) or ``--rotate-minutes`` minutes; items the feed sent that are not quotes go to
``DIR/rejected_rows.csv`` (as the engine's). A stats line is logged per file.

Crash safety: the lines of each batch are written with one ``write`` to a file opened for
appending, so a kill -9 cannot leave half a row (the kernel completes a write it has begun
into the page cache); files are fsynced every second, at each rotation and at the end, and the
folder after a file is created; a file appears under its name already holding its header.
After a power loss a file may end in a torn row, which the engine's reader rejects and records
like any bad row. A run never appends to an earlier file. SIGINT/SIGTERM: what was received
is written and synced, exit 0.

With ``--ring`` it records a running engine's live records instead, as a consumer of its ring
(named ``--name``): no second connection to the feed, the very records the processors get.
Historical records in the ring (a replay) are skipped and counted. ``index`` is then the
engine's ``seq``, files are named ``<name>-<run start>-<NNNN>.csv``, and the ring position is
committed only once the rows before it are synced: a recorder restarted after a crash resumes
past the last ``seq`` its files hold (the stream's tag is kept in ``.record-<name>.json``), so
every live record is recorded once. A new stream (an engine with a new state folder: ``seq``
starts over) starts a new file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import ringbuffer
from common.cli import Parser, StopFlag, UsageError, check_consumer_name, run_program
from common.fsio import atomic_write
from common.log import bridge_stdlib, get_logger
from common.schema import Mode
from engine.cli import add_live_arguments, check_live, live_settings, ring_name
from engine.recording import HEADER, FileStats, Rotation, last_index, ns_column, render
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
    p.add_argument("--ring", type=ring_name, metavar="NAME", help="record the live records "
                   "of a running engine's ring instead of connecting to the feed")  # fmt: skip
    p.add_argument("--name", default="record", metavar="NAME",
                   help="with --ring: the consumer name (default record)")  # fmt: skip
    p.add_argument("--exit-at-end", action="store_true",
                   help="with --ring: exit 0 once the engine has ended the stream")
    args = p.parse_args(argv)
    if args.rotate_rows is not None and args.rotate_rows < 1:
        p.error(f"--rotate-rows takes a whole number >= 1, not {args.rotate_rows}")
    if args.rotate_minutes is not None and not 0 < args.rotate_minutes < 1e9:
        p.error(f"--rotate-minutes takes a number of minutes > 0, not {args.rotate_minutes}")
    return args


class Recorder:
    """The files of one recording run in ``folder`` (module docstring)."""

    def __init__(
        self, folder: Path, rotation: Rotation, stats: Any = dict, prefix: str = "quotes"
    ) -> None:
        self.folder = folder
        self.rotation = rotation
        self.source_stats = stats  # what the stats line adds (the live source's counters)
        self.run_name = prefix + time.strftime("-%Y%m%dT%H%M%SZ", time.gmtime())
        self.files = 0
        self.records = 0
        self._fd: int | None = None
        self._path: Path | None = None
        self._rows = 0
        self._started: int | None = None
        self._stats = FileStats()
        self._synced = time.monotonic()
        self._dirty = False  # rows written since the last fsync

    def write(self, table: pa.Table, seq: np.ndarray | None = None) -> None:
        """Append the records of ``table`` (``TABLE_SCHEMA`` or the ring's columns), rotating
        as told; ``seq``: their ``index`` (else the run's record count)."""
        arrivals = ns_column(table.column("arrival"))
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
            index = self.records if seq is None else seq[done : done + take]
            data, latency = render(part, self._rows, index)
            self._write_all(data)
            self._dirty = True
            self._rows += take
            self.records += take
            self._stats.add(part, latency)
            done += take

    def sync_if_due(self) -> bool:
        """Fsync the rows written since the last fsync once ``FSYNC_EVERY`` has passed since
        it (called by the loops whether data came or not, so a feed gone quiet has its last rows
        synced too); True when every row written so far is durable."""
        if self._dirty and time.monotonic() - self._synced >= FSYNC_EVERY:
            self.sync()
        return not self._dirty

    def sync(self) -> None:
        """Make every row written so far durable."""
        if self._fd is not None:
            os.fsync(self._fd)
        self._dirty = False
        self._synced = time.monotonic()

    def close(self) -> None:
        """Sync and close the current file, with its stats line."""
        if self._fd is None:
            return
        self.sync()
        os.close(self._fd)
        self._fd = None
        log.info("recorded", file=str(self._path), **self._stats.summary(), **self.source_stats())

    def _next_file(self, started_ns: int) -> None:
        """Open the next file. It appears under its name already holding its header (a synced
        temporary file hard-linked into place: a link never replaces a file, so another run's
        file of the same name bumps the number), so a kill at any point leaves no file without
        a header; at worst a hidden ``.<name>.tmp`` holding only the header."""
        self.close()
        tmp = self.folder / f".{self.run_name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                     0o644)  # fmt: skip
        try:
            self._fd = fd
            self._write_all(HEADER.encode())
            os.fsync(fd)
            while True:
                self.files += 1
                path = self.folder / f"{self.run_name}-{self.files:04d}.csv"
                try:
                    os.link(tmp, path)
                    break
                except FileExistsError:  # another run started in the same second: next number
                    continue
        except BaseException:
            os.close(fd)
            self._fd = None
            raise
        finally:
            tmp.unlink(missing_ok=True)
        self._path, self._rows, self._started = path, 0, started_ns
        self._stats = FileStats()
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
    if args.ring is None:
        check_live(args)
    else:
        check_consumer_name(args.name)
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
    if args.ring is not None:
        return run_ring(args, stop, folder, rotation)
    from engine.live import LiveSource  # websockets and asyncio: only for a feed

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
            recorder.sync_if_due()
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


def run_ring(args: argparse.Namespace, stop: StopFlag, folder: Path, rotation: Rotation) -> int:
    """Record the live records of ring ``args.ring`` (module docstring)."""
    state_path = folder / f".record-{args.name}.json"
    tag = watermark = None
    if state_path.exists():
        tag = json.loads(state_path.read_bytes())["tag"]
        for path in sorted(folder.glob(f"{args.name}-*.csv"), reverse=True):
            watermark = last_index(str(path))  # the newest file with a row
            if watermark is not None:
                break
    consumer = ringbuffer.ResumingConsumer(
        args.ring, args.name, release="commit", stop=lambda: stop.requested, sleep=stop.sleep,
        attach_poll=0.05, watermark=watermark, tag=tag if watermark is not None else None,
    )  # fmt: skip
    skipped = 0
    recorder = Recorder(folder, rotation, lambda: {"historical_skipped": skipped},
                        prefix=args.name)  # fmt: skip
    log.info("recording", ring=args.ring, name=args.name, out=str(folder), resume_after=watermark)
    token = None

    def commit_durable() -> None:
        """Commit the ring position read up to once every row before it is synced."""
        nonlocal token
        if token is not None and recorder.sync_if_due():
            consumer.commit(token)
            token = None

    try:
        while not stop.requested:
            got = consumer.read(timeout=0.1)
            if got is None:
                if consumer.ended and args.exit_at_end:
                    break
                commit_durable()
                continue
            if got.gap is not None:
                log.error("the ring skipped records", first_missing=got.gap.first_missing,
                          count=got.gap.count)  # fmt: skip
            batch = got.batch
            live = pc.equal(batch.column("mode"), int(Mode.LIVE))
            rows = batch.filter(live)
            skipped += batch.num_rows - rows.num_rows
            if rows.num_rows:
                if got.tag != tag:  # a new stream (its seq starts over): a file of its own
                    if tag is not None:
                        log.info("new stream: new file", tag=got.tag, previous=tag)
                        recorder.close()
                    atomic_write(state_path, json.dumps({"tag": got.tag}).encode())
                    tag = got.tag
                seq = rows.column("seq").to_numpy().astype(np.int64)
                recorder.write(pa.Table.from_batches([rows]), seq)
            token = got.token
            commit_durable()
    finally:
        recorder.close()  # syncs
        if token is not None:
            consumer.commit(token)
        consumer.close()
    log.info("stopped", records=recorder.records, files=recorder.files, historical_skipped=skipped)
    return 0


def _take(batch: tuple[pa.Table | None, list[Rejected]], recorder: Recorder,
          rejects: RejectLog) -> None:  # fmt: skip
    table, rejected = batch
    if table is not None:
        recorder.write(table)
    if rejected:
        rejects.report(rejected, log)


def main(argv: Sequence[str] | None = None) -> int:
    stop = StopFlag()
    stop.install()
    args = parse_args(argv)
    bridge_stdlib()
    return run_program("record", lambda: run(args, stop))


if __name__ == "__main__":
    sys.exit(main())
