"""The engine: asks the source of the current mode for due batches, stamps them with the stream
sequence, publishes them to the ring, switches modes on request, and checkpoints.

It knows sources only through ``engine.sources.Source``; files, sockets and signals stay in
``engine.cli`` and the source modules.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import ringbuffer
from common.cli import UsageError
from common.log import Logger
from common.schema import Mode
from engine.checkpoint import BackgroundSaver, Checkpoint
from engine.control import ModeControl
from engine.pacing import Clock
from engine.rejects import RejectLog
from engine.runs import Stopped as LoadStopped
from engine.sources import (
    HISTORICAL_SOURCES,
    HistoricalSource,
    Source,
    SourceBatch,
    StreamingHistoricalSource,
)

STATS_EVERY = 5.0
CHECKPOINT_EVERY = 1.0
PROGRESS_EVERY = 1.0


class StrictStop(UsageError):
    """``--strict`` and an input was rejected."""


@dataclass
class EngineOptions:
    mode: Mode
    exit_at_end: bool = False
    strict: bool = False
    wait_for_consumers: int = 0
    drain_timeout: float = 10.0
    progress: bool = False


class Engine:
    """Runs the replay until the end (with ``exit_at_end``) or until :meth:`stop`."""

    def __init__(
        self,
        options: EngineOptions,
        writer: ringbuffer.Writer,
        checkpoint: Checkpoint,
        state_dir: Path,
        control: ModeControl,
        rejects: RejectLog,
        sources: dict[Mode, Callable[[], Source]],
        clock: Clock,
        log: Logger,
    ) -> None:
        self.opts = options
        self.writer = writer
        self.cp = checkpoint
        self.control = control
        self.rejects = rejects
        self._factories = sources
        self._sources: dict[Mode, Source] = {}
        self.clock = clock
        self.log = log
        self.mode = options.mode
        self.stopping = False
        self.keep_ring = False  # a consumer was behind at the end: leave the segment in place
        self.keep_end = False  # ... and one of them still runs: it reads the end of stream
        self.published = 0
        self._dictionaries: dict[tuple[int, int], np.ndarray] = {}
        self._late: list[float] = []
        self._complete_logged = False
        self._last = {"stats": 0.0, "checkpoint": 0.0, "progress": 0.0}
        self._stats_base = (0.0, 0)
        self._saver = BackgroundSaver(state_dir)

    # -- control -----------------------------------------------------------------------------

    def stop(self) -> None:
        """End at the next opportunity (safe from a signal handler); a second call also cuts
        short the wait for consumers at the end."""
        self.stopping = True
        self.writer.interrupt()

    def _source(self, mode: Mode) -> Source:
        if mode not in self._sources:
            self._sources[mode] = self._factories[mode]()
        return self._sources[mode]

    def _switch(self, mode: Mode, initial: bool = False) -> None:
        if not initial:
            self._source(self.mode).stop()
        previous, self.mode = self.mode, mode
        self.cp.mode = str(mode)
        self._save()  # before the new mode publishes anything
        self.control.record(mode)
        source = self._source(mode)
        source.start()
        fields: dict[str, Any] = {"mode": mode, "seq": self.cp.next_seq}
        if isinstance(source, HISTORICAL_SOURCES):
            fields.update(pos=source.pos, of=source.total)
        if initial:
            self.log.info("started", **fields)
        else:
            self.log.info("switched", **{"from": previous}, **fields)

    # -- publishing --------------------------------------------------------------------------

    def _ticker_codes(self, tickers: pa.Array) -> np.ndarray:
        if not pa.types.is_dictionary(tickers.type):
            return self.writer.symbol_codes(tickers)
        dictionary = tickers.dictionary
        key = (dictionary.buffers()[-1].address if len(dictionary) else 0, len(dictionary))
        mapping = self._dictionaries.get(key)
        if mapping is None:
            mapping = self.writer.symbol_codes(dictionary)
            self._dictionaries = {key: mapping}  # one at a time: the historical table's
        return mapping[tickers.indices.to_numpy(zero_copy_only=False)]

    def _publish(self, batch: SourceBatch, mode: Mode) -> int:
        n = len(batch)
        cols = dict(batch.columns)
        cols["ticker"] = self._ticker_codes(cols["ticker"])
        cols["seq"] = np.arange(self.cp.next_seq, self.cp.next_seq + n, dtype=np.uint64)
        cols["mode"] = np.full(n, mode, dtype=np.uint8)
        cols["pos"] = (
            batch.positions if batch.positions is not None else np.full(n, -1, dtype=np.int64)
        )
        before = self.writer.cursor
        with contextlib.suppress(ringbuffer.Interrupted):  # stopping: keep what was published
            self.writer.publish(cols)
        done = self.writer.cursor - before
        self.cp.next_seq += done
        self.published += done
        return done

    def publish_carried(self, records: pa.Table) -> None:
        """Republish records salvaged from the previous ring, with their own sequences."""
        self.writer.publish(records)
        self.log.info("carried records over from the previous ring", records=records.num_rows)

    def _handle_rejects(self, batch: SourceBatch) -> None:
        if not batch.rejected:
            return
        self.rejects.report(batch.rejected, self.log)
        if self.opts.strict:
            first = batch.rejected[0]
            raise StrictStop(f"{first.source}:{first.line}: {first.reason} (--strict)")

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        """Replay until done or stopped; returns the exit code."""
        try:
            return self._run()
        except LoadStopped:  # stopped while the historical input was read: end cleanly
            return self._finish(drain=False)

    def _run(self) -> int:
        self._source(self.mode)  # load the input while consumers attach
        if self.opts.wait_for_consumers:
            self.log.info("waiting for consumers", n=self.opts.wait_for_consumers)
            while not self.stopping and not self.writer.wait_for_consumers(
                self.opts.wait_for_consumers, timeout=0.1
            ):
                pass
        self._switch(self.mode, initial=True)
        self._last = dict.fromkeys(self._last, self.clock.now())
        self._stats_base = (self.clock.now(), 0)
        while not self.stopping:
            requested = self.control.poll(self.mode)
            if requested is not None:
                self._switch(requested)
            source = self._source(self.mode)
            batch = source.poll(timeout=0.05)
            if batch is not None:
                self._handle_rejects(batch)
                if len(batch):
                    done = self._publish(batch, source.mode)
                    source.advance(done)
                    if batch.late_s:
                        self._late.append(batch.late_s)
            if isinstance(source, HISTORICAL_SOURCES) and source.exhausted:
                self._at_end(source)
                if self.opts.exit_at_end:
                    return self._finish(drain=True)
                self.clock.sleep(0.05)
            self._periodic()
        return self._finish(drain=False)

    def _at_end(self, source: HistoricalSource | StreamingHistoricalSource) -> None:
        if not self._complete_logged:
            self._complete_logged = True
            self._save()
            self.log.info("historical replay complete", records=source.total, seq=self.cp.next_seq)

    def _save(self, wait: bool = True) -> None:
        """Checkpoint, with the historical position as published so far; ``wait=False`` leaves
        the write to the background saver (periodic checkpoints are only hints)."""
        hist = self._sources.get(Mode.HISTORICAL)
        if isinstance(hist, HISTORICAL_SOURCES):
            self.cp.pos = hist.pos
        self._saver.submit(self.cp)
        if wait:
            self._saver.flush()

    def _periodic(self) -> None:
        now = self.clock.now()
        hist = self._sources.get(Mode.HISTORICAL)
        if now - self._last["checkpoint"] >= CHECKPOINT_EVERY:
            self._last["checkpoint"] = now
            self._save(wait=False)
        if (
            self.opts.progress
            and isinstance(hist, HISTORICAL_SOURCES)
            and self.mode == Mode.HISTORICAL
            and now - self._last["progress"] >= PROGRESS_EVERY
        ):
            self._last["progress"] = now
            self._progress(hist, now)
        if now - self._last["stats"] >= STATS_EVERY:
            self._last["stats"] = now
            self.log.info("stats", **self.stats(now))

    def stats(self, now: float) -> dict[str, Any]:
        t0, n0 = self._stats_base
        self._stats_base = (now, self.published)
        consumers = self.writer.consumers()
        lag = max((c["lag"] for c in consumers), default=0)
        fields: dict[str, Any] = {
            "mode": self.mode,
            "records_per_s": round((self.published - n0) / max(now - t0, 1e-9)),
            "published": self.published,
            "seq": self.cp.next_seq,
            "consumers": len(consumers),
            "ring_fill": f"{min(lag, self.writer.capacity) / self.writer.capacity:.1%}",
            "slowest_lag": lag,
            "rejected": self.rejects.count,
        }
        live = self._sources.get(Mode.LIVE)
        if self.mode is Mode.LIVE and live is not None:
            counts = getattr(live, "stats", {})
            shown = ("frames", "connects")
            fields.update({f"live_{k}": v for k, v in counts.items()
                           if k in shown or (k.startswith("venue_") and v)})  # fmt: skip
        fields.update(self.lateness())
        return fields

    def lateness(self) -> dict[str, float]:
        """Percentiles of how late batches were published at a finite speed, in ms."""
        if not self._late:
            return {}
        late = np.array(self._late) * 1e3
        return {"late_p50_ms": float(np.percentile(late, 50)),
                "late_p99_ms": float(np.percentile(late, 99))}  # fmt: skip

    def _progress(
        self, hist: HistoricalSource | StreamingHistoricalSource, now: float
    ) -> None:
        t0, n0 = self._stats_base
        rate = (self.published - n0) / max(now - t0, 1e-9)
        left = hist.total - hist.pos
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        pct = hist.pos / max(hist.total, 1)
        sys.stderr.write(f"\rhistorical {hist.pos}/{hist.total} ({pct:.0%}) "
                         f"{rate:,.0f} rec/s ETA {eta}   ")  # fmt: skip
        sys.stderr.flush()

    def _finish(self, drain: bool) -> int:
        for source in self._sources.values():
            source.stop()
        if self.opts.progress:
            sys.stderr.write("\n")
        try:
            self._save()
        finally:
            self.writer.end()  # even when the checkpoint failed: consumers must not hang
        if drain:
            self.log.info("end of stream published; waiting for consumers to read everything")
            while not self.stopping and not self.writer.wait_drained(timeout=0.1):
                pass
        # The signal that stopped the engine also unblocked a publish; the drain still waits
        # (for a dead consumer, its grace period: a supervisor may restart it). A second
        # signal cuts it short.
        self.writer.resume()
        if self.stopping:
            self.writer.wait_drained(timeout=self.opts.drain_timeout)
        for c in self.writer.behind():
            self.keep_ring = True
            self.keep_end = self.keep_end or c["alive"]  # a live reader is owed the end
            self.log.warning(
                "consumer had not read everything at exit; the ring is kept for the next "
                "engine with this --state-dir and --ring, which carries its records",
                consumer=c["name"], pid=c["pid"], unread=c["unread"],
            )  # fmt: skip
        summary = {"published": self.published, "seq": self.cp.next_seq,
                   "rejected": self.rejects.count, **self.lateness()}  # fmt: skip
        self.log.info("stopped", **summary)
        return 0
