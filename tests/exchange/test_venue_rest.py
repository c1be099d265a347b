"""The REST API of contract section 6 over a real socket: every endpoint, its errors, exact
numbers, the OpenAPI document and the offline docs pages."""

from __future__ import annotations

import re
from decimal import Decimal

from tests.support.venue import VenueProc, decimals

BTC = "BTC-USDT"


def test_an_order_rests_then_trades_at_the_makers_price_in_exact_decimals(venue: VenueProc) -> None:
    r = venue.post("/api/orders", {"symbol": BTC, "side": "SELL", "price": "100.5",
                                   "quantity": 0.01, "client_order_id": "s-1"})  # fmt: skip
    assert r.status_code == 201, r.text
    assert b'"price":100.5,"quantity":0.01,"remaining":0.01,"status":"NEW"' in r.content
    sell = decimals(r)
    assert sell["id"] == 1 and sell["client_order_id"] == "s-1" and sell["fills"] == []
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", sell["created_at"])
    r = venue.post("/api/orders", {"symbol": BTC, "side": "BUY", "price": 101,
                                   "quantity": "0.0040", "time_in_force": "IOC"})  # fmt: skip
    buy = decimals(r)
    assert r.status_code == 201 and buy["status"] == "FILLED" and buy["remaining"] == 0
    assert buy["fills"] == [{"trade_id": 1, "price": Decimal("100.5"), "quantity": Decimal("0.004"),
                             "liquidity": "TAKER"}]  # fmt: skip
    book = venue.get(f"/api/book/{BTC}")
    assert book.content == b'{"symbol":"BTC-USDT","bids":[],"asks":[[100.5,0.006]]}'
    trades = decimals(venue.get("/api/trades", params={"symbol": BTC}))
    assert [(t["trade_id"], t["maker_order_id"], t["taker_order_id"], t["aggressor_side"],
             t["price"], t["quantity"]) for t in trades] == [
        (1, 1, 2, "BUY", Decimal("100.5"), Decimal("0.004"))]  # fmt: skip
    maker = decimals(venue.get("/api/orders/1"))
    assert maker["status"] == "PARTIALLY_FILLED" and maker["fills"][0]["liquidity"] == "MAKER"


def test_numbers_never_pick_up_float_noise(venue: VenueProc) -> None:
    venue.post("/api/orders", {"symbol": BTC, "side": "BUY", "price": "0.1", "quantity": "0.1"})
    venue.post("/api/orders", {"symbol": BTC, "side": "BUY", "price": "0.1", "quantity": "0.2"})
    book = venue.get(f"/api/book/{BTC}").content
    assert book == b'{"symbol":"BTC-USDT","bids":[[0.1,0.3]],"asks":[]}'
    big = venue.post("/api/orders", {"symbol": BTC, "side": "SELL", "price": "123456789012.34",
                                     "quantity": "12345678.9"})  # fmt: skip
    assert b'"price":123456789012.34,"quantity":12345678.9' in big.content


def test_cancel_get_list_and_the_409_of_an_order_no_longer_open(venue: VenueProc) -> None:
    for price in ("99", "98"):
        venue.post("/api/orders", {"symbol": BTC, "side": "BUY", "price": price, "quantity": 1})
    r = venue.post("/api/orders/1/cancel")
    assert r.status_code == 200 and decimals(r)["status"] == "CANCELED"
    again = venue.post("/api/orders/1/cancel")
    assert again.status_code == 409 and again.json() == {"error": "order 1 is CANCELED"}
    open_ids = [o["id"] for o in venue.get("/api/orders", params={"symbol": BTC}).json()]
    all_ids = [o["id"] for o in venue.get("/api/orders", params={"status": "all"}).json()]
    assert open_ids == [2] and all_ids == [1, 2]
    assert venue.get("/api/orders/2").json()["status"] == "NEW"


def test_errors_are_400_404_409_with_a_reason_and_change_nothing(venue: VenueProc) -> None:
    cases = [
        ("/api/orders", b"{not json", 400, "the body is not JSON"),
        ("/api/orders", b"[1]", 400, "the body must be a JSON object"),
        ("/api/orders", {"symbol": BTC, "side": "BUY", "price": "100.005", "quantity": 1}, 400,
         "price 100.005 is not a multiple of the tick 0.01"),
        ("/api/orders", {"symbol": BTC, "side": "BUY", "price": 100, "quantity": "0.00005"}, 400,
         "quantity 0.00005 is not a multiple of the lot 0.0001"),
        ("/api/orders", {"symbol": BTC, "side": "BUY", "price": 100, "quantity": 0}, 400,
         "quantity must be positive, not 0"),
        ("/api/orders", {"symbol": BTC, "side": "UP", "price": 100, "quantity": 1}, 400,
         "side must be BUY or SELL, not 'UP'"),
        ("/api/orders", {"symbol": BTC, "side": "BUY", "quantity": 1}, 400,
         "a LIMIT order needs a price"),
        ("/api/orders", {"symbol": BTC, "side": "BUY", "price": 1, "quantity": 1, "tif": "X"}, 400,
         "unknown field 'tif'"),
        ("/api/orders", {"symbol": "DOGE", "side": "BUY", "price": 1, "quantity": 1}, 404,
         "unknown symbol 'DOGE'"),
        ("/api/orders", {"symbol": BTC, "side": "BUY", "price": "1e999999999", "quantity": 1}, 400,
         "price 1e999999999 is out of range (at most 24 digits before the point and 30 after)"),
        ("/api/orders/77/cancel", None, 404, "unknown order 77"),
    ]  # fmt: skip
    for path, body, status, reason in cases:
        r = venue.post(path, body)
        assert (r.status_code, r.json()) == (status, {"error": reason}), (body, r.text)
    assert venue.get("/api/orders/77").status_code == 404
    assert venue.get("/api/book/DOGE").status_code == 404
    assert venue.get("/api/orders/abc").status_code == 400
    assert venue.get(f"/api/book/{BTC}", params={"depth": 0}).status_code == 400
    assert venue.get("/api/nothing").json() == {"error": "Not Found"}
    assert venue.state() == {"orders": [], "trades": []}, "no id used by a refusal"
    ok = venue.post("/api/orders", {"symbol": BTC, "side": "BUY", "price": 1, "quantity": 1})
    assert ok.json()["id"] == 1


def test_trades_pages_by_id(venue: VenueProc) -> None:
    venue.post("/api/orders", {"symbol": BTC, "side": "SELL", "price": 10, "quantity": 5})
    for _ in range(5):
        venue.post("/api/orders", {"symbol": BTC, "side": "BUY", "type": "MARKET", "quantity": 1})
    page = venue.get("/api/trades", params={"after": 2, "limit": 2}).json()
    assert [t["trade_id"] for t in page] == [3, 4]
    assert [t["trade_id"] for t in venue.get("/api/trades", params={"after": 4}).json()] == [5]


def test_the_openapi_document_and_the_docs_pages_need_no_network(venue: VenueProc) -> None:
    schema = venue.get("/api/schema").json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/orders", "/api/orders/{order_id}/cancel", "/api/book/{symbol}",
            "/api/trades", "/api/debug/state"} <= set(schema["paths"])  # fmt: skip
    for page in ("/api/docs", "/api/redoc"):
        html = venue.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets and all(a.startswith("/api/") for a in assets), (page, assets)
        assert "cdn" not in html.lower() and "googleapis" not in html
        for asset in assets:
            response = venue.get(asset)
            assert response.status_code == 200 and len(response.content) > 1000, asset
