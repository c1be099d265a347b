"""Engine pieces without processes: pacing, the historical source, control, checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from common.log import get_logger
from common.schema import Mode
from engine.checkpoint import Checkpoint, CheckpointError, recover
from engine.control import ModeControl
from engine.historical import parse_historical
from engine.pacing import FakeClock, Pacer
from engine.sources import HistoricalSource

HEADER = ",index,timestamp,ticker,ask_amount,ask_price,bid_price,bid_amount,latency\n"


def csv(rows: Sequence[tuple[str, float]]) -> bytes:
    body = "".join(
        f"{i},{i},{ts},T{i}-USDT-SWAP@X,1.0,2.5,2.4,1.0,{lat}\n" for i, (ts, lat) in enumerate(rows)
    )
    return (HEADER + body).encode()


def drain(source: HistoricalSource, clock: FakeClock, until: float) -> list[tuple[float, list]]:
    """(clock time, timestamps) of each batch the source yields until ``until`` seconds."""
    out = []
    source.start()
    while clock.now() < until and not source.exhausted:
        batch = source.poll(timeout=0.05)
        if batch is not None:
            out.append((clock.now(), batch.columns["timestamp"].tolist()))
            source.advance(len(batch))
    return out


@pytest.mark.parametrize(
    ("first_latency", "order"),
    [
        # The contract's literal example: arrivals 0.120, 0.201, 0.710 s keep file order
        # (its text says [2, 3, 1], which holds only for latency in seconds; see README).
        (120, [1, 2, 3]),
        (1200, [2, 3, 1]),  # record 1 arrives at 1.2 s, after the others
    ],
)
def test_publish_order_is_arrival_order(first_latency: int, order: list[int]) -> None:
    parsed = parse_historical(
        csv([("2025-01-01 00:00:00", first_latency), ("2025-01-01 00:00:00.200", 1),
             ("2025-01-01 00:00:00.700", 10)]),
        "x.csv",
    )  # fmt: skip
    clock = FakeClock()
    src = HistoricalSource(parsed.table, pos=0, speed=None, clock=clock)
    ((_, stamps),) = drain(src, clock, 1)
    base = 1735689600_000_000_000
    by_record = {1: base, 2: base + 200_000_000, 3: base + 700_000_000}
    assert stamps == [by_record[i] for i in order]


@pytest.mark.parametrize("speed", [1.0, 10.0])
def test_pacing_follows_arrival_times_without_per_record_sleeps(speed: float) -> None:
    # arrivals at 0, 0, 0.5, 0.5, 0.5, 2.0 s (latency 0): three due times
    rows = [("2025-01-01 00:00:00", 0)] * 2 + [("2025-01-01 00:00:00.5", 0)] * 3
    rows += [("2025-01-01 00:00:02", 0)]
    parsed = parse_historical(csv(rows), "x.csv")
    clock = FakeClock(100.0)
    src = HistoricalSource(parsed.table, pos=0, speed=speed, clock=clock)
    batches = drain(src, clock, 1000)
    assert [len(b) for _, b in batches] == [2, 3, 1]  # everything due goes in one batch
    times = [round((t - 100.0) * speed, 6) for t, _ in batches]
    assert times == [0.0, 0.5, 2.0]


def test_resume_reanchors_pacing_without_a_burst() -> None:
    rows = [(f"2025-01-01 00:00:0{i}", 0) for i in range(6)]
    parsed = parse_historical(csv(rows), "x.csv")
    clock = FakeClock()
    src = HistoricalSource(parsed.table, pos=0, speed=1.0, clock=clock)
    first = drain(src, clock, 1.5)  # records at 0 s and 1 s
    assert [len(b) for _, b in first] == [1, 1]
    clock.sleep(60)  # paused (live mode) for a minute
    src.start()
    batch = src.poll(timeout=0.05)
    assert batch is not None and len(batch) == 1  # one record due now, not a minute's catch-up
    src.advance(1)
    assert src.poll(timeout=0.05) is None  # the next is due a second later


def test_pacer_rejects_bad_speed() -> None:
    with pytest.raises(ValueError):
        Pacer(0.0, FakeClock())


def test_parse_mode() -> None:
    assert [Mode.parse(t) for t in ("live", " Historical\n", "", "both", "live!")] == [
        Mode.LIVE, Mode.HISTORICAL, None, None, None,
    ]  # fmt: skip
    assert [str(m) for m in Mode] == ["historical", "live"]  # as the control file writes them


def test_control_file_and_toggle(tmp_path: Path) -> None:
    hist, live = Mode.HISTORICAL, Mode.LIVE
    ctl = ModeControl(tmp_path / "mode", get_logger("test"), check_every=0)
    ctl.record(hist)
    assert (tmp_path / "mode").read_text() == "historical\n"
    assert ctl.poll(hist) is None
    ctl.toggle()
    assert ctl.poll(hist) is live
    ctl.toggle()
    ctl.toggle()  # two toggles cancel out
    assert ctl.poll(hist) is None
    (tmp_path / "mode").write_text("live\n")
    assert ctl.poll(hist) is live
    (tmp_path / "mode").write_text("sideways\n")
    assert ctl.poll(live) is None  # logged and ignored


def test_checkpoint_roundtrip_and_corruption(tmp_path: Path) -> None:
    assert Checkpoint.load(tmp_path) is None
    cp = Checkpoint(next_seq=7, pos=5, input={"path": "x"})
    cp.save(tmp_path)
    assert Checkpoint.load(tmp_path) == cp
    (tmp_path / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="delete it"):
        Checkpoint.load(tmp_path)


def test_recover_prefers_the_ring_over_a_stale_checkpoint() -> None:
    import pyarrow as pa

    from ringbuffer import Salvage

    cp = Checkpoint(stream=42, next_seq=10, pos=10)
    records = pa.table({"seq": np.array([8, 9, 10, 11, 12], np.uint64),
                        "mode": np.array([0, 0, 0, 1, 1], np.uint8),
                        "pos": np.array([8, 9, 10, -1, -1], np.int64)})  # fmt: skip
    got, carry = recover(cp, Salvage(42, 1, 8, 13, records))
    assert carry and (got.next_seq, got.pos) == (13, 11)
    other, carry = recover(Checkpoint(stream=7, next_seq=3), Salvage(42, 1, 8, 13, records))
    assert not carry and other.next_seq == 3  # another stream's ring: not ours to carry
