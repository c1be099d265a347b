"""The venue's order-book page (``GET /``) in a real browser: headless Chromium from the system's
package manager, driven by Playwright for Python with the browser's path given at launch
(Playwright's own browser download is never used).

One venue on a fixed free HTTP port (a restart comes back on it, so the page can reconnect):
orders placed through REST show up in the page's book and trades, an order placed and cancelled
with the page's form shows the venue's replies, a refused one its error, and after a restart the
page says it is away, then comes back with the recovered book and follows new trades.

Screenshots are saved under ``$TEST_ARTEFACTS/page`` when that variable is set, else under the
test's ``tmp_path``; the paths are printed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import WAIT
from tests.support.venue import VenueProc, free_port

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
MS = int(WAIT * 1000)

if importlib.util.find_spec("playwright") is None:
    pytest.skip(
        "needs Playwright for Python: .venv/bin/pip install -r requirements-dev.txt "
        "(not 'playwright install': the test uses the system's Chromium)",
        allow_module_level=True,
    )
if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
    pytest.skip(
        f"needs Chromium at {CHROMIUM}: apt-get install chromium (or set CHROMIUM=/path)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture
def artefacts(tmp_path: Path) -> Path:
    root = os.environ.get("TEST_ARTEFACTS")
    out = Path(root) / "page" if root else tmp_path / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def browser() -> Iterator[Browser]:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def fixed_venue(tmp_path: Path) -> Iterator[VenueProc]:
    v = VenueProc(tmp_path / "venue", http_port=free_port())
    yield v
    if v.proc.p.poll() is None:
        assert v.stop() == 0, v.proc.stderr()


def order(v: VenueProc, **body: Any) -> dict[str, Any]:
    r = v.post("/api/orders", body)
    assert r.status_code == 201, r.text
    answer: dict[str, Any] = r.json()
    return answer


def cells(page: Page, selector: str) -> list[list[str]]:
    rows: list[list[str]] = page.eval_on_selector_all(
        selector, "rows => rows.map(r => [...r.children].map(c => c.textContent))"
    )
    return rows


def test_the_page_follows_the_venue_places_and_cancels_orders_and_survives_a_restart(
    fixed_venue: VenueProc, browser: Browser, artefacts: Path
) -> None:
    v = fixed_venue
    page = browser.new_page(viewport={"width": 1500, "height": 1250})
    errors: list[str] = []  # the page's own: uncaught exceptions, missing files
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status == 404 else None)
    page.goto(v.url + "/")
    status = page.locator("#status")
    expect(status).to_have_text("live", timeout=MS)
    assert page.locator("section.symbol").evaluate_all("s => s.map(x => x.dataset.symbol)") == [
        "BTC-USDT", "ETH-USDT", "SOL-USDT"
    ]  # fmt: skip
    btc = page.locator('section[data-symbol="BTC-USDT"]')
    expect(btc.locator(".spread-cell")).to_have_text("empty book")

    # Orders through REST: the book, the spread, the mid, with the symbol's decimals.
    order(v, symbol="BTC-USDT", side="SELL", price="100.5", quantity="0.25")
    order(v, symbol="BTC-USDT", side="SELL", price="101", quantity="2")
    order(v, symbol="BTC-USDT", side="BUY", price="99.75", quantity="1.5")
    expect(btc.locator("tbody.bids tr")).to_have_count(1, timeout=MS)
    expect(btc.locator(".mid")).to_have_text("100.125", timeout=MS)
    assert cells(page, '[data-symbol="BTC-USDT"] tbody.asks tr') == [
        ["101.00", "2.0000", ""], ["100.50", "0.2500", ""]
    ]  # fmt: skip (best ask next to the spread)
    assert cells(page, '[data-symbol="BTC-USDT"] tbody.bids tr') == [["99.75", "1.5000", ""]]
    expect(btc.locator(".spread")).to_have_text("0.75")
    expect(btc.locator(".spread-cell")).to_have_text("spread 0.75")
    # Exact sums: 0.1 + 0.2 at one price is 0.30, not 0.30000000000000004.
    sol = page.locator('section[data-symbol="SOL-USDT"]')
    order(v, symbol="SOL-USDT", side="BUY", price="0.3", quantity="0.1")
    order(v, symbol="SOL-USDT", side="BUY", price="0.3", quantity="0.2")
    expect(sol.locator("tbody.bids tr td.qty")).to_have_text("0.30", timeout=MS)
    expect(sol.locator("tbody.bids tr td.price")).to_have_text("0.300")

    # A trade: the trades table (time, side, price, quantity) and the book's remaining level.
    order(v, symbol="BTC-USDT", side="BUY", type="MARKET", quantity="0.1")
    expect(btc.locator(".trades tbody tr")).to_have_count(1, timeout=MS)
    [[time, side, price, qty]] = cells(page, '[data-symbol="BTC-USDT"] .trades tbody tr')
    assert (side, price, qty) == ("BUY", "100.50", "0.1000")
    assert len(time) == 12 and time[2] == ":" and time[8] == "."  # HH:MM:SS.mmm
    expect(btc.locator(".last")).to_have_text("100.50")
    expect(btc.locator("tbody.asks tr").last.locator("td.qty")).to_have_text("0.1500")
    order(v, symbol="BTC-USDT", side="SELL", price="99.75", quantity="0.5")
    expect(btc.locator(".trades tbody tr")).to_have_count(2, timeout=MS)
    assert cells(page, '[data-symbol="BTC-USDT"] .trades tbody tr')[0][1:] == [
        "SELL", "99.75", "0.5000"
    ]  # fmt: skip (newest first)
    expect(btc.locator("tbody.bids tr td.qty")).to_have_text("1.0000", timeout=MS)
    # The chart: the mid's line (blue) and the trades' dots (green BUY, red SELL) are drawn.
    colours = btc.locator("canvas.chart").evaluate("""c => {
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        const seen = {mid: 0, buy: 0, sell: 0};
        for (let i = 0; i < d.length; i += 4) {
            const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
            if (b > 150 && r < 60) seen.mid++;
            else if (g > 100 && r < 60 && b < 90) seen.buy++;
            else if (r > 170 && g < 80 && b < 80) seen.sell++;
        }
        return seen;
    }""")
    assert all(n > 5 for n in colours.values()), colours

    # The form: place a resting order, see it in the book, cancel it, see it go.
    eth = page.locator('section[data-symbol="ETH-USDT"]')
    form = eth.locator("form.place")
    form.locator('[name="side"]').select_option("SELL")
    form.locator('[name="type"]').select_option("LIMIT")
    form.locator('[name="price"]').fill("2500.5")
    form.locator('[name="quantity"]').fill("0.3")
    form.locator('[name="time_in_force"]').select_option("GTC")
    form.locator('[name="place"]').click()
    reply = eth.locator(".reply")
    expect(reply).to_contain_text("201: order", timeout=MS)
    expect(reply).to_contain_text("SELL LIMIT GTC 0.300 @ 2500.50: NEW, remaining 0.300")
    placed = v.get("/api/orders?symbol=ETH-USDT&status=open").json()
    assert [(o["price"], o["quantity"]) for o in placed] == [(2500.5, 0.3)]
    order_id = placed[0]["id"]
    expect(eth.locator('form.cancel [name="order"]')).to_have_value(str(order_id))
    expect(eth.locator("tbody.asks tr")).to_have_count(1, timeout=MS)
    assert cells(page, '[data-symbol="ETH-USDT"] tbody.asks tr') == [["2500.50", "0.300", ""]]
    page.screenshot(path=str(artefacts / "1-live.png"), full_page=True)
    eth.locator('form.cancel [name="cancel"]').click()
    expect(reply).to_contain_text(f"200: order {order_id} ", timeout=MS)
    expect(reply).to_contain_text(": CANCELED")
    expect(eth.locator("tbody.asks tr")).to_have_count(0, timeout=MS)
    assert v.get(f"/api/orders/{order_id}").json()["status"] == "CANCELED"
    # The venue's errors, shown as they come: an off-tick price, a cancel of a closed order.
    form.locator('[name="price"]').fill("2500.005")
    form.locator('[name="place"]').click()
    expect(reply).to_contain_text("400 error:", timeout=MS)
    expect(reply).to_have_class("reply error")
    eth.locator('form.cancel [name="order"]').fill(str(order_id))
    eth.locator('form.cancel [name="cancel"]').click()
    expect(reply).to_contain_text("409 error:", timeout=MS)
    page.screenshot(path=str(artefacts / "2-form-error.png"), full_page=True)

    # A restart: the page says it is away, then comes back by itself with the recovered book.
    assert v.stop() == 0, v.proc.stderr()
    expect(status).to_have_text("disconnected, reconnecting…", timeout=MS)
    page.screenshot(path=str(artefacts / "3-disconnected.png"), full_page=True)
    v.restart()
    expect(status).to_have_text("live", timeout=MS)
    assert cells(page, '[data-symbol="BTC-USDT"] tbody.bids tr') == [["99.75", "1.0000", ""]]
    order(v, symbol="BTC-USDT", side="BUY", price="101", quantity="0.15")
    expect(btc.locator(".trades tbody tr")).to_have_count(3, timeout=MS)
    assert cells(page, '[data-symbol="BTC-USDT"] .trades tbody tr')[0][1:] == [
        "BUY", "100.50", "0.1500"
    ]  # fmt: skip
    expect(btc.locator("tbody.asks tr")).to_have_count(1, timeout=MS)
    page.screenshot(path=str(artefacts / "4-reconnected.png"), full_page=True)
    assert not errors, errors
    print(f"screenshots: {artefacts}")
