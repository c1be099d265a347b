"""kill -9 of the venue under load from TCP and REST clients: after a restart every acknowledged
order and trade is there, ids continue, and ``exchange.check`` passes. A clean stop keeps the
state hash."""

from __future__ import annotations

import random
import re
import threading
from pathlib import Path
from typing import Any

import httpx

from exchange import check
from tests.support import WAIT, wait_until
from tests.support.programs import run_module
from tests.support.venue import VenueProc, Wood


class Acks:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wood: set[str] = set()  # client order ids acknowledged (NEW) over TCP
        self.rest: set[int] = set()  # venue ids acknowledged over REST
        self.fills: set[str] = set()  # client ids that got a FILL report

    def count(self) -> int:
        with self.lock:
            return len(self.wood) + len(self.rest)


def wood_trader(port: int, base: int, acks: Acks, stop: threading.Event) -> None:
    rng = random.Random(base)
    try:
        c = Wood(port)
        for i in range(1, 100_000):
            if stop.is_set():
                return
            side = rng.choice(["BUY", "SELL"])
            price = 100 + rng.randrange(-5, 6) * 0.01
            c.send({"message": "createOrder", "orderId": base + i, "side": side,
                    "price": round(price, 2), "quantity": rng.randrange(1, 5)})  # fmt: skip
            while True:
                m = c.recv()
                with acks.lock:
                    if m.get("report") == "NEW":
                        acks.wood.add(str(m["orderId"]))
                    elif m.get("report") == "FILL":
                        acks.fills.add(str(m["orderId"]))
                if m.get("orderId") == base + i and m.get("report") in ("NEW", None):
                    break
    except (OSError, AssertionError, ValueError):
        return  # the venue died under us: that is the test


def rest_trader(url: str, seed: int, acks: Acks, stop: threading.Event) -> None:
    rng = random.Random(seed)
    try:
        with httpx.Client(base_url=url, timeout=WAIT) as client:
            while not stop.is_set():
                price = f"{100 + rng.randrange(-5, 6) / 100:.2f}"
                side = rng.choice(["BUY", "SELL"])
                body = {"symbol": "BTC-USDT", "side": side, "price": price, "quantity": 1}
                r = client.post("/api/orders", json=body)
                if r.status_code == 201:
                    with acks.lock:
                        acks.rest.add(r.json()["id"])
    except (httpx.HTTPError, OSError, ValueError):
        return


def test_kill_9_under_load_keeps_every_acknowledged_order_and_trade(tmp_path: Path) -> None:
    venue = VenueProc(tmp_path / "venue")
    acks, stop = Acks(), threading.Event()
    threads = [threading.Thread(target=wood_trader, args=(venue.private, k * 1_000_000, acks, stop))
               for k in range(1, 4)]  # fmt: skip
    threads += [threading.Thread(target=rest_trader, args=(venue.url, k, acks, stop))
                for k in range(2)]  # fmt: skip
    for t in threads:
        t.start()
    try:
        wait_until(lambda: acks.count() >= random.Random().randrange(300, 900), "acknowledgements")
        venue.kill()
    finally:
        stop.set()
        for t in threads:
            t.join(WAIT)
    with acks.lock:
        wood, rest, fills = set(acks.wood), set(acks.rest), set(acks.fills)
    venue.restart()
    try:
        state = venue.state()
        by_client = {o["client_order_id"]: o for o in state["orders"]}
        ids = {o["id"] for o in state["orders"]}
        assert wood <= set(by_client), f"lost TCP orders: {sorted(wood - set(by_client))[:5]}"
        assert rest <= ids, f"lost REST orders: {sorted(rest - ids)[:5]}"
        for client_id in fills:
            assert by_client[client_id]["fills"], f"order {client_id} lost its fill"
        assert run_module("exchange.check", "--url", venue.url).returncode == 0
        assert check.violations(check.fetch_state(venue.url)) == []
        new = venue.post("/api/orders", {"symbol": "BTC-USDT", "side": "BUY", "price": 1,
                                         "quantity": 1}).json()  # fmt: skip
        assert new["id"] == max(ids) + 1, "ids continue after the last journaled order"
    finally:
        assert venue.stop() == 0


def test_a_clean_stop_snapshots_and_a_restart_has_the_same_state_hash(tmp_path: Path) -> None:
    venue = VenueProc(tmp_path / "venue")
    for i in range(20):
        venue.post("/api/orders", {"symbol": "SOL-USDT", "side": "BUY" if i % 2 else "SELL",
                                   "price": f"{20 + i % 3}.5", "quantity": "0.5"})  # fmt: skip
    assert venue.stop() == 0
    stopped = re.search(r"stopped seq=(\d+) state_hash=(\w+)", venue.proc.stderr())
    assert stopped is not None
    venue.restart()
    try:
        recovered = venue.proc.wait_log(r"recovered seq=")
        assert f"seq={stopped[1]} " in recovered and f"state_hash={stopped[2]}" in recovered
    finally:
        assert venue.stop() == 0


def test_check_lists_each_violation() -> None:
    order: dict[str, Any] = {
        "id": 1, "client_order_id": None, "symbol": "X", "side": "BUY", "type": "LIMIT",
        "time_in_force": "GTC", "price": 10, "quantity": 5, "remaining": 3, "status": "FILLED",
        "created_at": "", "fills": [],
    }  # fmt: skip
    found = check.violations({"orders": [order], "trades": []})
    assert "order 1: quantity 5 != remaining 3 + filled" in found
    assert "order 1: FILLED with remaining 3" in found
    ask = dict(order, id=2, side="SELL", price=9, remaining=5, status="NEW", quantity=5)
    bid = dict(order, remaining=5, status="NEW")
    assert check.violations({"orders": [bid, ask], "trades": []}) == [
        "X: crossed book, bid 10 >= ask 9"
    ]


def test_a_second_venue_on_the_same_folder_or_port_is_refused_with_exit_2(
    venue: VenueProc, tmp_path: Path
) -> None:
    same_folder = run_module("exchange", "--http-port", "0", "--private-port", "0",
                             "--public-port", "0", "--data-dir", str(venue.data_dir))  # fmt: skip
    assert same_folder.returncode == 2
    assert f"--data-dir {venue.data_dir} is in use by another venue (pid {venue.proc.pid})" in (
        same_folder.stderr
    )
    same_port = run_module("exchange", "--http-port", str(venue.http), "--private-port", "0",
                           "--public-port", "0", "--data-dir", str(tmp_path / "other"))  # fmt: skip
    assert same_port.returncode == 2 and f"--http-port {venue.http}" in same_port.stderr


def test_a_damaged_journal_stops_the_start_with_exit_1_naming_file_and_offset(
    tmp_path: Path,
) -> None:
    venue = VenueProc(tmp_path / "v", "--snapshot-every", "1000000")
    for i in range(30):
        venue.post("/api/orders", {"symbol": "BTC-USDT", "side": "BUY", "price": 1 + i,
                                   "quantity": 1})  # fmt: skip
    venue.kill()  # no snapshot: the journal is all there is
    journal = tmp_path / "v" / "journal.bin"
    data = bytearray(journal.read_bytes())
    data[40] ^= 0xFF  # inside the first record
    journal.write_bytes(data)
    res = run_module("exchange", "--http-port", "0", "--private-port", "0", "--public-port", "0",
                     "--data-dir", str(tmp_path / "v"))  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert f"journal {journal} is damaged at offset 8" in res.stderr
