"""A k-way merge of sorted runs (``engine.runs``) into arrival order, chunk by chunk.

Each run is sorted by ``key = (arrival, line)``; keys are unique (a line holds one record).
Runs are opened lazily, in order of their first key, and hold one stored batch each. The
watermark is the smallest of: the last loaded key of each open run that has more batches, and
the first key of the next unopened run. Every loaded record with a key up to the watermark can
go out — nothing not yet loaded can come before it — and is merged with one vectorised lexsort.
The run that sets the watermark empties its batch, so each step makes progress. For a file
sorted by timestamp the runs barely overlap: two or three are open at a time.
"""

from __future__ import annotations

import numpy as np

from engine.runs import RUN_SCHEMA, RunFile

Key = tuple[int, int]


class _Run:
    def __init__(self, entries: list[list[int]]) -> None:
        self.entries = entries
        self.next = 0  # the next batch to load
        self.cols: dict[str, np.ndarray] = {}
        self.i = 0  # the next record of the loaded batch
        self.n = 0

    @property
    def first(self) -> Key:
        return (self.entries[0][4], self.entries[0][5])

    def load(self, file: RunFile) -> None:
        self.cols = file.read(self.entries[self.next])
        self.next += 1
        self.i, self.n = 0, len(self.cols["line"])

    @property
    def more(self) -> bool:
        return self.next < len(self.entries)

    def last(self) -> Key:
        return (int(self.cols["arrival"][-1]), int(self.cols["line"][-1]))

    def upto(self, key: Key | None) -> int:
        """How many loaded, unconsumed records have a key up to ``key`` (None: all)."""
        if key is None:
            return self.n - self.i
        arr = self.cols["arrival"][self.i :]
        lo = int(np.searchsorted(arr, key[0], "left"))
        hi = int(np.searchsorted(arr, key[0], "right"))
        lines = self.cols["line"][self.i + lo : self.i + hi]
        return lo + int(np.searchsorted(lines, key[1], "right"))


class MergedRuns:
    """The records of a ``RunFile`` in arrival order (stable: ties in file order)."""

    def __init__(self, file: RunFile) -> None:
        self.file = file
        runs = [_Run(r) for r in file.manifest.runs if r]
        self._waiting = sorted(runs, key=lambda r: r.first, reverse=True)  # pop() = smallest
        self._active: list[_Run] = []

    def next_chunk(self) -> dict[str, np.ndarray] | None:
        """The next records in order (``RUN_SCHEMA`` columns), None at the end."""
        for run in self._active:
            if run.i >= run.n and run.more:
                run.load(self.file)
        self._active = [r for r in self._active if r.i < r.n]
        front = min((r.last() for r in self._active if r.more), default=None)
        while self._waiting and (front is None or self._waiting[-1].first <= front):
            run = self._waiting.pop()
            run.load(self.file)
            self._active.append(run)
            if run.more:
                front = run.last() if front is None else min(front, run.last())
        if not self._active:
            return None
        parts: list[dict[str, np.ndarray]] = []
        for run in self._active:
            k = run.upto(front)
            if k:
                parts.append({n: v[run.i : run.i + k] for n, v in run.cols.items()})
                run.i += k
        if len(parts) == 1:
            return parts[0]
        cols = {n: np.concatenate([p[n] for p in parts]) for n in RUN_SCHEMA.names}
        order = np.lexsort((cols["line"], cols["arrival"]))
        return {n: v[order] for n, v in cols.items()}
