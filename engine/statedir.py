"""One engine per state directory: a lock the kernel releases when its holder dies.

The state directory holds an engine's control file, checkpoint, parse cache and reject log;
two engines sharing one would switch each other's mode and overwrite each other's resume
position. :func:`lock` takes an exclusive ``flock`` on ``<state-dir>/engine.lock`` for the life
of the process and writes the holder's pid into it, so a second engine is refused with a line
naming the folder and that pid. A holder killed with SIGKILL leaves the file, not the lock.
"""

from __future__ import annotations

from pathlib import Path

from common.fsio import lock_folder

LOCK_FILE = "engine.lock"


def lock(state_dir: Path) -> int:
    """Lock ``state_dir`` for this process; returns the lock's fd (kept open until exit).

    Raises :class:`~common.cli.UsageError` when another live process holds it.
    """
    return lock_folder(state_dir / LOCK_FILE, flag="--state-dir", who="engine")
