"""``python -m exchange.load``: simulated traders against a running venue (contract section 6).

Each connection is one trader on one symbol with its own seeded random stream. Its mix is
realistic for a busy book: mostly passive limit orders a few ticks from a reference mid (they
rest), some aggressive orders that cross it (Wood: ``marketOrder`` or a crossing
``createOrder``; REST: ``MARKET`` or a crossing ``IOC`` limit), and cancels of its own open
orders. The reference mid is read from ``GET /api/book/{symbol}`` at start (100.00 when the book
is empty or there is no ``--url``); prices are multiples of the symbol's tick, quantities of its
lot (the venue's default symbols, or ``--tick``/``--lot``).

Protocols:

- ``wood`` (default): one TCP connection per trader to the private port, newline JSON, orders
  pipelined (many in flight). Each connection numbers its own ``orderId`` 1, 2, 3... A new
  order is acknowledged by its ``executionReport`` ``NEW`` (or an ``error`` naming its
  ``orderId``), a cancel by ``CANCELED`` (or an error: the order filled meanwhile).
- ``rest``: one HTTP/1.1 keep-alive connection per trader, one request in flight each:
  ``POST /api/orders`` (201, or a 4xx refusal) and ``POST /api/orders/{id}/cancel``. The client
  is a minimal HTTP/1.1 client on asyncio streams, not httpx: httpx spends a few hundred
  microseconds of Python per request, and on a shared machine that CPU is taken from the venue
  being measured; this one writes a prebuilt request and reads ``Content-Length`` bytes.

Rate control: ``--rate N`` is an open-loop schedule: command ``k`` is due at ``start + k / N``
(on connection ``k % connections``), whatever happened to the ones before, and its latency is
measured from that due time, not from when it was actually written. The schedule is kept to the
event loop's timer resolution (1 ms): a command may leave up to about 1 ms after its due time,
and that lateness is part of its latency (the figures err high, never low). A venue that stalls
therefore shows the stall in every command that queued behind it (no coordinated omission).
``--rate max`` is closed-loop: each connection keeps ``--window`` commands in flight (Wood; REST
keeps one) and latency is measured from the actual write. Over REST each connection has one
request in flight, so a venue slower than the schedule makes it fall behind: the commands due
and never sent by the end are reported as behind schedule.

At the end it prints the acknowledged commands per second (new orders and cancels), a latency
histogram and p50/p90/p99/p99.9/max; ``--json PATH`` writes the same as JSON. SIGINT/SIGTERM stop
the sending; what is in flight is awaited (up to ``--drain`` seconds) and counted. Exit 0, 2 on a
usage error, 1 when the venue cannot be reached, drops a connection or leaves commands
unacknowledged.
"""

from exchange.load._stats import histogram, percentile
from exchange.load._traders import Market, Trader
from exchange.load.cli import main

__all__ = ["Market", "Trader", "histogram", "main", "percentile"]
