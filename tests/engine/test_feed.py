"""``python -m engine.feed``: the pure JSON encoder, and the server run as a subprocess.

Subprocesses listen on 127.0.0.1 with ``--port 0`` (a free port, read back from the
``listening`` log line) and are stopped with SIGTERM (or killed) when a test ends.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as sync_connect

from common.schema import REQUIRED_COLUMNS, Mode
from engine import feed
from engine.historical import load_historical, parse_historical
from engine.live import LiveSource
from engine.live_parse import parse_frame, parse_timestamp

ROOT = Path(__file__).resolve().parents[2]
HEADER = ",index,timestamp,ticker,ask_amount,ask_price,bid_price,bid_amount\n"


def live_table(text: str) -> pa.Table:
    return parse_historical(text.encode(), "t.csv", required=REQUIRED_COLUMNS[Mode.LIVE]).table


def write_csv(path: Path, n: int, *, same: int = 3) -> Path:
    """``n`` rows, ``same`` rows per timestamp, ids in the bid price (``i + 0.25``)."""
    lines = [HEADER]
    for i in range(n):
        us = (i // same) * 1500
        stamp = f"2025-10-02 23:59:{50 + us // 1_000_000:02d}.{us % 1_000_000:06d}"
        amount = "" if i % 5 == 0 else f"{i % 11}.5"
        ticker = f"C{i % 9}-USDT-SWAP@BINANCE"
        lines.append(f"{i},{i},{stamp},{ticker},{amount},{i + 0.5},{i + 0.25},7\n")
    path.write_text("".join(lines))
    return path


# --- the encoder ------------------------------------------------------------------------------


def test_object_text_is_exactly_the_contract_example() -> None:
    table = live_table(
        "timestamp,ticker,bid_price,ask_price,bid_amount,ask_amount\n"
        "2025-10-02 23:59:57.290000,SOL-USDT-SWAP@BINANCE,234.6,234.61,1356.54,377.85\n"
    )
    assert feed.encode_objects(table) == [
        '{"timestamp": "2025-10-02 23:59:57.290000", "ticker": "SOL-USDT-SWAP@BINANCE", '
        '"bid_price": 234.6, "ask_price": 234.61, "bid_amount": 1356.54, "ask_amount": 377.85}'
    ]


def test_format_timestamps_keeps_every_digit_needed() -> None:
    texts = [
        "2025-10-02 23:59:57",
        "2025-10-02 23:59:57.1",
        "2025-10-02 23:59:57.290000",
        "2025-10-02 23:59:57.2900001",
        "2025-10-02 23:59:57.290000123",
        "1969-12-31 23:59:59.999999999",
        "1677-09-21 00:12:43.145224192",
        "2262-04-11 23:47:16.854775807",
    ]
    ns = np.array([parse_timestamp(t) for t in texts], np.int64)
    out = feed.format_timestamps(ns)
    assert out[:5] == [
        "2025-10-02 23:59:57.000000",
        "2025-10-02 23:59:57.100000",
        "2025-10-02 23:59:57.290000",
        "2025-10-02 23:59:57.2900001",
        "2025-10-02 23:59:57.290000123",
    ]
    assert [parse_timestamp(t) for t in out] == ns.tolist()
    assert feed.format_timestamps(np.array([5, 5, 5, 7], np.int64)) == [
        "1970-01-01 00:00:00.000000005"
    ] * 3 + ["1970-01-01 00:00:00.000000007"]
    assert feed.format_timestamps(np.zeros(0, np.int64)) == []


ROUND_TRIP_CSV = (
    "timestamp,ticker,bid_price,ask_price,bid_amount,ask_amount\n"
    "2025-10-02 23:59:57.290000,AVNT-USDT-SWAP@BINANCE,1.1308,1.1309,36.0,993.0\n"
    "2025-10-02 23:59:57.290000,AVNT-USDT-SWAP@BINANCE,3.9e-08,4.1E-8,,12\n"
    "2025-10-02 23:59:57.290000123,\"we \"\"quote\"\" \\\\ é\",0,-1.5,1e300,\n"
    "2025-10-02T23:59:58.5,X,inf,2,3,4\n"
    "2025-10-02 23:59:59,Y,0.1,0.30000000000000004,5e-324,1.7976931348623157e308\n"
    "2025-10-02 23:59:59.123456789,Z,100,200,1,2\n"
)


@pytest.mark.parametrize("mode", ["array", "object"])
def test_frames_round_trip_through_parse_frame(mode: str) -> None:
    table = live_table(ROUND_TRIP_CSV)
    assert table.num_rows == 6
    frames = feed.encode_frames(table, mode)  # type: ignore[arg-type]
    parsed = []
    for k, (t, data) in enumerate(frames):
        got, rejected = parse_frame(data, source="x", frame_no=k, received_ns=0)
        assert not rejected, rejected
        assert got is not None
        assert set(got.column("timestamp").to_pylist()) == {t}
        parsed.append(got)
    back = pa.concat_tables(parsed)
    for name in ("timestamp", "bid_price", "ask_price"):
        assert back.column(name).to_pylist() == table.column(name).to_pylist(), name
    assert back.column("ticker").to_pylist() == table.column("ticker").to_pylist()
    assert back.column("ticker").to_pylist()[2] == 'we "quote" \\\\ é'
    for name in ("bid_amount", "ask_amount"):
        a, b = back.column(name).to_numpy(), table.column(name).to_numpy()
        assert np.array_equal(a, b, equal_nan=True), name
    objects = [json.loads(o) for o in feed.encode_objects(table)]
    assert "bid_amount" not in objects[1] and "ask_amount" not in objects[2], "NaN is omitted"
    assert objects[3]["bid_price"] == "inf", "JSON has no infinity: sent as a decimal string"
    assert objects[4]["timestamp"] == "2025-10-02 23:59:59.000000"
    assert objects[5]["timestamp"] == "2025-10-02 23:59:59.123456789"


def test_array_frames_group_equal_timestamps_and_split_big_groups() -> None:
    table = live_table(
        "timestamp,ticker,bid_price,ask_price\n"
        + "".join(f"2025-10-02 23:59:57.5,T{i},{i},{i}\n" for i in range(5))
        + "2025-10-02 23:59:58,U,1,2\n"
    )
    frames = feed.encode_frames(table, "array", max_objects=2)
    sizes = [len(json.loads(f)) for _, f in frames]
    assert sizes == [2, 2, 1, 1]
    assert [t for t, _ in frames][:3] == [table.column("timestamp")[0].as_py()] * 3
    assert all(isinstance(json.loads(f), dict) for _, f in feed.encode_frames(table, "object"))


def test_blocks_never_split_a_timestamp_run() -> None:
    ts = np.repeat(np.arange(50), np.arange(1, 51) % 7 + 1)
    spans = list(feed.blocks(ts, rows=10))
    assert spans[0][0] == 0 and spans[-1][1] == len(ts)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end == start and ts[end - 1] != ts[end]


def test_playback_order_is_by_timestamp_then_file_order() -> None:
    data = (
        "timestamp,ticker,bid_price,ask_price,latency\n"
        "2025-01-01 00:00:00,A,1,2,120\n"
        "2025-01-01 00:00:00.200,B,1,2,1\n"
        "2025-01-01 00:00:00,C,1,2,5\n"
    )
    table = parse_historical(data.encode(), "h.csv").table  # by arrival: 5, 120, 201 ms
    assert table.column("ticker").to_pylist() == ["C", "A", "B"]
    assert feed.playback_order(table).column("ticker").to_pylist() == ["A", "C", "B"]


# --- the command line, in process --------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--speed", "fast"],
        ["--speed", "0"],
        ["--speed", "-2"],
        ["--port", "70000"],
        ["--frame", "xml"],
        ["--bogus"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        feed.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and " ERROR feed " in err and "--help" in err, err


def test_unusable_csv_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert feed.main(["--csv", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,ticker,bid_price\n2025-01-01 00:00:00,A,1\n")
    assert feed.main(["--csv", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "ask_price" in err and len(err.splitlines()) == 1, err


# --- the server, as a subprocess --------------------------------------------------------------


class FeedProcess:
    """``python -m engine.feed ARGS`` with its stderr lines collected by a thread."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.feed", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            self._new.put(line)

    def wait_line(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The first stderr line matching ``pattern`` (searching what came so far first)."""
        regex = re.compile(pattern)
        for line in list(self.lines):
            if m := regex.search(line):
                return m
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no line matching {pattern!r} within {timeout} s: {self.lines}")
            try:
                line = self._new.get(timeout=left)
            except queue.Empty:
                continue
            if m := regex.search(line):
                return m

    @property
    def url(self) -> str:
        port = self.wait_line(r" listening .*port=(\d+)")[1]
        return f"ws://127.0.0.1:{port}"

    def terminate(self, timeout: float = 5.0) -> int:
        """SIGTERM and the exit code (killed, and failing, after ``timeout`` seconds)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the feed did not exit within {timeout} s of SIGTERM")

    def __enter__(self) -> FeedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "live.csv", 1200)


def poll_records(src: LiveSource, n: int, timeout: float = 10.0) -> pa.Table:
    tables, got = [], 0
    deadline = time.monotonic() + timeout
    while got < n:
        if time.monotonic() > deadline:
            pytest.fail(f"{got}/{n} records after {timeout} s (stats {src.stats})")
        table, rejected = src.poll(0.05)
        assert not rejected, rejected
        if table is not None:
            tables.append(table)
            got += table.num_rows
    return pa.concat_tables(tables)


def expected_rows(path: Path) -> list[dict[str, Any]]:
    table = feed.playback_order(load_historical(path, required=REQUIRED_COLUMNS[Mode.LIVE]).table)
    return table.select(["timestamp", "ticker", "bid_price", "ask_price", "bid_amount"]).to_pylist()


def same_rows(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> bool:
    def key(r: dict[str, Any]) -> tuple:
        amount = r["bid_amount"]
        return (r["timestamp"], r["ticker"], r["bid_price"], r["ask_price"],
                None if amount is None or math.isnan(amount) else amount)

    return [key(r) for r in got] == [key(r) for r in want]


def test_feed_serves_every_row_once_in_order(small_csv: Path) -> None:
    with FeedProcess("--csv", str(small_csv), "--port", "0", "--speed", "max") as proc:
        src = LiveSource(proc.url, idle_timeout=30)
        src.start()
        try:
            table = poll_records(src, 1200)
            frames = int(proc.wait_line(r" \"feed complete\" .*frames=(\d+)")[1])
            deadline = time.monotonic() + 5
            while src.stats["frames"] < frames and time.monotonic() < deadline:
                extra, _ = src.poll(0.05)
                assert extra is None, "more records than rows in the file"
            assert src.stats["frames"] == frames == 400, "one array frame per timestamp"
            extra, _ = src.poll(0.2)
            assert extra is None, "more records than rows in the file"
        finally:
            src.stop()
        assert proc.terminate() == 0
    assert same_rows(table.to_pylist(), expected_rows(small_csv))
    log = "".join(proc.lines)
    assert "client connected" in log and "playback started" in log and "stopped" in log


def test_feed_loop_starts_again(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "five.csv", 5, same=1)
    with FeedProcess("--csv", str(path), "--port", "0", "--speed", "max", "--loop") as proc:
        src = LiveSource(proc.url, batch_records=64, max_pending=2)
        src.start()
        try:
            table = poll_records(src, 15)
        finally:
            src.stop()
        assert proc.terminate() == 0
    want = expected_rows(path)
    got = table.to_pylist()
    assert same_rows(got[:15], (want * 3)[:15])
    assert "starting again" in "".join(proc.lines)


def test_feed_object_frames_and_sigterm_close_1001(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "obj.csv", 30)
    args = ("--csv", str(path), "--port", "0", "--speed", "max", "--frame", "object")
    with FeedProcess(*args) as proc, sync_connect(proc.url, open_timeout=5, proxy=None) as ws:
        docs = [json.loads(ws.recv(timeout=5)) for _ in range(30)]
        proc.wait_line(r"feed complete")
        assert proc.terminate() == 0
        with pytest.raises(ConnectionClosed) as exc:
            ws.recv(timeout=5)
        assert exc.value.rcvd is not None and exc.value.rcvd.code == 1001
    assert all(isinstance(d, dict) for d in docs)
    assert [d["bid_price"] for d in docs] == [i + 0.25 for i in range(30)]


def test_feed_speed_follows_the_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "slow.csv"
    path.write_text(
        "timestamp,ticker,bid_price,ask_price\n"
        "2025-10-02 00:00:00.000,A,1,2\n"
        "2025-10-02 00:00:00.300,B,1,2\n"
        "2025-10-02 00:00:00.800,C,1,2\n"
    )
    with FeedProcess("--csv", str(path), "--port", "0", "--speed", "2") as proc:
        src = LiveSource(proc.url)
        src.start()
        try:
            table = poll_records(src, 3)
        finally:
            src.stop()
        assert proc.terminate() == 0
    arrival = table.column("arrival").to_pylist()
    span = (arrival[-1] - arrival[0]) / 1e9
    assert 0.3 <= span < 3.0, f"0.8 s of quotes at speed 2 took {span:.3f} s"
    assert (arrival[1] - arrival[0]) / 1e9 >= 0.1


def test_feed_help_and_bad_arguments() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "engine.feed"]
    ok = subprocess.run([*cmd, "--help"], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=30)
    assert ok.returncode == 0
    for flag in ("--csv", "--host", "--port", "--speed", "--loop", "--frame"):
        assert flag in ok.stdout
    bad = subprocess.run([*cmd, "--speed", "fast"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode == 2
    assert len(bad.stderr.splitlines()) == 1 and "--speed" in bad.stderr, bad.stderr


def test_port_in_use_exits_1(small_csv: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with FeedProcess("--csv", str(small_csv), "--port", str(port)) as proc:
            assert proc.proc.wait(30) == 1
    log = "".join(proc.lines)
    assert "address already in use" in log, log


def test_rejected_rows_are_logged_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "rej.csv"
    path.write_text(
        "timestamp,ticker,bid_price,ask_price\n"
        "2025-10-02 00:00:00,A,1,2\n"
        "not a time,B,1,2\n"
        "2025-10-02 00:00:01,C,,2\n"
        "2025-10-02 00:00:02,D,3,4\n"
    )
    with FeedProcess("--csv", str(path), "--port", "0", "--speed", "max") as proc:
        src = LiveSource(proc.url)
        src.start()
        try:
            table = poll_records(src, 2)
        finally:
            src.stop()
        assert proc.terminate() == 0
    assert table.column("ticker").to_pylist() == ["A", "D"]
    log = "".join(proc.lines)
    assert re.search(r'rejected row skipped" file=\S*rej.csv line=3 ', log), log
    assert re.search(r'rejected row skipped" .*line=4 ', log), log
    assert re.search(r'rejected rows skipped" .*count=2', log), log
