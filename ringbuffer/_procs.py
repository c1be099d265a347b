"""Process identity for liveness checks: a pid plus its start time, so a reused pid is not alive."""

from __future__ import annotations

import os


def start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot, or 0 when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    # Field 2 (comm) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):  # a zombie is dead, only not yet reaped
        return 0
    return int(fields[19])


def alive(pid: int, started: int) -> bool:
    """True while the process ``pid`` that started at ``started`` still runs."""
    return pid > 0 and start_time(pid) == started


def me() -> tuple[int, int]:
    """This process's (pid, start time)."""
    pid = os.getpid()
    return pid, start_time(pid)
