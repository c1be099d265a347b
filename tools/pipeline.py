"""Run the pipeline as users do: the engine and processors as separate programs on one ring.

Used by ``make demo``, the sample-log regeneration, tests and the end-to-end benchmarks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Replay:
    """What one historical replay produced."""

    mid_log: Path
    error_log: Path
    state_dir: Path
    seconds: float
    engine_stderr: str
    processor_stderr: str


def count_lines(path: Path) -> int:
    """Lines in ``path`` (0 if it does not exist)."""
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_ring(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def start(module: str, args: Sequence[str], log: Path | None = None) -> subprocess.Popen:
    """Start ``python -m module args`` from the project root; stderr to ``log`` if given."""
    err = open(log, "w") if log is not None else None  # noqa: SIM115
    try:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err if err is not None else subprocess.DEVNULL,
        )
    finally:
        if err is not None:
            err.close()


def wait(proc: subprocess.Popen, what: str, timeout: float) -> None:
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{what} did not finish within {timeout}s") from None
    if code != 0:
        raise RuntimeError(f"{what} exited with {code}")


def replay(
    csv: Path,
    out_dir: Path,
    *,
    threshold: float | None = None,
    extended: bool = False,
    engine_args: Sequence[str] = (),
    timeout: float = 600.0,
    state_dir: Path | None = None,
) -> Replay:
    """Replay ``csv`` at full speed through one processor into ``out_dir``; wait for both.

    The engine's state directory is ``state_dir``, by default ``out_dir/state``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    ring = unique_ring("replay")
    mid, err = out_dir / "mid_prices.log", out_dir / "errors.log"
    state = out_dir / "state" if state_dir is None else state_dir
    proc_args = ["--ring", ring, "--mid-log", str(mid), "--error-log", str(err), "--exit-at-end"]
    if threshold is not None:
        proc_args += ["--latency-threshold", repr(threshold)]
    if extended:
        proc_args += ["--format", "extended"]
    t0 = time.perf_counter()
    processor = start("processor", proc_args, out_dir / "processor.stderr")
    engine = start(
        "engine",
        ["--mode", "historical", "--historical", str(csv), "--speed", "max", "--ring", ring,
         "--state-dir", str(state), "--exit-at-end", "--wait-for-consumers", "1", *engine_args],
        out_dir / "engine.stderr",
    )  # fmt: skip
    try:
        wait(engine, "engine", timeout)
        wait(processor, "processor", timeout)
    finally:
        for p in (engine, processor):
            if p.poll() is None:
                p.kill()
                p.wait()
    seconds = time.perf_counter() - t0
    return Replay(
        mid, err, state, seconds,
        (out_dir / "engine.stderr").read_text(), (out_dir / "processor.stderr").read_text(),
    )  # fmt: skip
