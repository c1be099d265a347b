"""``python -m processor`` as a child process, and the files it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

import ringbuffer

from . import WAIT, wait_until
from .quotes import Quotes, part

ROOT = Path(__file__).resolve().parents[2]


class HasPid(Protocol):
    """A child process of a test (this module's ``Proc`` or ``enginetools.Proc``)."""

    @property
    def pid(self) -> int: ...


class Proc:
    """One ``python -m processor`` child; stderr goes to a file."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log = tmp / f"stderr-{time.monotonic_ns()}.txt"
        full_env = {k: v for k, v in os.environ.items() if k != "LATENCY_THRESHOLD"}
        full_env.update(env or {})
        with self.log.open("wb") as err:
            self.p = subprocess.Popen(
                [sys.executable, "-m", "processor", *args],
                cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=err,
            )  # fmt: skip
        self.pid = self.p.pid

    def wait(self, timeout: float = WAIT) -> int:
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"processor did not exit within {timeout}s; stderr:\n{self.stderr()}")
        return self.p.returncode

    def stderr(self) -> str:
        return self.log.read_text()

    def stdout(self) -> str:
        assert self.p.stdout is not None
        return self.p.stdout.read().decode()

    def signal(self, sig: int) -> None:
        self.p.send_signal(sig)


def out_args(folder: Path, ring: str, name: str = "mid-price") -> list[str]:
    """The options pointing a processor at ``ring`` and logs in ``folder``."""
    folder.mkdir(exist_ok=True)
    return ["--ring", ring, "--name", name, "--mid-log", str(folder / "mid.log"),
            "--error-log", str(folder / "err.log")]


def logs(folder: Path) -> tuple[bytes, bytes]:
    return (folder / "mid.log").read_bytes(), (folder / "err.log").read_bytes()


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None


def state_path(folder: Path, name: str = "mid-price") -> Path:
    return folder / f".processor-{name}.state.json"


def attached(w: ringbuffer.Writer, proc: HasPid) -> bool:
    """True once the process ``proc`` holds a slot of the ring."""
    return any(c["pid"] == proc.pid for c in w.consumers())


def last_seq(folder: Path, name: str = "mid-price") -> int:
    """The state file's last seq (-1 before the first record)."""
    state = read_state(state_path(folder, name)) or {}
    value = state.get("last_seq")
    return -1 if value is None else value


def written_up_to(folder: Path, seq: int, name: str = "mid-price") -> bool:
    """True once the processor ``name`` writing into ``folder`` has made ``seq`` durable."""
    return last_seq(folder, name) >= seq


class Publisher:
    """Publishes quotes from a thread in batches, so that a processor is mid-stream.

    Each batch waits ``every`` seconds; with ``ahead``, it also waits until fewer than
    ``ahead`` records are published beyond ``written()`` (what the processor has written), so
    the stream cannot run out while a test still means to interrupt the processor.
    """

    def __init__(
        self, w: ringbuffer.Writer, q: Quotes, batch: int, every: float = 0.0,
        ahead: int | None = None, written: Callable[[], int] | None = None,
    ) -> None:  # fmt: skip
        self.w, self.q, self.batch, self.every = w, q, batch, every
        self.ahead, self.written = ahead, written
        self.quit = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _room(self, published: int) -> bool:
        ahead = self.ahead  # read once: the test may lift the limit at any time
        if ahead is None or self.written is None:
            return True
        return published - self.written() < ahead

    def _run(self) -> None:
        try:
            n = len(self.q["seq"])
            for lo in range(0, n, self.batch):
                deadline = time.monotonic() + WAIT
                while not self._room(lo):  # flow control: poll what the processor wrote
                    if self.quit.wait(0.005):
                        return
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the processor wrote nothing for {WAIT}s")
                if self.quit.wait(self.every):  # the pace, and a way out
                    return
                self.w.publish(part(self.q, slice(lo, lo + self.batch)))
            self.done.set()
        except BaseException as exc:
            self.error = exc
            raise

    def finish(self) -> None:
        """Wait until everything is published."""
        wait_until(lambda: self.done.is_set() or self.error, "the publisher to finish")
        assert self.error is None, self.error

    def stop(self) -> None:
        self.quit.set()
        self.thread.join(WAIT)
