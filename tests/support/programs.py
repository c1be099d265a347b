"""The project's programs as child processes of a test: run to the end, or run and watch."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import ringbuffer

from . import WAIT

ROOT = Path(__file__).resolve().parents[2]


def run_module(module: str, *args: str, **kw) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` to completion (bounded)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
        timeout=kw.pop("timeout", 120), **kw,
    )  # fmt: skip


class Proc:
    """``python -m module args`` running; its stderr lines are collected for :meth:`wait_log`.

    ``env`` adds to (or, with ``None`` values, removes from) this process's environment.
    """

    def __init__(
        self, module: str, args: Sequence[str], env: Mapping[str, str | None] | None = None
    ) -> None:
        full_env = dict(os.environ)
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        self.module = module
        self.p = subprocess.Popen(
            [sys.executable, "-m", module, *args], cwd=ROOT, env=full_env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()

    @property
    def pid(self) -> int:
        return self.p.pid

    def _pump(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_log(self, pattern: str, count: int = 1, timeout: float = WAIT) -> str:
        """Wait until ``count`` stderr lines match ``pattern``; return the last of them."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [ln for ln in self.lines if rx.search(ln)]
                if len(hits) >= count:
                    return hits[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not self._t.is_alive()):
                    raise AssertionError(
                        f"no {count}x {pattern!r} in stderr within {timeout}s; got:\n"
                        + "".join(self.lines[-30:])
                    )
                self._cond.wait(min(left, 0.2))

    def signal(self, sig: int) -> None:
        self.p.send_signal(sig)

    def wait(self, timeout: float = WAIT) -> int:
        """The exit code; fails (killing the process) if it does not exit within ``timeout``."""
        try:
            code = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(WAIT)
            raise AssertionError(
                f"{self.module} did not exit within {timeout}s; stderr:\n{self.stderr()}"
            ) from None
        self._t.join(5)
        return code

    def stderr(self) -> str:
        with self._cond:
            return "".join(self.lines)

    def stdout(self) -> str:
        """What it wrote to stdout (read once it has exited)."""
        assert self.p.stdout is not None
        return self.p.stdout.read()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.p.kill()
        self.p.wait(WAIT)


def stop_live_engine(engine: Proc, processor: Proc) -> None:
    """SIGTERM a live engine: it ends the stream and exits 0, and so does its ``--exit-at-end``
    processor once everything is written."""
    engine.signal(signal.SIGTERM)
    assert engine.wait() == 0, engine.stderr()
    assert processor.wait() == 0, processor.stderr()


@contextlib.contextmanager
def cleanup(*procs: Proc) -> Iterator[None]:
    """Kill whatever of ``procs`` is still running when the block ends (a failed test)."""
    try:
        yield
    finally:
        for p in procs:
            if p.p.poll() is None:
                p.kill()


def no_segment(ring: str) -> bool:
    return not ringbuffer.segment_path(ring).exists()

