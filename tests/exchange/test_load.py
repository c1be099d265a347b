"""``python -m exchange.load`` against a real venue: every command it sends is acknowledged, and
the venue's ``/api/debug/state`` then holds exactly the orders it placed; usage errors exit 2."""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from exchange.load import Market, Trader, histogram, percentile
from tests.support.programs import Proc, run_module


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[tuple[int, int]]:
    proc = Proc(
        "exchange",
        ["--http-port", "0", "--private-port", "0", "--public-port", "0",
         "--data-dir", str(tmp_path / "venue")],
    )  # fmt: skip
    try:
        line = proc.wait_log(r"listening http=(\d+) private=(\d+) public=(\d+)")
        match = re.search(r"listening http=(\d+) private=(\d+) public=(\d+)", line)
        assert match
        yield int(match.group(1)), int(match.group(2))
        proc.signal(signal.SIGINT)
        assert proc.wait() == 0, proc.stderr()
    finally:
        proc.kill()


def _state(http: int) -> dict:
    response = httpx.get(f"http://127.0.0.1:{http}/api/debug/state", timeout=30)
    response.raise_for_status()
    return response.json()


def _load(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "load.json"
    done = run_module("exchange.load", *args, "--json", str(out), timeout=60)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "acknowledged commands/s" in done.stdout and "p99.9" in done.stdout
    return json.loads(out.read_text())


def _check_result(result: dict, commands: int) -> None:
    assert result["sent"] == commands
    assert result["acknowledged"] == commands
    assert result["unacknowledged"] == 0
    assert result["orders_rejected"] == 0, result["errors"]
    assert result["orders_sent"] == result["orders_accepted"] > 0
    assert result["cancels_sent"] == result["cancels_done"] + result["cancels_refused"] > 0
    assert result["errors"] == []
    assert set(result["latency_ms"]) == {"p50", "p90", "p99", "p99.9", "max"}
    assert sum(count for _, count in result["histogram_ms"]) == commands


def test_wood_every_order_acknowledged_and_in_the_venue(
    venue: tuple[int, int], tmp_path: Path
) -> None:
    http, private = venue
    result = _load(
        tmp_path, "--private", f"127.0.0.1:{private}", "--url", f"http://127.0.0.1:{http}",
        "--connections", "4", "--orders", "400", "--rate", "2000", "--seed", "3",
    )  # fmt: skip
    _check_result(result, 400)
    orders = _state(http)["orders"]
    assert len(orders) == result["orders_accepted"]
    # Each of the 4 connections numbers its own orderIds 1, 2, 3...: the venue keeps them as the
    # client order id, so every id appears as often as there were connections that used it.
    ids = Counter(int(o["client_order_id"]) for o in orders)
    assert ids[1] == 4
    assert sum(ids.values()) == result["orders_accepted"]
    assert sum(o["status"] == "CANCELED" for o in orders) >= result["cancels_done"]
    assert all(o["symbol"] == "BTC-USDT" for o in orders)


def test_rest_every_order_acknowledged_and_in_the_venue(
    venue: tuple[int, int], tmp_path: Path
) -> None:
    http, _ = venue
    result = _load(
        tmp_path, "--protocol", "rest", "--url", f"http://127.0.0.1:{http}",
        "--connections", "3", "--orders", "300", "--rate", "1000",
    )  # fmt: skip
    _check_result(result, 300)
    orders = _state(http)["orders"]
    assert len(orders) == result["orders_accepted"]
    assert all(re.fullmatch(r"load-[012]-\d+", o["client_order_id"]) for o in orders)
    assert len({o["client_order_id"] for o in orders}) == len(orders)
    assert sum(o["status"] == "CANCELED" for o in orders) == result["cancels_done"]


def test_max_rate_with_a_window(venue: tuple[int, int], tmp_path: Path) -> None:
    http, private = venue
    result = _load(
        tmp_path, "--private", f"127.0.0.1:{private}", "--connections", "2", "--orders", "300",
        "--rate", "max", "--window", "16",
    )  # fmt: skip
    _check_result(result, 300)
    assert result["rate"] == "max"
    assert len(_state(http)["orders"]) == result["orders_accepted"]


@pytest.mark.parametrize(
    "args",
    [
        [],  # wood needs --private
        ["--protocol", "rest"],  # rest needs --url
        ["--private", "nohost"],
        ["--private", "127.0.0.1:70000"],
        ["--url", "ftp://x:1", "--protocol", "rest"],
        ["--private", "127.0.0.1:1", "--rate", "0"],
        ["--private", "127.0.0.1:1", "--rate", "fast"],
        ["--private", "127.0.0.1:1", "--connections", "0"],
        ["--private", "127.0.0.1:1", "--duration", "1", "--orders", "5"],
        ["--private", "127.0.0.1:1", "--symbol", "DOGE-USDT"],  # unknown tick and lot
        ["--private", "127.0.0.1:1", "--protocol", "fix"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    done = run_module("exchange.load", *args)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == ""


def test_unreachable_venue_exits_1() -> None:
    done = run_module("exchange.load", "--private", "127.0.0.1:1", "--orders", "5")
    assert done.returncode == 1, done.stderr
    assert "cannot connect" in done.stderr


def test_traders_stay_on_the_grid() -> None:
    import random
    from decimal import Decimal

    market = Market("BTC-USDT", Decimal("0.01"), Decimal("0.0001"), 10_000)
    trader = Trader(market, random.Random(1), "rest")
    kinds: Counter[str] = Counter()
    for n in range(2000):
        kind, what = trader.next()
        if kind == "cancel":
            kinds["cancel"] += 1
            continue
        side, type_, tif, price, lots = what
        kinds[f"{type_}/{tif}"] += 1
        assert 1 <= lots <= 100
        assert Decimal(market.quantity(lots)) % Decimal("0.0001") == 0
        if price is not None:
            assert Decimal(market.price(price)) % Decimal("0.01") == 0
        if type_ == "LIMIT" and tif == "GTC":  # passive: never crosses the mid
            assert (price < 10_000) if side == "BUY" else (price > 10_000)
            trader.add_open(n)
    assert kinds["cancel"] and kinds["MARKET/IOC"] and kinds["LIMIT/IOC"] and kinds["LIMIT/GTC"]
    assert kinds["LIMIT/GTC"] > kinds["cancel"] > kinds["MARKET/IOC"]


def test_percentiles_and_histogram() -> None:
    values = sorted(i / 1000 for i in range(1, 1001))  # 1 ms .. 1000 ms
    assert percentile(values, 0.5) == 0.5
    assert percentile(values, 0.999) == 0.999
    assert percentile(values, 1.0) == 1.0
    assert sum(c for _, c in histogram(values)) == 1000


@pytest.mark.parametrize("protocol", ["wood", "rest"])
def test_sigint_stops_cleanly_with_a_summary(
    venue: tuple[int, int], tmp_path: Path, protocol: str
) -> None:
    http, private = venue
    out = tmp_path / "load.json"
    proc = Proc(
        "exchange.load",
        ["--protocol", protocol, "--private", f"127.0.0.1:{private}",
         "--url", f"http://127.0.0.1:{http}", "--rate", "500", "--duration", "60",
         "--json", str(out)],
    )  # fmt: skip
    try:
        proc.wait_log(r"starting")
        time.sleep(1.0)
        proc.signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0, proc.stderr()
    finally:
        proc.kill()
    result = json.loads(out.read_text())
    assert result["unacknowledged"] == 0
    assert 100 <= result["acknowledged"] < 60 * 500
    assert len(_state(http)["orders"]) == result["orders_accepted"]
