"""``python -m processor`` as a user runs it: options, exit codes, outputs, refusals.

The processor runs as a subprocess against a ring the test creates and publishes quotes into;
its logs are compared with ``processor.rules.render`` applied to the same records in one batch.
Helpers here are shared with ``test_processor_crash``.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ringbuffer
from common.schema import QUOTE_SCHEMA, Mode
from processor import decimals
from processor.rules import render

from ..support.faulttools import wait_until

ROOT = Path(__file__).resolve().parents[2]
UTC = pa.timestamp("ns", tz="UTC")
WAIT = 30.0  # the longest any step of these tests waits
BASE_NS = 1_759_449_590_006_407_000  # 2025-10-02 23:59:50.006407
TICKERS = [f"T{k}-USDT-SWAP@BINANCE" for k in range(40)] + ["ÅÄÖ-USDT@X", "BTC-USDT-SWAP@OKX"]

Quotes = dict[str, np.ndarray]


# -- data ----------------------------------------------------------------------------------


def _round(x: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """``x`` rounded to ``digits`` decimals, row by row (the float nearest that decimal)."""
    scale = 10.0**digits
    return np.rint(x * scale) / scale


def make_quotes(n: int, seed: int = 0) -> Quotes:
    """``n`` quotes with seq 0..n-1: both modes, few-digit prices, some invalid, some late."""
    rng = np.random.default_rng(seed)
    mode = np.where(rng.random(n) < 0.75, Mode.HISTORICAL, Mode.LIVE).astype(np.uint8)
    stamps = BASE_NS + np.cumsum(rng.integers(0, 3_000_000, n)).astype(np.int64)
    latency = _round(rng.exponential(12.0, n), rng.integers(0, 4, n))
    latency[rng.random(n) < 0.05] = 20.0  # equal to the default threshold: passes
    latency[rng.random(n) < 0.02] = 35.0  # over 20, under the 40 some tests use
    latency[mode == Mode.LIVE] = np.nan
    digits = rng.integers(0, 6, n)
    bid = _round(rng.uniform(0.001, 2000.0, n), digits)
    ask = _round(bid + rng.integers(0, 50, n) / 10.0**digits, digits)
    bad = rng.random(n) < 0.03
    kinds = rng.integers(0, 4, n)
    bid[bad & (kinds == 0)] = 0.0
    ask[bad & (kinds == 1)] = -1.5
    bid[bad & (kinds == 2)] = np.nan
    ask[bad & (kinds == 3)] = np.inf
    return {
        "seq": np.arange(n, dtype=np.uint64),
        "mode": mode,
        "pos": np.where(mode == Mode.HISTORICAL, np.arange(n), -1).astype(np.int64),
        "ticker": np.array(TICKERS, dtype=object)[rng.integers(0, len(TICKERS), n)],
        "timestamp": stamps,
        "arrival": stamps + np.nan_to_num(latency * 1e6).astype(np.int64),
        "latency": latency,
        "bid_price": bid,
        "ask_price": ask,
        "bid_amount": np.round(rng.uniform(0, 1000, n), 2),
        "ask_amount": np.round(rng.uniform(0, 1000, n), 2),
    }


def part(q: Quotes, rows: slice | np.ndarray) -> Quotes:
    """The quotes at ``rows``."""
    return {k: v[rows] for k, v in q.items()}


def as_batch(q: Quotes) -> pa.RecordBatch:
    """The quotes as the ring hands them out (timestamps in UTC, tickers dictionary-encoded)."""
    return pa.RecordBatch.from_pydict({
        "seq": pa.array(q["seq"], pa.uint64()),
        "mode": pa.array(q["mode"], pa.uint8()),
        "pos": pa.array(q["pos"], pa.int64()),
        "ticker": pa.array(list(q["ticker"]), pa.string()).dictionary_encode(),
        "timestamp": pa.array(q["timestamp"], pa.int64()).cast(UTC),
        "arrival": pa.array(q["arrival"], pa.int64()).cast(UTC),
        "latency": pa.array(q["latency"], pa.float64()),
        "bid_price": pa.array(q["bid_price"], pa.float64()),
        "ask_price": pa.array(q["ask_price"], pa.float64()),
        "bid_amount": pa.array(q["bid_amount"], pa.float64()),
        "ask_amount": pa.array(q["ask_amount"], pa.float64()),
    })


def reference(q: Quotes, threshold: float = 20.0, extended: bool = False) -> tuple[bytes, bytes]:
    """(mid log, error log) for ``q``: ``render`` over all the records in one batch."""
    out = render(as_batch(q), threshold, extended)
    return out.mid, out.errors


def publish(w: ringbuffer.Writer, q: Quotes, pieces: int = 7) -> None:
    """Publish ``q`` in ``pieces`` batches of uneven sizes."""
    n = len(q["seq"])
    cuts = sorted({0, n, *np.random.default_rng(n).integers(0, n, pieces - 1).tolist()})
    for lo, hi in itertools.pairwise(cuts):
        w.publish(part(q, slice(lo, hi)))


# -- processes -----------------------------------------------------------------------------


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after timeout."""
    return wait_until(check, what, timeout)


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


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start processors; any still running at the end of the test is killed."""
    started: list[Proc] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(tmp_path, *args, env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.p.poll() is None:
            proc.p.kill()
            proc.p.wait()
        if proc.p.stdout is not None:
            proc.p.stdout.close()


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


def attached(w: ringbuffer.Writer, proc: Proc) -> bool:
    """True once ``proc`` holds a slot of the ring."""
    return any(c["pid"] == proc.pid for c in w.consumers())


@pytest.fixture
def ring(ring_name: str) -> Iterator[ringbuffer.Writer]:
    w = ringbuffer.create(ring_name, QUOTE_SCHEMA, capacity=1 << 14, tag=77)
    try:
        yield w
    finally:
        w.close()


# -- command line --------------------------------------------------------------------------


def test_help_lists_every_option(spawn: Callable[..., Proc]) -> None:
    proc = spawn("--help")
    assert proc.wait() == 0
    text = proc.stdout()
    for option in ("--ring", "--name", "--latency-threshold", "--mid-log", "--error-log",
                   "--format", "--exit-at-end", "--parquet", "--state", "LATENCY_THRESHOLD"):
        assert option in text, option
    assert "rewrites PATH" in text  # what --parquet does on a restart


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf", ""])
def test_bad_threshold_flag_is_a_usage_error(spawn: Callable[..., Proc], value: str) -> None:
    proc = spawn("--latency-threshold", value, "--ring", "no-such-ring-needed")
    assert proc.wait() == 2
    lines = proc.stderr().splitlines()
    assert len(lines) == 1 and "--latency-threshold" in lines[0] and "ERROR" in lines[0], lines


@pytest.mark.parametrize("value", ["twenty", "-0.5"])
def test_bad_threshold_env_is_a_usage_error(spawn: Callable[..., Proc], value: str) -> None:
    proc = spawn("--ring", "no-such-ring-needed", env={"LATENCY_THRESHOLD": value})
    assert proc.wait() == 2
    lines = proc.stderr().splitlines()
    assert len(lines) == 1 and "LATENCY_THRESHOLD" in lines[0], lines


def test_unknown_option_is_a_usage_error(spawn: Callable[..., Proc]) -> None:
    proc = spawn("--bogus")
    assert proc.wait() == 2
    assert len(proc.stderr().splitlines()) == 1


def test_same_file_for_both_logs_is_a_usage_error(
    spawn: Callable[..., Proc], tmp_path: Path
) -> None:
    same = str(tmp_path / "both.log")
    proc = spawn("--mid-log", same, "--error-log", same)
    assert proc.wait() == 2
    assert "same file" in proc.stderr()


# -- outputs -------------------------------------------------------------------------------


def test_threshold_from_flag_env_or_default(
    spawn: Callable[..., Proc], ring: ringbuffer.Writer, tmp_path: Path
) -> None:
    """Three processors on one ring, each with its own name, logs and threshold source."""
    q = make_quotes(3000, seed=1)
    cases = {"env": (None, "40", 40.0), "flag": ("5.5", "40", 5.5), "default": (None, None, 20.0)}
    procs = {}
    for name, (flag, env, _) in cases.items():
        args = [*out_args(tmp_path / name, ring.name, name), "--exit-at-end"]
        if flag is not None:
            args += ["--latency-threshold", flag]
        procs[name] = spawn(*args, env={"LATENCY_THRESHOLD": env} if env is not None else None)
    publish(ring, q)
    ring.end()
    for name, (_, _, threshold) in cases.items():
        assert procs[name].wait() == 0, procs[name].stderr()
        assert logs(tmp_path / name) == reference(q, threshold), name


def test_exit_at_end_writes_everything(
    spawn: Callable[..., Proc], ring: ringbuffer.Writer, tmp_path: Path
) -> None:
    q = make_quotes(40_000, seed=2)
    out = tmp_path / "out"
    proc = spawn(*out_args(out, ring.name), "--exit-at-end")
    wait_for("the processor to attach", lambda: attached(ring, proc))
    publish(ring, q, pieces=13)  # more than the ring holds: the processor gates the writer
    ring.end()
    assert proc.wait() == 0, proc.stderr()
    mid, err = logs(out)
    assert (mid, err) == reference(q)
    assert mid.count(b"\n") + err.count(b"\n") == 40_000
    state = read_state(state_path(out))
    assert state == {
        "version": 1, "name": "mid-price", "ring": ring.name, "tag": 77, "last_seq": 39_999,
        "mid_log": str((out / "mid.log").resolve()), "mid_bytes": len(mid),
        "error_log": str((out / "err.log").resolve()), "error_bytes": len(err),
        "format": "spec", "threshold": 20.0,
    }  # fmt: skip
    summary = [line for line in proc.stderr().splitlines() if " summary " in line]
    assert summary and "records=40000" in summary[0] and "duplicates=0" in summary[0], summary
    assert not ring.consumers(), "the processor did not release its slot"


def test_extended_format_and_parquet(
    spawn: Callable[..., Proc], ring: ringbuffer.Writer, tmp_path: Path
) -> None:
    q = make_quotes(5000, seed=3)
    out = tmp_path / "out"
    parquet = tmp_path / "mids.parquet"
    proc = spawn(*out_args(out, ring.name), "--format", "extended", "--exit-at-end",
                 "--parquet", str(parquet), "--state", str(tmp_path / "st.json"))
    publish(ring, q)
    ring.end()
    assert proc.wait() == 0, proc.stderr()
    assert logs(out) == reference(q, extended=True)
    assert b", \xc3\x85\xc3\x84\xc3\x96-USDT@X, " in logs(out)[0]
    table = pq.read_table(parquet)
    good = ((q["bid_price"] > 0) & (q["ask_price"] > 0) & np.isfinite(q["bid_price"])
            & np.isfinite(q["ask_price"]) & ~((q["mode"] == Mode.HISTORICAL) & (q["latency"] > 20)))
    assert table.column("timestamp").to_numpy().view(np.int64).tolist() == (
        q["timestamp"][good].tolist()
    )
    assert table.column("ticker").to_pylist() == q["ticker"][good].tolist()
    expected = decimals.exact_mid(q["bid_price"][good], q["ask_price"][good])
    assert np.array_equal(table.column("mid").to_numpy(), expected)
    assert table.num_rows == logs(out)[0].count(b"\n")


def test_starts_before_the_ring_and_waits(
    spawn: Callable[..., Proc], ring_name: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = spawn(*out_args(out, ring_name), "--exit-at-end")
    wait_for("the processor to say it waits", lambda: "waiting for the ring" in proc.stderr())
    q = make_quotes(2000, seed=4)
    with ringbuffer.create(ring_name, QUOTE_SCHEMA, capacity=1 << 12) as w:
        wait_for("the processor to attach", lambda: attached(w, proc))
        publish(w, q)
        w.end()
        assert proc.wait() == 0, proc.stderr()
    assert logs(out) == reference(q)


def test_sigterm_while_waiting_for_the_ring_exits_0(
    spawn: Callable[..., Proc], ring_name: str, tmp_path: Path
) -> None:
    proc = spawn(*out_args(tmp_path / "out", ring_name))
    wait_for("the processor to say it waits", lambda: "waiting for the ring" in proc.stderr())
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0, proc.stderr()


# -- refusals ------------------------------------------------------------------------------


def test_second_processor_with_the_same_name_or_files_is_refused(
    spawn: Callable[..., Proc], ring: ringbuffer.Writer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    q = make_quotes(1000, seed=6)
    first = spawn(*out_args(out, ring.name, "one"), "--exit-at-end")
    wait_for("the first processor to attach", lambda: attached(ring, first))
    ring.publish(part(q, slice(0, 500)))
    wait_for("the first half written",
             lambda: (read_state(state_path(out, "one")) or {}).get("last_seq") == 499)
    same_name = spawn(*out_args(tmp_path / "other", ring.name, "one"))
    same_files = spawn(*out_args(out, ring.name, "two"))
    assert same_name.wait() == 2
    message = same_name.stderr()
    assert "'one' is in use" in message and "--name" in message, message
    assert same_files.wait() == 2
    assert "in use by another processor" in same_files.stderr(), same_files.stderr()
    ring.publish(part(q, slice(500, None)))
    ring.end()
    assert first.wait() == 0
    assert logs(out) == reference(q)  # the refused ones truncated nothing


def test_unwritable_output_path_fails_with_exit_1(
    spawn: Callable[..., Proc], ring_name: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    proc = spawn("--ring", ring_name, "--mid-log", str(blocker / "mid.log"),
                 "--error-log", str(tmp_path / "err.log"))
    assert proc.wait() == 1
    message = proc.stderr()
    assert f"cannot open mid log {blocker / 'mid.log'}" in message, message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_fails_with_exit_1(
    spawn: Callable[..., Proc], ring_name: str, tmp_path: Path
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        proc = spawn(*out_args(folder, ring_name))
        assert proc.wait() == 1
        assert "Permission denied" in proc.stderr()
    finally:
        folder.chmod(0o700)
