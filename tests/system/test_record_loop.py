"""The loop: the venue's top of book recorded live (``python -m engine.record``), the recording
replayed (``python -m engine --mode historical``) into a processor, whose logs must be the
contract oracle's for that file, with the latency threshold splitting the records as their
recorded latencies say."""

from __future__ import annotations

import csv
import signal
from decimal import Decimal
from pathlib import Path

from tests.support import wait_until
from tests.support.oracle import expected_logs
from tests.support.processor import out_args
from tests.support.programs import Proc, cleanup
from tests.support.venue import VenueProc

SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT")
GREETING = len(SYMBOLS)  # the feed's first frame: a quote per symbol, of its empty book


def orders() -> list[dict[str, object]]:
    """Orders that each change a top of book: rising bids, falling asks, and trades."""
    out: list[dict[str, object]] = []
    for k in range(12):
        for i, symbol in enumerate(SYMBOLS):
            base = Decimal(100 * (i + 1))
            out.append({"symbol": symbol, "side": "BUY", "price": str(base + Decimal(k) / 100),
                        "quantity": 1})  # fmt: skip
            out.append({"symbol": symbol, "side": "SELL",
                        "price": str(base + 2 - Decimal(k) / 100), "quantity": 1})  # fmt: skip
    return out


def test_a_recording_of_the_venue_replays_to_the_contracts_logs(
    tmp_path: Path, ring_name: str
) -> None:
    venue = VenueProc(tmp_path / "venue")
    rec_dir, out = tmp_path / "rec", tmp_path / "out"
    try:
        rec = Proc("engine.record", ["--live-url", f"ws://127.0.0.1:{venue.http}/ws/quotes",
                                     "--out", str(rec_dir)])  # fmt: skip
        with cleanup(rec):
            rec.wait_log(r" live connected ")
            sent = orders()
            for order in sent:
                assert venue.post("/api/orders", order).status_code == 201
            want = GREETING + len(sent)

            def recorded() -> int:
                return sum(p.read_bytes().count(b"\n") - 1 for p in rec_dir.glob("*.csv"))

            wait_until(lambda: recorded() == want, f"{want} quotes recorded")
            rec.signal(signal.SIGTERM)
            assert rec.wait() == 0, rec.stderr()
    finally:
        assert venue.stop() == 0
    (recording,) = rec_dir.glob("quotes-*.csv")
    with open(recording, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == want
    latencies = sorted(Decimal(r["latency"]) for r in rows)
    assert latencies[0] >= 0, "the venue and the recorder share a clock"
    threshold = latencies[len(latencies) // 2]
    over = [r for r in rows if Decimal(r["latency"]) > threshold]
    assert 0 < len(over) < len(rows), "the threshold splits the recording"

    engine = Proc("engine", ["--mode", "historical", "--historical", str(recording),
                             "--speed", "max", "--exit-at-end", "--ring", ring_name,
                             "--state-dir", str(tmp_path / "state"),
                             "--wait-for-consumers", "1"])  # fmt: skip
    processor = Proc("processor", [*out_args(out, ring_name), "--exit-at-end",
                                   "--latency-threshold", str(threshold)])  # fmt: skip
    with cleanup(engine, processor):
        assert engine.wait() == 0, engine.stderr()
        assert processor.wait() == 0, processor.stderr()
    assert "rejected=0" in engine.stderr()
    expected_logs(str(recording), float(threshold), str(tmp_path / "mid.want"),
                  str(tmp_path / "err.want"))  # fmt: skip
    assert (out / "mid.log").read_bytes() == (tmp_path / "mid.want").read_bytes()
    assert (out / "err.log").read_bytes() == (tmp_path / "err.want").read_bytes()
    # And by the recorded latencies themselves: the latency lines are exactly the rows over.
    errors = (out / "err.log").read_text().splitlines()
    late = [e for e in errors if " as latency " in e]
    assert len(late) == len(over)
    assert sorted(e.split(" as latency ")[0].removeprefix("No mid price at ") for e in late) == \
        sorted(r["timestamp"][:23] for r in over)
    mids = (out / "mid.log").read_text().splitlines()
    assert len(mids) + len(errors) == len(rows) and mids
