"""``python -m engine.feed --as FORMAT``: the feed speaks a venue's protocol, and the live
source reading it with ``--live-format FORMAT`` gets the CSV's quotes back: every number
exactly, times to the venue's precision, heartbeats and subscriptions answered."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine.live import LiveSource
from engine.venues import EMULATED, FORMATS, Emulation
from tests.engine.test_venues import collect
from tests.support import wait_until
from tests.support.programs import Proc, cleanup

CSV = """,index,timestamp,ticker,ask_amount,ask_price,bid_price,bid_amount
0,0,2025-10-02 23:59:57.290123,SOL-USDT-SWAP@BINANCE,377.85,234.61,234.6,1356.54
1,1,2025-10-02 23:59:57.291,BTC-USDT-SWAP@OKEX,0.5,91234.2,91234.1,1.25
2,2,2025-10-02 23:59:57.292,DEGEN-USD-SWAP@KRAKEN,72072.0,0.003368,0.003054,71557.0
3,3,2025-10-02 23:59:57.293,AVNT-USDT-SWAP@BINANCE,993.0,1.1309,1.1308,
"""
#: The instrument names each venue format subscribes to for the CSV's tickers.
SYMBOLS = {
    "binance": ["SOLUSDT", "BTCUSDT", "DEGENUSD", "AVNTUSDT"],
    "okx": ["SOL-USDT-SWAP", "BTC-USDT-SWAP", "DEGEN-USD-SWAP", "AVNT-USDT-SWAP"],
    "bybit": ["SOLUSDT", "BTCUSDT", "DEGENUSD", "AVNTUSDT"],
    "coinbase": ["SOL-USDT-SWAP", "BTC-USDT-SWAP", "DEGEN-USD-SWAP", "AVNT-USDT-SWAP"],
    "kraken": ["SOL/USDT-SWAP", "BTC/USDT-SWAP", "DEGEN/USD-SWAP", "AVNT/USDT-SWAP"],
}
SYMBOLS["okx-tickers"] = SYMBOLS["okx"]
MS_VENUES = {"binance", "okx", "okx-tickers", "bybit"}


@pytest.mark.parametrize("fmt", EMULATED)
def test_a_feed_speaking_a_venues_protocol_reads_back_exactly(tmp_path: Path, fmt: str) -> None:
    csv_path = tmp_path / "q.csv"
    csv_path.write_text(CSV)
    feed = Proc("engine.feed", ["--csv", str(csv_path), "--port", "0", "--speed", "max",
                                "--loop", "--as", fmt])  # fmt: skip
    with cleanup(feed):
        line = feed.wait_log(r" listening ")
        port = re.search(r" port=(\d+)", line)
        assert port is not None
        source = LiveSource(f"ws://127.0.0.1:{port[1]}/v5/public/linear", format=fmt,
                            instruments=tuple(SYMBOLS[fmt]), heartbeat=0.1,
                            batch_interval=0.002)  # fmt: skip
        source.start()
        try:
            rows = collect(source, 40, f"{fmt}: ten passes of the CSV")
            if fmt in ("okx", "okx-tickers", "bybit"):

                def answered() -> bool:
                    source.poll(0.02)  # keep reading: the answers come between the quotes
                    return source.stats.get("venue_heartbeats", 0) >= 2

                wait_until(answered, f"{fmt}: two heartbeats answered")
            stats = source.stats
        finally:
            source.stop()
    assert stats["rejected"] == 0 and stats["connects"] == 1
    assert stats.get("venue_control", 0) >= 1, "the subscription was answered"
    first = next(i for i, r in enumerate(rows) if r[2] == 234.6)  # a pass starts
    one_pass = rows[first : first + 4]
    assert [(r[2], r[3]) for r in one_pass] == [(234.6, 234.61), (91234.1, 91234.2),
                                                (0.003054, 0.003368), (1.1308, 1.1309)]
    assert one_pass[0][4:] == (1356.54, 377.85)
    stamp = one_pass[0][1]
    assert stamp == (1759449597290000000 if fmt in MS_VENUES else 1759449597290123000)
    assert all(r[0].endswith("-SWAP@" + FORMATS[fmt].venue) for r in one_pass), one_pass


def test_the_answers_are_the_venues() -> None:
    okx = Emulation("okx")
    assert okx.answer("ping") == ["pong"]
    sub = {"op": "subscribe", "args": [{"channel": "bbo-tbt", "instId": "A"}]}
    assert json.loads(okx.answer(json.dumps(sub))[0])["event"] == "subscribe"
    assert Emulation("binance").answer("ping") == [] and Emulation("kraken").answer("[1]") == []
    with pytest.raises(ValueError):
        Emulation("ours")
