"""The summary of a run, as a dict (``--json``) and as text."""

from __future__ import annotations

import math
from typing import Any

from exchange.load._run import Settings
from exchange.load._stats import Stats, histogram, percentile

QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0))


def summary(settings: Settings, stats: Stats) -> dict[str, Any]:
    ordered = sorted(stats.latencies)
    elapsed = (
        (stats.last_ack - stats.first_send)
        if stats.last_ack is not None and stats.first_send is not None
        else 0.0
    )
    rate = lambda count: round(count / elapsed, 1) if elapsed > 0 else 0.0  # noqa: E731
    return {
        "protocol": settings.protocol,
        "connections": settings.connections,
        "rate": "max" if settings.rate is None else settings.rate,
        "window": settings.window if settings.rate is None and settings.protocol == "wood" else 1,
        "symbol": settings.symbol,
        "seconds": round(elapsed, 3),
        "sent": stats.sent,
        "acknowledged": stats.acked,
        "unacknowledged": stats.sent - stats.acked,
        "orders_sent": stats.orders_sent,
        "orders_accepted": stats.orders_acked,
        "orders_rejected": stats.orders_rejected,
        "cancels_sent": stats.cancels_sent,
        "cancels_done": stats.cancels_acked,
        "cancels_refused": stats.cancels_refused,
        "fill_reports": stats.fills,
        "behind_schedule": stats.behind,
        "acknowledged_per_s": rate(stats.acked),
        "orders_per_s": rate(stats.orders_acked + stats.orders_rejected),
        "latency_ms": (
            {name: round(percentile(ordered, q) * 1000, 3) for name, q in QUANTILES}
            if ordered
            else {}
        ),
        "latency_from": "the due time (open loop)" if settings.rate else "the write (closed loop)",
        "histogram_ms": [[b if b != math.inf else "inf", c] for b, c in histogram(ordered)],
        "errors": stats.errors[:20],
    }


def render(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    lines = [
        f"protocol {result['protocol']}, {result['connections']} connections, rate "
        f"{result['rate']}, {result['seconds']} s, symbol {result['symbol']}",
        f"sent {result['sent']} commands ({result['orders_sent']} orders, "
        f"{result['cancels_sent']} cancels); acknowledged {result['acknowledged']} "
        f"(orders accepted {result['orders_accepted']}, rejected {result['orders_rejected']}; "
        f"cancels done {result['cancels_done']}, refused {result['cancels_refused']}); "
        f"unacknowledged {result['unacknowledged']}",
        f"throughput: {result['acknowledged_per_s']:,.0f} acknowledged commands/s "
        f"({result['orders_per_s']:,.0f} new orders/s)",
    ]
    if result["behind_schedule"]:
        lines.append(
            f"behind schedule: {result['behind_schedule']} commands were due and never sent "
            "(every connection had one in flight): the target rate was not reached"
        )
    if lat:
        lines.append(
            f"latency ms (from {result['latency_from']}): "
            + " ".join(f"{k} {v:.3f}" for k, v in lat.items())
        )
        counts = [c for _, c in result["histogram_ms"]]
        top = max(counts) or 1
        total = sum(counts) or 1
        lines.append("histogram:")
        for bound, count in result["histogram_ms"]:
            if count:
                label = f"<= {bound} ms" if bound != "inf" else "> 5000 ms"
                bar = "#" * max(1, round(40 * count / top))
                lines.append(f"  {label:>12} {count:>9} {100 * count / total:6.2f}% {bar}")
    for error in result["errors"]:
        lines.append(f"error: {error}")
    return "\n".join(lines)
