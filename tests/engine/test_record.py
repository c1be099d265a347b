"""``python -m engine.record`` as a process, against a local quote server: what it records,
rotation, a stop, a kill -9, negative latencies, and the command lines it refuses."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection

from tests.support import wait_until
from tests.support.faulttools import BASE_NS, QuoteServer
from tests.support.programs import Proc, cleanup, run_module

HEADER = ["", "index", "timestamp", "ticker", "ask_amount", "ask_price", "bid_price",
          "bid_amount", "latency"]  # fmt: skip


def rows_of(folder: Path, prefix: str = "quotes") -> list[dict[str, str]]:
    """Every row of the recording's files, in file order; checks each file is whole."""
    rows: list[dict[str, str]] = []
    for path in sorted(folder.glob(f"{prefix}-*.csv")):
        data = path.read_bytes()
        assert data.endswith(b"\n"), f"{path.name} ends in a torn row"
        with open(path, newline="") as f:
            reader = csv.reader(f)
            assert next(reader) == HEADER
            for line in reader:
                assert len(line) == len(HEADER), f"{path.name}: {line}"
                rows.append(dict(zip(HEADER, line, strict=True)))
    return rows


def count_rows(folder: Path, prefix: str = "quotes") -> int:
    return sum(max(p.read_bytes().count(b"\n") - 1, 0) for p in folder.glob(f"{prefix}-*.csv"))


def stop_when_all_recorded(server: QuoteServer, rec: Proc, out: Path) -> int:
    """Pause the server, wait until the recorder has every quote sent, SIGTERM it (exit 0);
    how many quotes were sent."""
    server.pause()
    sent = len(server.sent)
    wait_until(lambda: count_rows(out) == sent, "every quote sent recorded")
    rec.signal(signal.SIGTERM)
    assert rec.wait() == 0, rec.stderr()
    return sent


def record(url: str, out: Path, *extra: str) -> Proc:
    return Proc("engine.record", ["--live-url", url, "--out", str(out), *extra])


def test_what_arrives_is_recorded_in_order_with_its_latency_and_a_stop_keeps_it(
    tmp_path: Path,
) -> None:
    out = tmp_path / "rec"
    with QuoteServer() as server:
        rec = record(server.url, out, "--rotate-rows", "40")
        with cleanup(rec):
            wait_until(lambda: count_rows(out) >= 100, "100 rows recorded")
            sent = stop_when_all_recorded(server, rec, out)
    rows = rows_of(out)
    files = sorted(out.glob("quotes-*.csv"))
    assert [count_rows_in(p) for p in files[:-1]] == [40] * (len(files) - 1)
    assert len(rows) == sent and [int(r["index"]) for r in rows] == list(range(sent))
    assert [int(r[""]) for r in rows[:45]] == [*range(40), *range(5)]
    for i, row in enumerate(rows):
        assert (row["ticker"], row["bid_price"], row["ask_price"]) == (
            f"Q{i % 11}-USDT-SWAP@FLAP", repr(i + 0.5), repr(i + 0.75))
        assert row["timestamp"] == _stamp(BASE_NS + i * 1000)
        assert float(row["latency"]) > 0  # the quotes' times are in the past
    log = rec.stderr()
    assert log.count(" record recorded ") == len(files) and "negative_latency=0" in log


def count_rows_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") - 1


def _stamp(ns: int) -> str:
    from engine.recording import timestamp_text

    return timestamp_text(ns)


def test_a_kill_9_leaves_whole_rows_that_replay(tmp_path: Path, ring_name: str) -> None:
    out = tmp_path / "rec"
    with QuoteServer() as server:
        rec = record(server.url, out, "--rotate-rows", "150")
        with cleanup(rec):
            wait_until(lambda: count_rows(out) >= 400, "400 rows recorded")
            rec.signal(signal.SIGKILL)
            rec.wait()
    rows = rows_of(out)  # every file ends with a whole row
    assert len(rows) >= 400
    assert [(r["ticker"], r["timestamp"]) for r in rows] == [
        (t, _stamp(ns)) for t, ns in server.sent[: len(rows)]]  # fmt: skip
    for path in sorted(out.glob("quotes-*.csv")):
        done = run_module("engine", "--mode", "historical", "--historical", str(path),
                          "--speed", "max", "--exit-at-end", "--ring", ring_name,
                          "--state-dir", str(tmp_path / f"state-{path.stem}"))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"rows={count_rows_in(path)} rejected=0" in done.stderr


async def future_and_past(server: QuoteServer, ws: ServerConnection, n: int) -> None:
    quotes = [{"timestamp": "2100-01-01 00:00:00.5", "ticker": "F@X", "bid_price": "1",
               "ask_price": "2"},
              {"timestamp": "2025-01-01 00:00:00", "ticker": "P@X", "bid_price": 1.5,
               "ask_price": 2.5, "bid_amount": 3, "ask_amount": 4}]  # fmt: skip
    await server.send(ws, json.dumps(quotes))
    await ws.wait_closed()


def test_a_negative_latency_is_kept_and_counted(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    with QuoteServer(future_and_past) as server:
        rec = record(server.url, out)
        with cleanup(rec):
            wait_until(lambda: count_rows(out) == 2, "both quotes recorded")
            rec.signal(signal.SIGINT)
            assert rec.wait() == 0, rec.stderr()
    future, past = rows_of(out)
    assert future["latency"].startswith("-") and float(past["latency"]) > 0
    assert (future["bid_amount"], past["bid_amount"]) == ("", "3.0")
    assert "negative_latency=1" in rec.stderr()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--rotate-rows", "5", "--rotate-minutes", "1"], "not allowed with argument"),
        (["--rotate-rows", "0"], "--rotate-rows takes a whole number >= 1"),
        (["--live-format", "okx"], "--live-format okx subscribes to instruments"),
        (["--live-format", "nyse"], "--live-format: invalid choice"),
        (["--live-url", "http://x"], "--live-url"),
    ],
)
def test_command_lines_that_cannot_work_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    done = run_module("engine.record", "--out", str(tmp_path / "rec"), *args)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_an_out_that_is_a_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    done = run_module("engine.record", "--out", str(tmp_path / "f"))
    assert done.returncode == 2 and "exists and is not a folder" in done.stderr, done.stderr


def test_from_the_ring_every_live_record_once_across_a_kill_9_of_the_recorder(
    tmp_path: Path, ring_name: str
) -> None:
    out = tmp_path / "rec"
    with QuoteServer() as server:
        engine = Proc("engine", ["--mode", "live", "--live-url", server.url, "--ring", ring_name,
                                 "--state-dir", str(tmp_path / "state"),
                                 "--wait-for-consumers", "1"])  # fmt: skip
        ring_args = ["--ring", ring_name, "--name", "rec", "--out", str(out), "--exit-at-end",
                     "--rotate-rows", "100"]  # fmt: skip
        first = Proc("engine.record", ring_args)
        with cleanup(engine, first):
            wait_until(lambda: count_rows(out, "rec") >= 300, "300 rows recorded from the ring")
            first.signal(signal.SIGKILL)  # rows written but maybe not committed: not twice
            first.wait()
            second = Proc("engine.record", ring_args)
            with cleanup(second):
                second.wait_log(r" record recording ")
                wait_until(lambda: count_rows(out, "rec") >= 600,
                           "600 rows recorded across the restart")  # fmt: skip
                server.pause()
                sent = len(server.sent)
                wait_until(lambda: count_rows(out, "rec") == sent, "every quote sent recorded")
                engine.signal(signal.SIGTERM)  # the end of the stream: the recorder exits
                assert engine.wait() == 0, engine.stderr()
                assert second.wait() == 0, second.stderr()
    rows = rows_of(out, "rec")
    assert [int(r["index"]) for r in rows] == list(range(sent)), "each seq once, in order"
    assert [(r["ticker"], r["timestamp"]) for r in rows] == [
        (t, _stamp(ns)) for t, ns in server.sent]  # fmt: skip
    assert all(float(r["latency"]) > 0 for r in rows)
    assert all(p.name.startswith("rec-") for p in out.glob("*.csv"))


def test_from_the_ring_a_new_stream_starts_a_new_file(tmp_path: Path, ring_name: str) -> None:
    out = tmp_path / "rec"
    with QuoteServer() as server:
        rec = Proc("engine.record", ["--ring", ring_name, "--name", "rec", "--out", str(out)])
        with cleanup(rec):
            for stream in ("a", "b"):  # two engines, two state folders: two streams
                engine = Proc("engine", ["--mode", "live", "--live-url", server.url,
                                         "--ring", ring_name, "--wait-for-consumers", "1",
                                         "--state-dir", str(tmp_path / stream)])  # fmt: skip
                with cleanup(engine):
                    want = count_rows(out, "rec") + 50

                    def fifty_more(want: int = want) -> bool:
                        return count_rows(out, "rec") >= want

                    wait_until(fifty_more, f"stream {stream}: 50 rows")
                    engine.signal(signal.SIGTERM)
                    assert engine.wait() == 0, engine.stderr()
            wait_until(lambda: "new stream: new file" in rec.stderr(), "a file for stream b")
            rec.signal(signal.SIGTERM)
            assert rec.wait() == 0, rec.stderr()
    files = sorted(out.glob("rec-*.csv"))
    assert len(files) == 2
    for path in files:
        with open(path, newline="") as f:
            indexes = [int(r["index"]) for r in csv.DictReader(f)]
        assert indexes == list(range(len(indexes))), path.name


def test_rotation_by_minutes_of_arrival(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    with QuoteServer() as server:
        rec = record(server.url, out, "--rotate-minutes", "0.01")  # 0.6 s a file
        with cleanup(rec):
            wait_until(lambda: len(list(out.glob("quotes-*.csv"))) >= 3, "three files")
            sent = stop_when_all_recorded(server, rec, out)
    rows = rows_of(out)
    assert [(r["ticker"], r["timestamp"]) for r in rows] == [
        (t, _stamp(ns)) for t, ns in server.sent]  # fmt: skip
    # Quotes come every ~3 ms: 0.6 s of arrivals is about 200 frames a file, never all of them.
    sizes = [count_rows_in(p) for p in sorted(out.glob("quotes-*.csv"))]
    assert len(sizes) >= 3 and all(0 < n < sent for n in sizes)


def test_files_appear_with_their_header_and_leave_no_temporary_file(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    out.mkdir()
    with QuoteServer() as server:
        rec = record(server.url, out, "--rotate-rows", "20")
        with cleanup(rec):
            wait_until(lambda: len(list(out.glob("quotes-*.csv"))) >= 4, "four files")
            for path in out.glob("quotes-*.csv"):  # never seen without its header
                assert path.read_bytes().startswith(b",index,timestamp,"), path.name
            stop_when_all_recorded(server, rec, out)
    assert not list(out.glob(".*")), "no temporary file left"


def test_rows_are_synced_within_the_interval_even_when_nothing_more_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa

    from engine import record as rec_module
    from engine.recording import Rotation

    table = pa.table({"ticker": pa.array(["A@X"]).dictionary_encode(),
                      "timestamp": pa.array([BASE_NS], pa.int64()),
                      "arrival": pa.array([BASE_NS + 1_000_000], pa.int64()),
                      **{c: pa.array([1.0]) for c in ("bid_price", "ask_price", "bid_amount",
                                                       "ask_amount")}})  # fmt: skip
    recorder = rec_module.Recorder(tmp_path, Rotation(rows=10))
    assert recorder.sync_if_due(), "nothing written: nothing to wait for"
    monkeypatch.setattr(rec_module, "FSYNC_EVERY", 3600.0)
    recorder.write(table)
    assert not recorder.sync_if_due(), "written, not yet due: not durable"
    monkeypatch.setattr(rec_module, "FSYNC_EVERY", 0.0)
    assert recorder.sync_if_due(), "due: synced by the call alone, no further write needed"
    recorder.close()
    (path,) = tmp_path.glob("quotes-*.csv")
    assert path.read_bytes().count(b"\n") == 2
