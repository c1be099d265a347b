"""The Wood protocol of contract section 6 over real TCP: order entry, execution reports to both
sides, the public market data, and the errors that leave the connection open (or close it)."""

from __future__ import annotations

from decimal import Decimal

from exchange._wood import MAX_LINE
from tests.support.venue import VenueProc, Wood


def report(order_id: int, kind: str, **extra: object) -> dict[str, object]:
    return {"message": "executionReport", "orderId": order_id, "report": kind, **extra}


def test_orders_fills_and_cancels_reach_each_side(venue: VenueProc) -> None:
    maker, taker, market = Wood(venue.private), Wood(venue.private), Wood(venue.public)
    try:
        maker.send({"message": "createOrder", "orderId": 7, "side": "SELL", "price": 100.5,
                    "quantity": 0.003})  # fmt: skip
        assert maker.recv() == report(7, "NEW")
        level = {"type": "orderbook", "symbol": "BTC-USDT", "side": "ask",
                 "price": Decimal("100.5"), "quantity": Decimal("0.003")}  # fmt: skip
        assert market.recv() == level
        taker.send({"message": "marketOrder", "orderId": 7, "side": "BUY", "quantity": 0.005})
        assert taker.recv() == report(7, "NEW")
        fill = report(7, "FILL", price=Decimal("100.5"), quantity=Decimal("0.003"))
        assert taker.recv() == fill
        assert taker.recv() == report(7, "CANCELED"), "the market order's rest expired"
        assert maker.recv() == fill
        trade = market.recv()
        assert {k: trade[k] for k in ("type", "symbol", "price", "quantity")} == {
            "type": "trade", "symbol": "BTC-USDT", "price": Decimal("100.5"),
            "quantity": Decimal("0.003")}  # fmt: skip
        assert isinstance(trade["time"], Decimal) and trade["time"] > 1_700_000_000
        assert market.recv()["quantity"] == 0, "the level is gone"
        maker.send({"message": "createOrder", "orderId": 8, "side": "BUY", "price": "99",
                    "quantity": 1, "symbol": "ETH-USDT"})  # fmt: skip
        assert maker.recv() == report(8, "NEW")
        maker.send({"message": "cancelOrder", "orderId": 8})
        assert maker.recv() == report(8, "CANCELED")
        orders = venue.state()["orders"]
        assert [(o["id"], o["client_order_id"], o["status"]) for o in orders] == [
            (1, "7", "FILLED"), (2, "7", "EXPIRED"), (3, "8", "CANCELED")]  # fmt: skip
    finally:
        for c in (maker, taker, market):
            c.close()


def test_bad_lines_get_an_error_and_the_connection_goes_on(venue: VenueProc) -> None:
    c = Wood(venue.private)
    try:
        cases = [
            (b"this is not json", {"error": "not a JSON object"}),
            (b"[1, 2]", {"error": "not a JSON object"}),
            ({"message": "hello"}, {"error": "unknown message 'hello'"}),
            ({"message": "createOrder", "orderId": "x"}, {"error": "orderId must be an integer"}),
            ({"message": "createOrder", "orderId": 1, "side": "BUY", "price": 100.001,
              "quantity": 1}, {"error": "price 100.001 is not a multiple of the tick 0.01",
                               "orderId": 1}),
            ({"message": "createOrder", "orderId": 2, "side": "BUY", "price": 100,
              "quantity": 1, "symbol": "NOPE"}, {"error": "unknown symbol 'NOPE'", "orderId": 2}),
            ({"message": "cancelOrder", "orderId": 99}, {"error": "order 99 is unknown",
                                                          "orderId": 99}),
        ]  # fmt: skip
        for line, answer in cases:
            c.send(line)
            assert c.recv() == answer, line
        c.send({"message": "createOrder", "orderId": 3, "side": "BUY", "price": 100, "quantity": 1})
        assert c.recv() == report(3, "NEW")
        c.send({"message": "createOrder", "orderId": 3, "side": "BUY", "price": 100, "quantity": 1})
        assert c.recv() == {"error": "orderId 3 is already used", "orderId": 3}
        c.send({"message": "cancelOrder", "orderId": 3})
        assert c.recv() == report(3, "CANCELED")
        c.send({"message": "cancelOrder", "orderId": 3})
        assert c.recv() == {"error": "order 3 is not open", "orderId": 3}
        c.send({"message": "createOrder", "orderId": 3, "side": "BUY", "price": 100, "quantity": 1})
        assert c.recv() == {"error": "orderId 3 is already used", "orderId": 3}, (
            "closed: still used"
        )
        assert venue.state()["orders"][0]["id"] == 1, "refusals used no id"
    finally:
        c.close()


def test_a_line_over_the_limit_is_an_error_and_closes_the_connection(venue: VenueProc) -> None:
    c = Wood(venue.private)
    try:
        c.sock.sendall(b"x" * (MAX_LINE + 10) + b"\n")
        assert c.recv() == {"error": f"line longer than {MAX_LINE} bytes"}
        assert c.recv_raw() == b"", "closed"
    finally:
        c.close()
    venue.proc.wait_log("line too long: disconnected")


def test_orders_of_a_closed_connection_stay_in_the_book(venue: VenueProc) -> None:
    c = Wood(venue.private)
    c.send({"message": "createOrder", "orderId": 1, "side": "SELL", "price": 50, "quantity": 2})
    assert c.recv() == report(1, "NEW")
    c.close()
    book = venue.get("/api/book/BTC-USDT").json()
    assert book["asks"] == [[50, 2]]
    taker = Wood(venue.private)
    taker.send({"message": "marketOrder", "orderId": 1, "side": "BUY", "quantity": 2})
    assert taker.recv() == report(1, "NEW")
    assert taker.recv()["report"] == "FILL"
    taker.close()


def test_a_thousand_idle_connections_cost_little(venue: VenueProc) -> None:
    import os
    import resource
    import socket
    from pathlib import Path

    from tests.support import wait_until

    def rss_kib() -> int:
        status = Path(f"/proc/{venue.proc.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0])

    def open_fds() -> int:
        return len(os.listdir(f"/proc/{venue.proc.pid}/fd"))

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    before = rss_kib()
    socks = []
    try:
        for i in range(1000):
            port = venue.private if i % 2 else venue.public
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        wait_until(lambda: open_fds() >= 1000, "the venue to accept the 1,000 connections")
        c = Wood(venue.private)  # the venue still answers, at once
        c.send({"message": "createOrder", "orderId": 1, "side": "BUY", "price": 1, "quantity": 1})
        assert c.recv() == report(1, "NEW")
        c.close()
        grown = rss_kib() - before
        assert grown < 16 * 1024, f"1,000 idle connections cost {grown} KiB"
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
