"""The loop: the venue's top of book (``/ws/quotes``) replayed live by the engine into the ring,
and a processor writing the venue's mid prices (contract sections 1, 3 and 6)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from websockets.sync.client import connect

from tests.support import WAIT, wait_until
from tests.support.oracle import mid_ref, parse_ts, plain, stamp
from tests.support.processor import out_args
from tests.support.programs import Proc, stop_live_engine
from tests.support.venue import VenueProc

ORDERS = [  # each changes a top: one-sided books first (invalid quotes), then two-sided ones
    {"symbol": "BTC-USDT", "side": "BUY", "price": "100", "quantity": 1},
    {"symbol": "BTC-USDT", "side": "SELL", "price": "101.01", "quantity": 2},
    {"symbol": "BTC-USDT", "side": "BUY", "price": "100.5", "quantity": "0.5"},
    {"symbol": "ETH-USDT", "side": "SELL", "price": "2000.1", "quantity": "0.003"},
    {"symbol": "BTC-USDT", "side": "SELL", "type": "MARKET", "quantity": "0.7"},
    {"symbol": "ETH-USDT", "side": "BUY", "price": "1999.9", "quantity": "0.002"},
    {"symbol": "SOL-USDT", "side": "BUY", "price": "0.003", "quantity": "0.01"},
    {"symbol": "SOL-USDT", "side": "SELL", "price": "0.004", "quantity": "0.01"},
]


def quote_lines(quote: dict[str, object]) -> tuple[str | None, str | None]:
    """The mid line or the error line the contract gives this quote (extended format)."""
    ts = parse_ts(str(quote["timestamp"]))
    assert ts is not None
    bid, ask = float(quote["bid_price"]), float(quote["ask_price"])  # type: ignore[arg-type]
    if bid > 0 and ask > 0:
        return f"{stamp(ts)}, {quote['ticker']}, {mid_ref(bid, ask)}", None
    return None, (f"No mid price at {stamp(ts)} as quote is invalid "
                  f"(bid {plain(bid, False)}, ask {plain(ask, False)})")  # fmt: skip


def test_the_venues_quotes_replayed_live_give_its_mid_prices(
    tmp_path: Path, ring_name: str
) -> None:
    ring = ring_name
    venue = VenueProc(tmp_path / "venue")
    out = tmp_path / "out"
    processor = Proc("processor", [*out_args(out, ring, "p"), "--format", "extended",
                                   "--exit-at-end"])  # fmt: skip
    engine = Proc("engine", ["--ring", ring, "--state-dir", str(tmp_path / "state"),
                             "--mode", "live", "--live-url",
                             f"ws://127.0.0.1:{venue.http}/ws/quotes",
                             "--wait-for-consumers", "1"])  # fmt: skip
    try:
        engine.wait_log(r" live connected ")
        with connect(f"ws://127.0.0.1:{venue.http}/ws/quotes", open_timeout=WAIT,
                     proxy=None) as ws:  # fmt: skip
            ws.recv(timeout=WAIT)  # our own greeting
            for order in ORDERS:
                assert venue.post("/api/orders", order).status_code == 201
            quotes: list[dict[str, object]] = []
            while len(quotes) < len(ORDERS):
                frame = json.loads(ws.recv(timeout=WAIT), parse_float=Decimal)
                quotes += frame if isinstance(frame, list) else [frame]
        assert len(quotes) == len(ORDERS), "one top change an order"
        mids = [m for m, _ in map(quote_lines, quotes) if m]
        errors = [e for _, e in map(quote_lines, quotes) if e]
        greeting = 3  # the engine's own greeting: three empty books, three invalid quotes

        def written() -> bool:
            lines = [(out / name).read_text().splitlines() if (out / name).exists() else []
                     for name in ("mid.log", "err.log")]  # fmt: skip
            return len(lines[0]) == len(mids) and len(lines[1]) == greeting + len(errors)

        wait_until(written, "the processor to write a line per quote")
        stop_live_engine(engine, processor)
    finally:
        for p in (engine, processor):
            if p.p.poll() is None:
                p.kill()
        assert venue.stop() == 0
    assert (out / "mid.log").read_text().splitlines() == mids
    err = (out / "err.log").read_text().splitlines()
    assert all(line.endswith("as quote is invalid (bid 0, ask 0)") for line in err[:greeting])
    assert err[greeting:] == errors
    assert mids[0].endswith(", BTC-USDT@EXCHANGE, 100.505"), mids
