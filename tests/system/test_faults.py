"""Fault injection (issue 6): a flapping and a silent feed, garbage input through the engine,
disk trouble, signals at random moments, and no shared memory left behind.

Every wait is on a condition with a deadline (``wait_until``, ``Proc.wait_log``, the
consumers' waits); the few ``sleep`` calls are the length of a fault, never a synchronisation.
Tests that show a bug are ``xfail(strict=True)`` with the bug in their reason.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import random
import re
import signal
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

import ringbuffer
from common.schema import QUOTE_SCHEMA, Mode
from engine.historical import load_historical
from processor.rules import render
from tools.pipeline import replay

from ..conftest import TEST_PREFIX
from ..support import WAIT, wait_until
from ..support.consumer import Consumer
from ..support.faulttools import (
    CSV_HEADER,
    QuoteServer,
    Row,
    csv_bytes,
    fill,
    garbage_file,
    grow_tmpfs,
    key,
    quote,
    shm_segments,
    small_tmpfs,
    stderr_field,
)
from ..support.processor import (
    Publisher,
    attached,
    last_seq,
    logs,
    out_args,
    read_state,
    state_path,
    written_up_to,
)
from ..support.programs import Proc, no_segment, run_module
from ..support.quotes import make_quotes, reference

RINGS: set[str] = set()  # every ring name this module used


def new_ring() -> str:
    """A ring name in the suite's convention (conftest checks the prefix at session end)."""
    name = f"{TEST_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:10]}"
    RINGS.add(name)
    return name


@pytest.fixture
def ring(ring_name: str) -> str:
    RINGS.add(ring_name)
    return ring_name


@pytest.fixture(scope="module", autouse=True)
def no_shared_memory_left_by_the_module() -> Iterator[None]:
    """Scenario 5: after the whole module, no segment of its rings is left in /dev/shm."""
    before = shm_segments()
    yield
    pid = os.getpid()
    ours = (f"{TEST_PREFIX}{pid}-", f"replay-{pid}-")
    new = sorted(n for n in shm_segments() - before if n.startswith(ours))
    named = sorted(r for r in RINGS if not no_segment(r))
    for leftover in {*new, *named}:
        ringbuffer.segment_path(leftover).unlink(missing_ok=True)
    assert not new and not named, f"shared memory left behind: {new} {named}"


def engine(ring: str, state: Path, *args: str) -> Proc:
    return Proc("engine", ["--ring", ring, "--state-dir", str(state), *args])


def replay_to_end(ring: str, state: Path, *args: str) -> tuple[Consumer, Proc]:
    """Run the engine with ``args`` until the end of the stream (exit 0) while a consumer
    reads every record; the consumer and the finished engine."""
    c = Consumer(ring)
    c.stop_at_end.set()
    c.start()
    e = engine(ring, state, *args, "--exit-at-end", "--wait-for-consumers", "1")
    try:
        assert e.wait() == 0, e.stderr()
        c.finish()
    finally:
        c.halt()
    return c, e


def stop(p: Proc) -> None:
    """End ``p`` if it still runs: SIGTERM (an engine then removes its ring), else SIGKILL."""
    if p.p.poll() is None:
        p.signal(signal.SIGTERM)
        try:
            p.p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def lines_matching(p: Proc, pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return [ln for ln in list(p.lines) if rx.search(ln)]


def read_rejects(state: Path) -> list[dict[str, str]]:
    path = state / "rejected_rows.csv"
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# === 1. a flapping feed =======================================================================


def _reason(line: str) -> str:
    m = re.search(r'reason=("(?:[^"\\]|\\.)*"|\S+)', line)
    assert m, line
    return m.group(1).strip('"')


def test_flapping_feed_publishes_every_sent_quote_once(tmp_path: Path, ring: str) -> None:
    """The feed is killed and restarted five times (TCP FIN, close frame 1001, TCP reset) on
    one port, then goes silent without closing: the engine never exits, logs every drop,
    reconnect and gap, and publishes exactly the quotes the server sent, in order. The silent
    phase takes the engine's fixed 10 s idle timeout (not settable from the command line)."""
    rng = random.Random(6)
    server = QuoteServer()
    server.start()
    consumer = Consumer(ring)
    consumer.stop_at_end.set()
    consumer.start()
    e = engine(ring, tmp_path / "s", "--mode", "live", "--live-url", server.url,
               "--wait-for-consumers", "1")  # fmt: skip
    kills = ["fin", "close", "rst", "fin", "close"]
    try:
        e.wait_log(r" live connected ")
        for k, how in enumerate(kills, 1):
            consumer.wait_count(len(server.sent) + 40)  # this connection delivers
            if how == "rst":  # a reset may drop bytes in flight: let them land first
                server.pause()
                consumer.wait_for(lambda: consumer.count == len(server.sent), "all sent")
            failed = len(lines_matching(e, r' live "connect failed" '))
            server.kill(how)
            e.wait_log(r" live disconnected ", count=k)
            e.wait_log(r' live "connect failed" ', count=failed + 1)  # it tried while down
            time.sleep(rng.uniform(0.0, 0.3))  # a longer outage, of random length
            assert e.p.poll() is None, f"engine exited:\n{e.stderr()}"
            server.start()
            e.wait_log(r" live reconnected ", count=k)
        consumer.wait_count(len(server.sent) + 40)
        server.silence()  # open, but nothing more on this connection
        e.wait_log(r' live "connection idle" ', timeout=WAIT)
        e.wait_log(r" live reconnected ", count=len(kills) + 1)
        consumer.wait_count(len(server.sent) + 40)
        server.pause()
        consumer.wait_for(lambda: consumer.count == len(server.sent), "every sent quote")
        assert e.p.poll() is None, f"engine exited:\n{e.stderr()}"
        e.signal(signal.SIGTERM)
        assert e.wait() == 0, e.stderr()
        consumer.finish()
    finally:
        server.close()
        stop(e)
        consumer.halt()
    got = consumer.records()
    assert len(got) == len(server.sent) and got == server.sent, "quotes lost, repeated or moved"
    assert consumer.seq == list(range(len(got))) and consumer.duplicates == 0
    assert set(consumer.mode) == {Mode.LIVE} and set(consumer.pos) == {-1}
    assert consumer.endings == ["end"]
    drops = lines_matching(e, r" live disconnected ")
    reasons = [_reason(ln) for ln in drops]
    assert reasons == [
        "connection lost (no close frame)", "closed by server code 1001 (restarting)",
        "connection lost (no close frame)", "connection lost (no close frame)",
        "closed by server code 1001 (restarting)", "idle for 10 s", "stopped",
    ], reasons  # fmt: skip
    gaps = [float(stderr_field(ln, "reconnected", "gap_s")) for ln in
            lines_matching(e, r" live reconnected ")]  # fmt: skip
    assert len(gaps) == 6 and all(g > 0 for g in gaps), gaps
    assert server.connections == 7


# === 2. garbage in through the engine ========================================================


@settings(max_examples=5, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(rows=garbage_file())
def test_garbage_csv_never_crashes_and_every_row_is_accounted_for(rows: list[Row]) -> None:
    """Five derandomized Hypothesis files, each with every kind of garbage row (random bytes
    without CR, LF and '"' -- tested on their own below --, invalid UTF-8, NaN, empty fields,
    wrong column counts, overlong tickers, bad timestamps, negative latency, non-numbers)
    among valid rows with extreme values (inf, 1e400, 64-byte tickers, years 1697-2242):
    exit 0, the valid rows published, every other row in rejected_rows.csv with its line
    number and raw text, published + rejected == rows."""
    ring = new_ring()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "garbage.csv"
        path.write_bytes(csv_bytes(rows))
        state = Path(tmp) / "s"
        c, e = replay_to_end(ring, state, "--mode", "historical", "--historical", str(path),
                             "--speed", "max")  # fmt: skip
        rejects = read_rejects(state)
    assert "Traceback" not in e.stderr()
    valid = [r for r in rows if r.valid]
    assert sorted(c.records()) == sorted((r.ticker, r.ns) for r in valid)
    assert c.seq == list(range(len(valid))) and c.endings == ["end"]
    expected = {i: r for i, r in enumerate(rows, 2) if not r.valid}
    assert [int(r["line"]) for r in rejects] == sorted(expected), "reject lines"
    for rej in rejects:
        row = expected[int(rej["line"])]
        assert rej["source"] == str(path)
        assert rej["raw"] == row.data.decode("utf-8", "replace"), (row.kind, rej)
    assert len(c.seq) + len(rejects) == len(rows)
    assert stderr_field(e.stderr(), " engine stopped ", "published") == str(len(valid))
    assert stderr_field(e.stderr(), " engine stopped ", "rejected") == str(len(rejects))
    assert no_segment(ring)


def _good(i: int) -> bytes:
    return f"{i},{i},2025-01-01 00:00:0{i},G{i},1,2,1,1,5".encode()


def _replay_rows(tmp_path: Path, ring: str, body: list[bytes]) -> tuple[Consumer, list]:
    path = tmp_path / "q.csv"
    path.write_bytes(CSV_HEADER + b"".join(line + b"\n" for line in body))
    c, _ = replay_to_end(ring, tmp_path / "s", "--mode", "historical", "--historical",
                         str(path), "--speed", "max")  # fmt: skip
    return c, read_rejects(tmp_path / "s")


def test_bare_carriage_return_keeps_line_numbers(tmp_path: Path, ring: str) -> None:
    bad = b"3,3,2025-01-01 00:00:03,B,1,zz,1,1,5"
    c, rejects = _replay_rows(tmp_path, ring, [_good(1), b"junk\rmore", _good(2), bad, _good(4)])
    assert [(r["line"], r["raw"]) for r in rejects] == [("3", "junk\rmore"), ("5", bad.decode())]
    assert c.count == 3


def test_stray_quote_does_not_swallow_the_following_rows(tmp_path: Path, ring: str) -> None:
    bad = b'2,2,2025-01-01 00:00:02,"A,1,2,1,1,5'
    c, rejects = _replay_rows(tmp_path, ring, [_good(1), bad, _good(3), _good(4), _good(5)])
    assert [r["line"] for r in rejects] == ["3"]
    assert sorted(c.ticker) == ["G1", "G3", "G4", "G5"]


def _frame_of(ids: range) -> str:
    return json.dumps([quote(i) for i in ids])


def test_garbage_json_frames_through_a_live_engine(tmp_path: Path, ring: str) -> None:
    """Bad frames and bad objects are rejected one by one (rejected_rows.csv: frame number and
    reason), the valid quotes around them arrive in order. A frame over 1 MiB is refused by
    the websocket layer, which closes the connection (1009): the engine records it and
    reconnects, so the second connection carries on."""
    rnd = np.random.default_rng(61)
    junk = bytes(rnd.integers(0, 256, 300, dtype=np.uint8))
    text_junk = "".join(chr(c) for c in rnd.integers(0x21, 0x7F, 200)).replace("[", "(")
    stamp = quote(0)["timestamp"]
    ok = json.dumps(quote(0))[:-1]  # a valid object without its closing brace
    # (frame, sent as a text frame?, a piece of the reason of each item rejected)
    bad_frames: list[tuple[str | bytes, bool, list[str]]] = [
        (b"\xff" + junk, False, ["not valid UTF-8"]),
        (b'{"ticker": "\xc3(", "timestamp": 1}', True, ["not valid UTF-8"]),
        (text_junk, True, ["not valid JSON"]),
        (f'{{"timestamp": "{stamp}", "ticker": "X", "bid_price": NaN, "ask_price": 1}}', True,
         ["NaN is not allowed"]),
        (f'[{{"timestamp": "{stamp}", "ticker": "X", "bid_price": 1, "ask_price": -Infinity}}]',
         True, ["-Infinity is not allowed"]),
        (ok + ', "bid_price": "nan"}', True, ["bid_price is not a number"]),  # 1e999 is inf: data
        ("[" * 100_000 + "]" * 100_000, True, ["nested too deeply"]),
        (ok + ', "x": ' + "[" * 50_000 + "]" * 50_000 + "}", True, ["nested too deeply"]),
        ("[]", True, []),  # no quote: nothing to publish or reject
        ('"just a string"', True, ["not a quote object"]),
        ("9" * 5000, True, ["not valid JSON"]),  # beyond Python's integer digit limit
    ]
    good = quote(0)
    bad_objects = [
        dict(good, timestamp=5), dict(good, ticker=7), dict(good, bid_price=[1]),
        dict(good, ask_price=True), dict(good, bid_price=None), {"ticker": "X"},
        dict(good, ticker="T" * 65), None, "quote", 42, dict(good, bid_price="NaN"),
        dict(good, ask_amount={"a": 1}), dict(good, timestamp="soon"),
    ]  # fmt: skip
    oversized = b'{"pad": "' + b"x" * (1 << 20) + b'"}'
    frames: list[tuple[str | bytes, bool, list[str]]] = []
    n = 0  # quotes in valid frames so far
    items = [("frame", f) for f in bad_frames] + [("object", o) for o in bad_objects]
    for i, (kind, item) in enumerate(items):
        frames.append((_frame_of(range(n, n + 2)), True, []))
        n += 2
        if kind == "frame":
            frames.append(item)  # type: ignore[arg-type]
        else:  # a bad object between two good ones
            frames.append((json.dumps([quote(n), item, quote(n + 1)]), True,
                           ["(object 2 of frame)"]))  # fmt: skip
            n += 2
        if i == 3:
            frames.append((oversized, True, ["frame is larger than 1048576 bytes"]))
    frames.append((_frame_of(range(n, n + 2)), True, []))
    n += 2
    big = next(k for k, f in enumerate(frames) if f[0] is oversized)
    expected = [(k, r) for k, (_, _, reasons) in enumerate(frames, 1) for r in reasons]

    async def handler(server: QuoteServer, ws, conn: int) -> None:
        part = frames[: big + 1] if conn == 1 else frames[big + 1 :]
        for data, as_text, _ in part:
            await server.send(ws, data, text=as_text)
        await ws.wait_closed()  # the client closes the first one (1009)

    server = QuoteServer(handler)
    server.start()
    state = tmp_path / "s"
    c = Consumer(ring)
    c.stop_at_end.set()
    c.start()
    e = engine(ring, state, "--mode", "live", "--live-url", server.url, "--wait-for-consumers",
               "1")  # fmt: skip
    try:
        c.wait_count(n)
        wait_until(lambda: len(read_rejects(state)) >= len(expected), "every reject recorded")
        e.signal(signal.SIGTERM)
        assert e.wait() == 0, e.stderr()
        c.finish()
    finally:
        server.close()
        stop(e)
        c.halt()
    assert c.records() == [key(i) for i in range(n)], "valid quotes lost, repeated or moved"
    rejects = read_rejects(state)
    assert len(rejects) == len(expected), [r["reason"] for r in rejects]
    for rej, (frame, reason) in zip(rejects, expected, strict=True):
        assert (rej["source"], int(rej["line"])) == (server.url, frame), rej
        assert reason in rej["reason"], (reason, rej["reason"])
    assert server.connections == 2, "only the oversized frame may cost the connection"
    reasons = [_reason(ln) for ln in lines_matching(e, r" live disconnected ")]
    assert reasons == ["frame larger than 1048576 bytes (close 1009)", "stopped"], reasons


# === 3. disk trouble ==========================================================================


def _exactly_once(c: Consumer, total: int) -> None:
    seq, pos = c.seq, c.pos
    assert seq == list(range(total)), "records missing or repeated"
    assert pos == list(range(total)), "historical positions not contiguous"


def test_unusable_state_dir_or_control_file_fails_cleanly(
    csv20k: Path, tmp_path: Path, ring: str
) -> None:
    """A state dir under a regular file is a configuration error (exit 2 naming --state-dir);
    so is a control file under a regular file (exit 2 naming --control-file). No ring is
    left, at most the starting checkpoint; the next start with a usable path replays
    everything."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    args = ["--mode", "historical", "--historical", str(csv20k), "--speed", "max"]
    bad = run_module("engine", "--ring", ring, "--state-dir", str(blocker / "state"), *args)
    assert bad.returncode == 2, bad.stderr
    assert f"--state-dir {blocker / 'state'}" in bad.stderr and "Not a directory" in bad.stderr
    assert len(bad.stderr.splitlines()) == 1, bad.stderr
    state = tmp_path / "s"
    bad = run_module("engine", "--ring", ring, "--state-dir", str(state), "--control-file",
                     str(blocker / "mode"), *args)  # fmt: skip
    assert bad.returncode == 2, bad.stderr
    assert "--control-file" in bad.stderr and str(blocker) in bad.stderr, bad.stderr
    assert no_segment(ring)
    checkpoint = _checkpoint(state)
    assert checkpoint.get("next_seq", 0) == 0 and checkpoint.get("pos", 0) == 0
    c, _ = replay_to_end(ring, state, *args)
    _exactly_once(c, 19_990)


def test_control_file_in_a_regular_file_is_a_configuration_error(
    tmp_path: Path, ring: str
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    res = run_module("engine", "--mode", "live", "--live-url", "ws://127.0.0.1:9", "--ring",
                     ring, "--state-dir", str(tmp_path / "s"), "--control-file",
                     str(blocker / "mode"))  # fmt: skip
    assert no_segment(ring)
    assert res.returncode == 2 and "--control-file" in res.stderr, res.stderr


def test_full_state_dir_at_start_then_room_again(csv20k: Path, tmp_path: Path, ring: str) -> None:
    """No room for the parse cache, the checkpoint or rejected_rows.csv: exit 1 saying so,
    nothing published, no checkpoint written; with room again the same state dir works."""
    with small_tmpfs(tmp_path / "small", "4m") as small:
        filler = fill(small)
        state = small / "state"
        args = ["--mode", "historical", "--historical", str(csv20k), "--speed", "max"]
        bad = run_module("engine", "--ring", ring, "--state-dir", str(state), *args)
        assert bad.returncode == 1, bad.stderr
        assert "No space left on device" in bad.stderr
        assert not (state / "checkpoint.json").exists() and no_segment(ring)
        filler.unlink()
        c, _ = replay_to_end(ring, state, *args)
        _exactly_once(c, 19_990)
        assert len(read_rejects(state)) == 10


def _checkpoint(state: Path) -> dict:
    try:
        return json.loads((state / "checkpoint.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _fill_state_dir_mid_run(
    csv: Path, small: Path, ring: str
) -> tuple[Proc, Consumer, Path]:
    """Replay ``csv`` slowly with its state dir on ``small``; once a periodic checkpoint is
    written, fill the disk and wait until the next one has failed on it; then SIGTERM."""
    state = small / "state"
    c = Consumer(ring)
    c.start()
    e = engine(ring, state, "--mode", "historical", "--historical", str(csv), "--speed", "0.1",
               "--wait-for-consumers", "1")  # fmt: skip
    wait_until(lambda: _checkpoint(state).get("pos", 0) > 0, "a periodic checkpoint")
    filler = fill(small)
    e.wait_log(r' engine "checkpoint not written" ')  # a periodic save failed on the full disk
    assert not list(state.glob(".checkpoint.json.*.tmp")), "the failed save left its temp file"
    assert e.p.poll() is None, e.stderr()
    e.signal(signal.SIGTERM)
    return e, c, filler


def test_state_dir_fills_mid_run_then_restart_resumes(
    csv20k: Path, tmp_path: Path, ring: str
) -> None:
    """The disk under the state dir fills during a replay: SIGTERM then fails (exit 1, "No
    space left on device"), the checkpoint stays a valid earlier one, and after room is made
    the next start resumes from it: every record exactly once (repeats share their seq)."""
    with small_tmpfs(tmp_path / "small", "4m") as small:
        e, c, filler = _fill_state_dir_mid_run(csv20k, small, ring)
        try:
            assert e.wait() == 1, e.stderr()
            assert "No space left on device" in e.stderr()
            c.wait_for(lambda: bool(c.endings), "the first ring to go")
            cp = json.loads((small / "state" / "checkpoint.json").read_text())
            assert 0 < cp["pos"] == cp["next_seq"] <= c.count
            filler.unlink()
            c.stop_at_end.set()
            again = engine(ring, small / "state", "--mode", "historical", "--historical",
                           str(csv20k), "--speed", "max", "--exit-at-end",
                           "--wait-for-consumers", "1")  # fmt: skip
            assert again.wait() == 0, again.stderr()
            assert f"pos={cp['pos']}" in again.stderr()
            c.finish()
        finally:
            c.halt()
    _exactly_once(c, 19_990)


def test_state_dir_full_at_sigterm_still_ends_the_stream(
    csv20k: Path, tmp_path: Path, ring: str
) -> None:
    """The checkpoint cannot be written when SIGTERM comes: the engine still ends the stream
    (readers started with --exit-at-end finish), logs the failed checkpoints and exits 1."""
    with small_tmpfs(tmp_path / "small", "4m") as small:
        e, c, _ = _fill_state_dir_mid_run(csv20k, small, ring)
        try:
            assert e.wait() == 1, e.stderr()
            c.wait_for(lambda: bool(c.endings), "the end of the ring")
        finally:
            c.halt()
    assert c.endings[0] == "end", c.endings
    assert c.seq == list(range(c.count)) and c.count > 0
    assert " engine \"checkpoint not written\" " in e.stderr(), e.stderr()


def test_processor_disk_fills_mid_run_then_restart_is_identical(
    ring: str, tmp_path: Path, publishers: list[Publisher]
) -> None:
    """The mid log's file system (256 KiB tmpfs, the state file next to it) fills after many
    commits: exit 1 with "No space left on device", the state file no further than the disk;
    after the disk grows, a restart under the same name gives the uninterrupted logs."""
    q = make_quotes(30_000, seed=66)
    with small_tmpfs(tmp_path / "small", "256k") as small:
        args = ["--ring", ring, "--mid-log", str(small / "mid.log"), "--error-log",
                str(tmp_path / "err.log"), "--exit-at-end", "--latency-threshold", "20"]
        with ringbuffer.create(ring, QUOTE_SCHEMA, capacity=1 << 15) as w:
            first = Proc("processor", args)
            wait_until(lambda: any(x["pid"] == first.p.pid for x in w.consumers()), "attach")
            # at most 1,000 records ahead of what the processor made durable: many commits
            publishers.append(pub := Publisher(
                w, q, batch=100, ahead=1000, written=lambda: last_seq(small) + 1
            ))  # fmt: skip
            assert first.wait() == 1, first.stderr()
            pub.ahead = None  # now publish the rest
            assert "No space left on device" in first.stderr(), first.stderr()
            state = read_state(state_path(small))
            assert state is not None and (state["last_seq"] or 0) > 1000, "not mid-run"
            mid, err = (small / "mid.log").read_bytes(), (tmp_path / "err.log").read_bytes()
            assert len(mid) >= state["mid_bytes"] and len(err) >= state["error_bytes"]
            ref_mid, ref_err = reference({k: v[: state["last_seq"] + 1] for k, v in q.items()})
            assert (mid[: state["mid_bytes"]], err[: state["error_bytes"]]) == (ref_mid, ref_err)
            grow_tmpfs(small, "16m")
            pub.finish()
            w.end()
            second = Proc("processor", args)
            assert second.wait() == 0, second.stderr()
            assert "resuming" in second.stderr()
        assert ((small / "mid.log").read_bytes(), (tmp_path / "err.log").read_bytes()) == (
            reference(q)
        )


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_control_file_that_is_a_device_or_symlink_is_refused(
    csv20k: Path, tmp_path: Path, ring: str
) -> None:
    """``--control-file /dev/full`` as root must not replace the device with a regular file:
    a control file that exists and is not a regular file (a private /dev/full made with mknod,
    a symlink) is a configuration error, and stays as it was."""
    node = tmp_path / "full"
    os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(1, 7))
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    for path in (node, link):
        res = run_module("engine", "--mode", "historical", "--historical", str(csv20k),
                         "--speed", "max", "--ring", ring, "--state-dir", str(tmp_path / "s"),
                         "--control-file", str(path), "--exit-at-end")  # fmt: skip
        assert res.returncode == 2 and f"--control-file {path}" in res.stderr, res.stderr
        assert no_segment(ring)
    assert stat.S_ISCHR(os.lstat(node).st_mode), "the device node was replaced"
    assert link.is_symlink() and not (tmp_path / "elsewhere").exists()


# === 4. signals at random moments =============================================================


def _expected_logs(table: pa.Table, n: int) -> tuple[bytes, bytes]:
    """What the processor writes for the first ``n`` records of the sorted table."""
    t = table.slice(0, n).combine_chunks()
    batch = pa.RecordBatch.from_pydict({
        "seq": pa.array(np.arange(n, dtype=np.uint64)),
        "mode": pa.array(np.zeros(n, np.uint8)),
        "ticker": t.column("ticker").chunk(0) if n else pa.array([], pa.string()),
        "timestamp": t.column("timestamp").cast(pa.timestamp("ns", tz="UTC")).combine_chunks(),
        "latency": t.column("latency").combine_chunks(),
        "bid_price": t.column("bid_price").combine_chunks(),
        "ask_price": t.column("ask_price").combine_chunks(),
    })  # fmt: skip
    out = render(batch, 20.0)
    return out.mid, out.errors


@pytest.fixture(scope="module")
def uninterrupted(csv20k: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The reference: the pipeline at full speed, uninterrupted; and the sorted table."""
    run = replay(csv20k, tmp_path_factory.mktemp("reference"), threshold=20.0, timeout=120)
    ref = (run.mid_log.read_bytes(), run.error_log.read_bytes())
    table = load_historical(csv20k).table
    assert _expected_logs(table, table.num_rows) == ref
    assert ref[0].count(b"\n") > 1000 and ref[1].count(b"\n") > 100
    return ref, table


def _line_prefix(part: bytes, whole: bytes) -> bool:
    return whole.startswith(part) and (not part or part.endswith(b"\n"))


def _processor(ring: str, out: Path) -> Proc:
    return Proc("processor", [*out_args(out, ring), "--exit-at-end", "--latency-threshold", "20"])


@pytest.mark.parametrize("when", ["paced", "blocked"])
def test_sigterm_to_the_engine_at_a_random_moment(
    when: str, csv20k: Path, uninterrupted: tuple, tmp_path: Path, ring: str
) -> None:
    """SIGTERM to the engine mid-replay, while it paces (speed 0.1) or while it is blocked on a
    slow reader (speed max, 1,024-record ring): both programs exit 0 and the logs are those of
    the records published, a line-aligned prefix of the uninterrupted logs."""
    (ref_mid, ref_err), table = uninterrupted
    rng = np.random.default_rng(2025 + len(when))
    out = tmp_path / "out"
    proc = _processor(ring, out)
    n_total = table.num_rows
    target = int(rng.integers(n_total // 20, n_total // 4))
    guard = None
    if when == "paced":
        e = engine(ring, tmp_path / "s", "--mode", "historical", "--historical", str(csv20k),
                   "--speed", "0.1", "--exit-at-end", "--wait-for-consumers", "1")  # fmt: skip
    else:
        pace = threading.Semaphore(0)
        guard = Consumer(ring, "guard", pace=pace, max_records=512)
        guard.start()
        e = engine(ring, tmp_path / "s", "--mode", "historical", "--historical", str(csv20k),
                   "--speed", "max", "--capacity", "1024", "--exit-at-end",
                   "--wait-for-consumers", "2")  # fmt: skip
    try:
        if guard is None:
            wait_until(lambda: last_seq(out) >= target, f"seq {target} written")
        else:
            while guard.count < target:  # a batch (<= 512) a permit
                before = guard.reads
                pace.release()
                guard.wait_reads(before + 1)
        time.sleep(float(rng.uniform(0, 0.05)))  # a random moment, not a sync
        e.signal(signal.SIGTERM)
        if guard is not None:
            pace.release(1_000_000)  # let the slow reader drain what was published
            guard.stop_at_end.set()
        assert e.wait() == 0, e.stderr()
        assert proc.wait() == 0, proc.stderr()
    finally:
        for p in (e, proc):
            stop(p)
        if guard is not None:
            guard.halt()
    published = int(stderr_field(e.stderr(), " engine stopped ", "published"))
    assert target <= published < n_total, "the signal did not come mid-replay"
    mid, err = logs(out)
    assert (mid, err) == _expected_logs(table, published)
    assert _line_prefix(mid, ref_mid) and _line_prefix(err, ref_err)
    assert mid.count(b"\n") + err.count(b"\n") == published


def test_sigint_to_the_processor_then_restart_gives_identical_logs(
    csv20k: Path, uninterrupted: tuple, tmp_path: Path, ring: str
) -> None:
    """SIGINT to the processor twice at random moments of a paced replay, each time restarted
    under the same name: the logs are byte-identical to the uninterrupted run. A paused
    second reader keeps the engine from ending while the processor is down."""
    (ref_mid, ref_err), table = uninterrupted
    rng = np.random.default_rng(4)
    out = tmp_path / "out"
    pace = threading.Semaphore(0)
    guard = Consumer(ring, "guard", pace=pace, max_records=512)
    guard.start()
    e = engine(ring, tmp_path / "s", "--mode", "historical", "--historical", str(csv20k),
               "--speed", "0.5", "--exit-at-end", "--wait-for-consumers", "2")  # fmt: skip
    procs = [_processor(ring, out)]
    try:
        for target in sorted(rng.integers(1000, table.num_rows // 2, 2).tolist()):
            wait_until(functools.partial(written_up_to, out, target), f"seq {target} written")
            time.sleep(float(rng.uniform(0, 0.05)))  # a random moment, not a sync
            procs[-1].signal(signal.SIGINT)
            assert procs[-1].wait() == 0, procs[-1].stderr()
            assert "stopping signal=2" in procs[-1].stderr(), procs[-1].stderr()
            assert e.p.poll() is None, "the engine ended while the processor was down"
            procs.append(_processor(ring, out))
        procs[-1].wait_log(r" processor attached ")  # before the engine may end (the guard)
        pace.release(1_000_000)
        guard.stop_at_end.set()
        assert e.wait() == 0, e.stderr()
        assert procs[-1].wait() == 0, procs[-1].stderr()
    finally:
        for p in (e, *procs):
            stop(p)
        guard.halt()
    assert logs(out) == (ref_mid, ref_err)
    assert all("resuming" in p.stderr() for p in procs[1:])


def test_sigint_while_the_processor_renders_exits_0(ring: str, tmp_path: Path) -> None:
    """Ctrl-C pressed again and again while the processor works through a backlog, so that
    signals land while Polars runs (which turns them into KeyboardInterrupt; before the fix
    the first attempt nearly always died with a traceback and -SIGINT): exit 0 every time."""
    q = make_quotes(300_000, seed=67)
    for attempt in range(3):
        out = tmp_path / f"out{attempt}"
        with ringbuffer.create(ring, QUOTE_SCHEMA, capacity=1 << 19) as w:
            proc = Proc("processor", out_args(out, ring, f"p{attempt}"))
            wait_until(functools.partial(attached, w, proc), "attach")
            for lo in range(0, len(q["seq"]), 50_000):
                w.publish({k: v[lo : lo + 50_000] for k, v in q.items()})
            wait_until(functools.partial(written_up_to, out, 20_000, f"p{attempt}"), "a backlog")
            for _ in range(200):  # the fault: SIGINT after SIGINT, 1 ms apart
                if proc.p.poll() is not None:
                    break
                proc.signal(signal.SIGINT)
                time.sleep(0.001)
            code = proc.wait()
        assert code == 0 and "Traceback" not in proc.stderr(), proc.stderr()[-3000:]


def test_module_rings_listed(ring: str) -> None:
    """The module-level /dev/shm check sees this module's rings (sanity of scenario 5)."""
    with ringbuffer.create(ring, {"seq": "uint64"}, capacity=8):
        assert ring in shm_segments()
    assert ring not in shm_segments()

