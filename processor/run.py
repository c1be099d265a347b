"""The processor's main loop: read, render, hand to the writer, commit what is durable.

Only the main thread touches the source of records: the ring, through a
``ringbuffer.ResumingConsumer``, or with ``--redis`` the relay's stream through
``relay.StreamConsumer`` (both a ``processor.source.Source``: one loop for both). It waits for
the ring, drops re-sent records by ``seq`` and attaches again to a new ring. Each batch is
rendered (``processor.rules.render``, two at a time on worker threads: ``processor.parallel``)
and queued, in order, to the writer thread (``processor.output``) with the ring position after
it; when the writer reports a position durable (logs fsynced, state file replaced) the main
thread commits it to the ring (attached with ``release="commit"``, so uncommitted records stay
in the ring). A restart truncates the logs to the state's lengths and drops records whose
``seq`` is at or below the state's ``last_seq``: a kill at any moment, then a restart, gives
the same logs as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

import ringbuffer
from common.cli import StopFlag, UsageError
from common.log import Logger, get_logger
from common.schema import columns
from processor import decimals
from processor import state as statefile
from processor.config import Config
from processor.output import (
    PARQUET_SCHEMA,
    Chunk,
    LogFile,
    OutputError,
    OutputWriter,
    ParquetSink,
)
from processor.parallel import RenderPool
from processor.rules import Rendered, classify, warm_up
from processor.source import Source, open_source

#: The ring columns the processor reads, with the dtypes it needs.
EXPECT = columns("seq", "mode", "ticker", "timestamp", "latency", "bid_price", "ask_price")
READ_MAX = 65536
READ_TIMEOUT = 0.1  # seconds a read waits for records
COMMIT_POLL = 0.002  # ... while a durable position may be waiting to be committed
ATTACH_POLL = 0.25  # seconds between checks of the stop flag while waiting for the ring
IDLE_AFTER_END = 0.1  # seconds between checks for a new ring once the stream has ended
STATS_EVERY = 5.0


def parquet_rows(batch: pa.RecordBatch, threshold: float) -> pa.Table:
    """(timestamp, ticker, mid) of the records of ``batch`` that make mid lines (copies)."""
    bid = batch.column("bid_price").to_numpy()
    ask = batch.column("ask_price").to_numpy()
    _, good = classify(batch, threshold)
    stamps = batch.column("timestamp").to_numpy().view(np.int64)[good]
    ticker = batch.column("ticker")
    if isinstance(ticker, pa.DictionaryArray):
        indices = ticker.indices.to_numpy()[good]
        names = ticker.dictionary.take(pa.array(indices)).cast(pa.string())
    else:
        names = ticker.filter(pa.array(good)).cast(pa.string())
    return pa.table(
        [
            pa.array(stamps, pa.int64()).cast(PARQUET_SCHEMA.field("timestamp").type),
            names,
            pa.array(decimals.exact_mid(bid[good], ask[good]), pa.float64()),
        ],
        schema=PARQUET_SCHEMA,
    )


class Processor:
    """One run of ``python -m processor``."""

    def __init__(self, cfg: Config, stop: StopFlag, log: Logger) -> None:
        self.cfg = cfg
        self.stop = stop
        self.log = log
        self.ring: Source | None = None
        self.writer: OutputWriter | None = None
        self.mid: LogFile | None = None
        self.errors: LogFile | None = None
        self._initial: statefile.State | None = None
        self._queued: tuple[int, int] | None = None  # (epoch, position) of the last chunk queued
        self._committed: tuple[int, int] | None = None  # ... and of the last commit
        self.records = self.mids = self.error_lines = self.duplicates = 0
        self.renders: RenderPool[dict[str, Any]] = RenderPool(
            cfg.threshold, cfg.extended, threads=cfg.threads
        )
        self.started = time.monotonic()
        self.stats_at = self.started + STATS_EVERY
        self.stats_records = 0

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> int:
        cfg = self.cfg
        try:
            self.mid = LogFile(cfg.mid_log, "mid log")
            self.errors = LogFile(cfg.error_log, "error log")
            if self.mid.identity == self.errors.identity:
                raise UsageError(
                    f"--mid-log {cfg.mid_log} and --error-log {cfg.error_log} are the same "
                    "file: give them different paths"
                )
            saved = statefile.load(cfg.state)
            warm_up()  # while the engine is still starting, typically
            self.ring = self._source(resume=saved is not None)
            if not self.ring.attach():
                self.log.info("stopped while waiting for the ring", signal=self.stop.signum)
                return 0
            self._restore(saved)
            parquet = ParquetSink(cfg.parquet) if cfg.parquet is not None else None
            assert self._initial is not None
            self.writer = OutputWriter(
                self.mid,
                self.errors,
                cfg.state,
                self._initial,
                parquet=parquet,
                cycle_records=self.ring.capacity // 4,
            )
            self.writer.start()
            code = 1
            try:
                code = self._loop()
            finally:
                code = self._finish(code)
            return code
        finally:
            self.renders.close()  # before the ring is unmapped: workers may be reading it
            if self.ring is not None:
                self.ring.close()
            for f in (self.mid, self.errors):
                if f is not None:
                    f.close()

    def _source(self, resume: bool) -> Source:
        """The ring, or with ``--redis`` the relay's stream: the same interface, this loop."""
        return open_source(
            self.cfg, resume=resume, log=self.log, stop=lambda: self.stop.requested,
            sleep=self.stop.sleep, expect=EXPECT, events=_RingEvents(self),
            attach_poll=ATTACH_POLL, idle_after_end=IDLE_AFTER_END,
        )  # fmt: skip

    def _restore(self, saved: statefile.State | None) -> None:
        """Cut the logs to what the state file says is durable; write the starting state."""
        cfg, ring, mid, errors = self.cfg, self.ring, self.mid, self.errors
        assert ring is not None and ring.tag is not None and mid is not None and errors is not None
        paths = {"mid_log": str(cfg.mid_log.resolve()), "error_log": str(cfg.error_log.resolve())}
        fresh = statefile.State(
            name=cfg.name, ring=cfg.ring, tag=ring.tag, last_seq=None, mid_bytes=0,
            error_bytes=0, format="extended" if cfg.extended else "spec",
            threshold=cfg.threshold, **paths,
        )  # fmt: skip
        if saved is None:
            mid.reset(0)
            errors.reset(0)
            initial = fresh
            self.log.info("starting both logs afresh", state=cfg.state)
        else:
            self._check_saved(saved, paths)
            mid.reset(saved.mid_bytes)
            errors.reset(saved.error_bytes)
            last_seq = saved.last_seq
            if saved.tag != ring.tag:
                self.log.warning(
                    "the ring carries another engine stream; its records are appended after "
                    "the logs' committed content", state_tag=saved.tag, ring_tag=ring.tag,
                )  # fmt: skip
                last_seq = None
            initial = fresh.advanced(
                last_seq=last_seq, mid_bytes=saved.mid_bytes, error_bytes=saved.error_bytes
            )
            self.log.info(
                "resuming", last_seq=last_seq, mid_bytes=saved.mid_bytes,
                error_bytes=saved.error_bytes,
            )  # fmt: skip
        try:
            statefile.save(cfg.state, initial)
        except OSError as exc:
            raise OutputError(f"cannot write state file {cfg.state}: {exc.strerror}") from exc
        self._initial = initial
        ring.watermark = initial.last_seq  # drop what the logs already hold

    def _check_saved(self, saved: statefile.State, paths: dict[str, str]) -> None:
        cfg = self.cfg
        if saved.name != cfg.name:
            raise UsageError(
                f"state file {cfg.state} belongs to consumer {saved.name!r}, not {cfg.name!r}: "
                "pass another --state"
            )
        if (saved.mid_log, saved.error_log) != (paths["mid_log"], paths["error_log"]):
            raise UsageError(
                f"state file {cfg.state} describes the logs {saved.mid_log} and "
                f"{saved.error_log}: pass those paths again, or remove the state file to start "
                "afresh"
            )
        for f, n in ((self.mid, saved.mid_bytes), (self.errors, saved.error_bytes)):
            assert f is not None
            if f.regular and f.size_on_disk() < n:
                raise UsageError(
                    f"{f.what} {f.path} holds {f.size_on_disk()} bytes, but the state file "
                    f"{cfg.state} says {n} were written: the log was changed by something "
                    "else; remove the state file to start both logs afresh"
                )
        fmt = "extended" if cfg.extended else "spec"
        if (saved.format, saved.threshold) != (fmt, cfg.threshold):
            self.log.warning(
                "the logs so far were written with other settings", format=saved.format,
                threshold=saved.threshold,
            )  # fmt: skip

    def _loop(self) -> int:
        """Read until the end (with --exit-at-end), a stop request, or a failure."""
        assert self.writer is not None and self.ring is not None
        ring = self.ring
        while not self.stop.requested:
            self._commit()
            if self.writer.error is not None:
                return 1
            self._stats()
            try:
                # While records are queued but not yet committed, come back often: the engine
                # may be waiting for their ring space, and only this thread commits.
                pending = self._queued != self._committed
                got = ring.read(
                    max_records=READ_MAX, timeout=COMMIT_POLL if pending else READ_TIMEOUT
                )
            except ringbuffer.Overrun as exc:
                self.log.error(
                    "records were lost before this processor read them; stopping",
                    unread=ring.lag(), position=ring.position, why=str(exc),
                )  # fmt: skip
                return 1
            if got is None:  # nothing yet, the end, or a new ring (see ResumingConsumer.read)
                self._emit(self.renders.drain())
                if ring.ended and self.cfg.exit_at_end:
                    self.log.info("the engine ended the stream")
                    return 0
                continue
            if got.gap is not None:  # never carry on past lost records (README, failure model)
                if got.gap.at:  # the records before the gap are written
                    before = dataclasses.replace(got, batch=got.batch.slice(0, got.gap.at))
                    with contextlib.suppress(OutputError):  # the summary reports a failure
                        self._process(before)
                self.log.error(
                    "records missing from the stream (never delivered by the ring, or out of "
                    "order); what came before them is written, nothing after",
                    first_missing=got.gap.first_missing, count=got.gap.count,
                )  # fmt: skip
                return 1
            try:
                self._process(got)
            except OutputError:
                return 1
        if self.stop.requested:
            self.log.info("stopping", signal=self.stop.signum)
        return 0

    def _process(self, got: ringbuffer.Delivery) -> None:
        """Render the records kept, queue the bytes."""
        assert self.ring is not None and self.writer is not None
        self.records += got.records
        self.duplicates += got.duplicates
        batch = got.batch
        table = None
        if batch.num_rows and self.cfg.parquet is not None:
            table = parquet_rows(batch, self.cfg.threshold)
        # The batch's records stay in the ring until the writer reports its chunk durable
        # (release="commit"), so the workers may read them after the next read.
        self.renders.submit(batch, {
            "epoch": got.token.epoch, "position": got.token.position, "tag": got.tag,
            "last_seq": got.last_seq, "table": table, "records": got.records,
        })  # fmt: skip
        # Hold results back only while more records are waiting: a quiet stream's lines are
        # written at once.
        self._emit(self.renders.ready() if self.ring.lag() else self.renders.drain())

    def _emit(self, results: Iterable[tuple[Rendered, dict[str, Any]]]) -> None:
        """Queue rendered batches to the writer, in order."""
        assert self.writer is not None
        for out, meta in results:
            self.mids += out.n_mid
            self.error_lines += out.n_errors
            self.writer.put(Chunk(out.mid_parts, out.error_parts, **meta))
            self._queued = (meta["epoch"], meta["position"])

    def _commit(self) -> None:
        """Commit to the ring the latest position the writer made durable (a position of an
        earlier ring is not committed)."""
        assert self.writer is not None
        report = self.writer.take_report()
        ring = self.ring
        if report is not None and ring is not None and ring.commit(ringbuffer.CommitToken(*report)):
            self._committed = report

    def _stats(self) -> None:
        now = time.monotonic()
        if now < self.stats_at:
            return
        rate = (self.records - self.stats_records) / (now - self.stats_at + STATS_EVERY)
        self.log.info(
            "stats", records_per_s=round(rate), mids=self.mids, errors=self.error_lines,
            duplicates=self.duplicates, lag=self.ring.lag() if self.ring else 0,
        )  # fmt: skip
        self.stats_at = now + STATS_EVERY
        self.stats_records = self.records

    def _finish(self, code: int) -> int:
        """Write and commit what was rendered, then log the summary."""
        assert self.writer is not None
        with contextlib.suppress(OutputError):  # a failed writer reports below
            self._emit(self.renders.drain())
        self.renders.close()
        error = self.writer.finish()
        self._commit()
        if error is not None:
            self.log.error(str(error))
            code = 1
        self.log.info(
            "summary", records=self.records, mids=self.mids, errors=self.error_lines,
            duplicates=self.duplicates, elapsed=f"{time.monotonic() - self.started:.3f}s",
            exit=code,
        )  # fmt: skip
        return code


class _RingEvents(ringbuffer.ConsumerEvents):
    """The ring consumer's events as the processor's log lines. Before a re-attach, the
    rendering of the old ring's batches is finished (the workers read its memory)."""

    def __init__(self, processor: Processor) -> None:
        self.p = processor

    def waiting(self, consumer: ringbuffer.ResumingConsumer) -> None:
        self.p.log.info("waiting for the ring", ring=consumer.ring)

    def attached(self, consumer: ringbuffer.ResumingConsumer, resume: bool) -> None:
        p = self.p
        p._queued = p._committed = None  # what was queued before is not this ring's
        p.log.info(
            "attached", ring=consumer.ring, name=consumer.name, position=consumer.position,
            tag=consumer.tag, resume=resume,
        )  # fmt: skip
        if p.writer is not None:
            p.writer.cycle_records = consumer.capacity // 4

    def reattaching(
        self, consumer: ringbuffer.ResumingConsumer, cause: ringbuffer.RingReset | None
    ) -> None:
        p = self.p
        p.log.warning("the ring was recreated; attaching to the new one", ring=consumer.ring)
        p._emit(p.renders.drain())  # the workers are done with the old ring's memory

    def new_stream(self, consumer: ringbuffer.ResumingConsumer, old_tag: int) -> None:
        self.p.log.warning(
            "the new ring carries another engine stream; appending all its records",
            old_tag=old_tag, new_tag=consumer.tag,
        )  # fmt: skip


#: The ring's errors that mean the configuration cannot work (exit 2, as a ``UsageError``).
USAGE_ERRORS = (ringbuffer.ConsumerNameInUse, ringbuffer.SchemaMismatch)


def run(cfg: Config, stop: StopFlag) -> int:
    """Run the processor until the end, ``stop``, or a failure; returns the exit code (0 done,
    1 runtime failure). A usage or configuration error raises ``UsageError`` (exit 2, mapped by
    ``common.cli.run_program`` as in every program); other failures raise."""
    try:
        return Processor(cfg, stop, get_logger("processor")).run()
    except USAGE_ERRORS as exc:
        raise UsageError(str(exc)) from exc
