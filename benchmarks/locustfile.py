"""The venue's traders for those who load-test with locust (https://locust.io).

::

    pip install locust      # not one of this project's requirements (see below)
    python -m exchange --data-dir /tmp/venue &
    locust -f benchmarks/locustfile.py --host http://127.0.0.1:8000 RestTrader
    WOOD_PRIVATE=127.0.0.1:7001 locust -f benchmarks/locustfile.py --host http://127.0.0.1:8000
    # headless: add --headless -u 50 -r 50 -t 30s

The same mix as ``python -m exchange.load`` (passive limits a few ticks from 100.00, crossing
IOC/market orders, cancels of the user's own open orders) on BTC-USDT (tick 0.01, lot 0.0001):

- ``RestTrader`` (locust's ``FastHttpUser``): ``POST /api/orders`` and
  ``POST /api/orders/{id}/cancel``; a 409 on a cancel (the order filled meanwhile) is a success.
- ``WoodTrader``: one TCP connection to the private port named by ``WOOD_PRIVATE`` (HOST:PORT;
  without it this user class is left out), one command in flight; a command's response time is
  until its ``executionReport`` ``NEW``/``CANCELED`` (or its error) arrives.

Each user sends ``LOCUST_RATE`` commands per second (default 10: ``constant_throughput``), so
``-u 100`` offers 1,000 commands/s. locust's own numbers are closed loop per user and its
Python workers are heavier than ``exchange.load``: for the venue's limits use
``python -m benchmarks.bench_venue``.

locust is imported with :func:`importlib.import_module`, and nothing is defined without it: it
is not in the requirements files (the benchmarks run without it), so ``make lint`` and the
requirements check pass on a machine that does not have it.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import socket
import time
from typing import Any

try:
    _locust: Any = importlib.import_module("locust")
    _fasthttp: Any = importlib.import_module("locust.contrib.fasthttp")
except ImportError:  # locust is not installed: nothing to define
    _locust = None

SYMBOL = "BTC-USDT"
MID = 10_000  # ticks of 0.01: 100.00
RATE = float(os.environ.get("LOCUST_RATE", "10"))


def price(ticks: int) -> str:
    """
    >>> price(10001)
    '100.01'
    """
    return f"{ticks // 100}.{ticks % 100:02d}"


def quantity(lots: int) -> str:
    """
    >>> quantity(25)
    '0.0025'
    """
    return f"{lots // 10_000}.{lots % 10_000:04d}"


def order(rng: random.Random, crossing: bool) -> tuple[str, str, str | None, str]:
    """(side, type, price or None, quantity) of a passive or a crossing order."""
    side = rng.choice(("BUY", "SELL"))
    lots = 1 + min(int(rng.expovariate(1 / 10)), 99)
    sign = 1 if side == "BUY" else -1
    if crossing:
        if rng.random() < 0.5:
            return side, "MARKET", None, quantity(lots)
        return side, "LIMIT", price(MID + sign * rng.randint(1, 5)), quantity(lots)
    away = 1 + min(int(rng.expovariate(1 / 3)), 50)
    return side, "LIMIT", price(MID - sign * away), quantity(lots)


if _locust is not None:
    task = _locust.task
    FastHttpUser: Any = _fasthttp.FastHttpUser
    User: Any = _locust.User

    class RestTrader(FastHttpUser):
        wait_time = _locust.constant_throughput(RATE)

        def on_start(self) -> None:
            self.rng = random.Random()
            self.open: list[int] = []

        def _place(self, crossing: bool) -> None:
            side, type_, limit, qty = order(self.rng, crossing)
            body: dict[str, Any] = {"symbol": SYMBOL, "side": side, "type": type_,
                                    "quantity": qty}  # fmt: skip
            if limit is not None:
                body["price"] = limit
                body["time_in_force"] = "IOC" if crossing else "GTC"
            name = "crossing order" if crossing else "passive order"
            with self.client.post("/api/orders", json=body, name=name,
                                  catch_response=True) as response:  # fmt: skip
                if response.status_code != 201:
                    response.failure(f"{response.status_code}: {response.text}")
                    return
                placed = response.json()
                if placed["status"] in ("NEW", "PARTIALLY_FILLED") and not crossing:
                    self.open.append(placed["id"])

        @task(6)
        def passive(self) -> None:
            self._place(False)

        @task(2)
        def crossing(self) -> None:
            self._place(True)

        @task(2)
        def cancel(self) -> None:
            if not self.open:
                return self._place(False)
            order_id = self.open.pop(self.rng.randrange(len(self.open)))
            with self.client.post(f"/api/orders/{order_id}/cancel", name="cancel",
                                  catch_response=True) as response:  # fmt: skip
                if response.status_code in (200, 409):
                    response.success()
                else:
                    response.failure(f"{response.status_code}: {response.text}")
            return None

    class WoodTrader(User):
        abstract = "WOOD_PRIVATE" not in os.environ
        wait_time = _locust.constant_throughput(RATE)

        def on_start(self) -> None:
            host, _, port = os.environ["WOOD_PRIVATE"].rpartition(":")
            self.sock = socket.create_connection((host, int(port)))
            self.lines = self.sock.makefile("rb")
            self.rng = random.Random()
            self.next_id = 1
            self.open: list[int] = []

        def on_stop(self) -> None:
            self.lines.close()
            self.sock.close()

        def _send(self, name: str, message: dict[str, Any], wanted: str) -> dict[str, Any]:
            """Send one command; wait for its ``wanted`` report (or its error); fire the event."""
            line = json.dumps(message).encode() + b"\n"
            start = time.perf_counter()
            self.sock.sendall(line)
            oid = message["orderId"]
            while True:
                raw = self.lines.readline()
                if not raw:
                    raise ConnectionError("the venue closed the connection")
                reply = json.loads(raw)
                if reply.get("orderId") == oid and (
                    reply.get("report") == wanted or "error" in reply
                ):
                    break
            self.environment.events.request.fire(
                request_type="wood", name=name, response_time=1000 * (time.perf_counter() - start),
                response_length=len(raw), context={}, response=reply,
                exception=(
                    None if "error" not in reply or name == "cancel"
                    else RuntimeError(reply["error"])
                ),
            )  # fmt: skip
            return dict(reply)

        def _place(self, crossing: bool) -> None:
            side, type_, limit, qty = order(self.rng, crossing)
            oid, self.next_id = self.next_id, self.next_id + 1
            message: dict[str, Any] = {"orderId": oid, "side": side, "symbol": SYMBOL}
            if type_ == "MARKET":
                message["message"] = "marketOrder"
            else:
                message["message"] = "createOrder"
                message["price"] = limit  # decimal strings: exact
            message["quantity"] = qty
            reply = self._send("crossing order" if crossing else "passive order", message, "NEW")
            if not crossing and "error" not in reply:
                self.open.append(oid)

        @task(6)
        def passive(self) -> None:
            self._place(False)

        @task(2)
        def crossing(self) -> None:
            self._place(True)

        @task(2)
        def cancel(self) -> None:
            if not self.open:
                return self._place(False)
            oid = self.open.pop(self.rng.randrange(len(self.open)))
            self._send("cancel", {"message": "cancelOrder", "orderId": oid}, "CANCELED")
            return None
