"""The engine's checkpoint: where the stream stands, kept in the state directory.

The checkpoint is a hint written atomically now and then; the ring's own records are the truth.
On start, :func:`recover` takes the later of the two, so a crash between publishing and
checkpointing neither repeats nor skips a record.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.cli import UsageError
from common.fsio import atomic_write
from common.log import get_logger
from common.schema import Mode
from ringbuffer import Salvage

CHECKPOINT_FILE = "checkpoint.json"
_log = get_logger("engine")
VERSION = 1


class CheckpointError(UsageError):
    """The checkpoint file exists but cannot be used."""


@dataclass
class Checkpoint:
    """``stream``: this state directory's stream id (the ring's tag); ``next_seq``: the next
    sequence to publish; ``input``: identity of the historical file; ``pos``: the next row of
    its sorted table to publish."""

    stream: int = field(default_factory=lambda: secrets.randbits(62) + 1)
    next_seq: int = 0
    input: dict[str, Any] | None = None
    pos: int = 0
    mode: str = "historical"

    def save(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        body = {"version": VERSION, **asdict(self)}
        atomic_write(state_dir / CHECKPOINT_FILE, (json.dumps(body, indent=1) + "\n").encode())

    @classmethod
    def load(cls, state_dir: Path) -> Checkpoint | None:
        """The saved checkpoint, None if there is none; raises CheckpointError if unusable."""
        path = state_dir / CHECKPOINT_FILE
        try:
            body = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: unreadable checkpoint ({exc}); delete it") from exc
        if not isinstance(body, dict) or body.pop("version", None) != VERSION:
            raise CheckpointError(f"{path}: not a version {VERSION} checkpoint; delete it")
        try:
            cp = cls(**body)
        except TypeError as exc:
            raise CheckpointError(f"{path}: bad checkpoint fields ({exc}); delete it") from exc
        if not (isinstance(cp.next_seq, int) and isinstance(cp.pos, int) and cp.next_seq >= 0
                and cp.pos >= 0 and isinstance(cp.stream, int)):  # fmt: skip
            raise CheckpointError(f"{path}: bad checkpoint values; delete it")
        return cp


class BackgroundSaver:
    """Writes checkpoints on a thread of its own, so an fsync never delays a paced publish.

    Only the latest snapshot handed over is written; :meth:`flush` waits until it is.
    """

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir
        self._pending: Checkpoint | None = None
        self._cond = threading.Condition()
        self._busy = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="checkpoint", daemon=True)
        self._thread.start()

    def submit(self, cp: Checkpoint) -> None:
        with self._cond:
            self._pending = dataclasses.replace(cp)
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None:
                    self._cond.wait()
                cp, self._pending, self._busy = self._pending, None, True
            try:
                cp.save(self._dir)
            except BaseException as exc:  # surfaced to the engine loop by flush()
                self.error = exc
                _log.error("checkpoint not written", dir=str(self._dir), error=str(exc))
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def flush(self) -> None:
        """Wait until every submitted checkpoint is on disk; re-raise a failed write."""
        with self._cond:
            while self._pending is not None or self._busy:
                self._cond.wait()
        if self.error is not None:
            raise self.error


def recover(cp: Checkpoint, left: Salvage | None) -> tuple[Checkpoint, bool]:
    """``cp`` advanced to what the old ring shows was published; True if ``left`` is this
    stream's (its records are to be carried into the new ring)."""
    if left is None or left.tag != cp.stream or left.records.num_rows == 0:
        return cp, False
    seq = left.records.column("seq").to_numpy()
    cp.next_seq = max(cp.next_seq, int(seq[-1]) + 1)
    mode = left.records.column("mode").to_numpy()
    pos = left.records.column("pos").to_numpy()[mode == Mode.HISTORICAL]
    if pos.size:
        cp.pos = max(cp.pos, int(np.max(pos)) + 1)
    return cp, True
