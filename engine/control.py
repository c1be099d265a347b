"""Mode switching requests: SIGUSR1 toggles, the control file sets a mode.

The signal handler only counts; the engine's loop asks :meth:`ModeControl.poll` for the mode to
be in, which also reads the control file when it changed (checked at most every 100 ms).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from common.fsio import atomic_write
from common.log import Logger
from common.schema import Mode


class ModeControl:
    """Collects switch requests from the signal and from the control file at ``path``."""

    def __init__(self, path: Path, log: Logger, check_every: float = 0.1) -> None:
        self.path = path
        self._log = log
        self._check_every = check_every
        self._toggles = 0  # incremented by the signal handler
        self._seen_toggles = 0
        self._next_check = 0.0
        self._stamp: tuple[int, int, int] | None = None

    def toggle(self) -> None:
        """Request a toggle (called from the SIGUSR1 handler: only counts)."""
        self._toggles += 1

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def record(self, mode: Mode) -> None:
        """Write the current mode to the control file, so it always shows the mode in force."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, f"{mode}\n".encode())
        self._stamp = self._file_stamp()

    def poll(self, current: Mode) -> Mode | None:
        """The mode requested since the last poll, if it differs from ``current``."""
        toggles = self._toggles
        if toggles != self._seen_toggles:
            flips = toggles - self._seen_toggles
            self._seen_toggles = toggles
            if flips % 2:
                self._log.info("switch requested", by="SIGUSR1", to=current.other)
                return current.other
        now = time.monotonic()
        if now < self._next_check:
            return None
        self._next_check = now + self._check_every
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            text = self.path.read_text(errors="replace")
        except OSError as exc:
            self._log.warning("control file unreadable", path=str(self.path), error=str(exc))
            return None
        mode = Mode.parse(text)
        if mode is None:
            self._log.warning(
                "control file ignored: write 'historical' or 'live'",
                path=str(self.path),
                content=text.strip()[:40],
            )
            return None
        if mode != current:
            self._log.info("switch requested", by="control file", to=mode)
            return mode
        return None
