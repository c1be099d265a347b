"""``python -m processor`` as a user runs it: options, exit codes, outputs, refusals.

The processor runs as a subprocess against a ring the test creates and publishes quotes into;
its logs are compared with ``processor.rules.render`` applied to the same records in one batch.
Helpers: ``tests.support.processor`` and ``tests.support.quotes``; fixtures: ``conftest.py``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import ringbuffer
from common.schema import QUOTE_SCHEMA, Mode
from processor import decimals

from ..support import wait_until
from ..support.processor import (
    Proc,
    attached,
    last_seq,
    logs,
    out_args,
    read_state,
    state_path,
)
from ..support.quotes import make_quotes, part, publish, reference

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
    wait_until(lambda: attached(ring, proc), "the processor to attach")
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
    wait_until(lambda: "waiting for the ring" in proc.stderr(), "the processor to say it waits")
    q = make_quotes(2000, seed=4)
    with ringbuffer.create(ring_name, QUOTE_SCHEMA, capacity=1 << 12) as w:
        wait_until(lambda: attached(w, proc), "the processor to attach")
        publish(w, q)
        w.end()
        assert proc.wait() == 0, proc.stderr()
    assert logs(out) == reference(q)


def test_sigterm_while_waiting_for_the_ring_exits_0(
    spawn: Callable[..., Proc], ring_name: str, tmp_path: Path
) -> None:
    proc = spawn(*out_args(tmp_path / "out", ring_name))
    wait_until(lambda: "waiting for the ring" in proc.stderr(), "the processor to say it waits")
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0, proc.stderr()


# -- refusals ------------------------------------------------------------------------------


def test_second_processor_with_the_same_name_or_files_is_refused(
    spawn: Callable[..., Proc], ring: ringbuffer.Writer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    q = make_quotes(1000, seed=6)
    first = spawn(*out_args(out, ring.name, "one"), "--exit-at-end")
    wait_until(lambda: attached(ring, first), "the first processor to attach")
    ring.publish(part(q, slice(0, 500)))
    wait_until(lambda: last_seq(out, "one") == 499, "the first half written")
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
