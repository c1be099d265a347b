"""An independent reading of the contract (sections 1-3) as plain Python: the csv module,
``Decimal`` and ``datetime``, one record at a time. Slow and obvious on purpose: the oracle the
pipeline's vectorised output is compared with, byte for byte. It shares no code with the
project."""

from __future__ import annotations

import csv
import math
import re
from datetime import UTC, datetime
from decimal import Decimal, localcontext

TS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?$")


def parse_ts(text: str) -> int | None:
    """Nanoseconds since the epoch, or None when the timestamp does not parse."""
    m = TS.match(text)
    if not m:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=UTC)
    except ValueError:
        return None
    return int(dt.timestamp()) * 10**9 + int((frac or "").ljust(9, "0"))


def number(text: str) -> float | None:
    """The value, or None when empty, not a number, or NaN."""
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return None if math.isnan(value) else value


def plain(x: float, keep_point: bool) -> str:
    """Shortest round-tripping decimal, never an exponent."""
    if not math.isfinite(x):
        return repr(x)
    text = format(Decimal(repr(x)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if keep_point and "." not in text:
        text += ".0"
    return text


def stamp(ns: int) -> str:
    """``YYYY-MM-DD HH:MM:SS.mmm``, the fraction cut to milliseconds."""
    sec, rem = divmod(ns, 10**9)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%d %H:%M:%S") + f".{rem // 10**6:03d}"


def records(path: str) -> list[tuple[int, int, int, float, float, float]]:
    """Valid rows as (arrival ns, file order, timestamp ns, bid, ask, latency), unsorted."""
    out = []
    with open(path, newline="") as f:
        rows = csv.reader(f)
        header = [h.strip().lower() for h in next(rows)]
        col = {h: i for i, h in reversed(list(enumerate(header)))}
        for order, row in enumerate(rows):
            if len(row) != len(header):
                continue
            ts = parse_ts(row[col["timestamp"]].strip())
            ticker = row[col["ticker"]]
            bid, ask = number(row[col["bid_price"]]), number(row[col["ask_price"]])
            latency = number(row[col["latency"]])
            if ts is None or bid is None or ask is None or latency is None or latency < 0:
                continue
            if not ticker or len(ticker.encode()) > 64:
                continue
            delay = 2**63 if math.isinf(latency) else round(Decimal(repr(latency)) * 10**6)
            out.append((ts + delay, order, ts, bid, ask, latency))
    return out


def expected_logs(path: str, threshold: float, out_mid: str, out_err: str) -> None:
    """Write the logs the contract defines for the historical CSV at ``path``."""
    with open(out_mid, "w") as mids, open(out_err, "w") as errors:
        for _, _, ts, bid, ask, latency in sorted(records(path)):
            at = stamp(ts)
            if latency > threshold:
                errors.write(f"No mid price at {at} as latency {plain(latency, False)}ms "
                             f"is bigger than {plain(threshold, False)}ms\n")  # fmt: skip
            elif not (math.isfinite(bid) and math.isfinite(ask) and bid > 0 and ask > 0):
                errors.write(f"No mid price at {at} as quote is invalid "
                             f"(bid {plain(bid, False)}, ask {plain(ask, False)})\n")  # fmt: skip
            else:
                mid = float((Decimal(repr(bid)) + Decimal(repr(ask))) / 2)
                mids.write(f"{at}, {plain(mid, True)}\n")


def repr_plain(x: float) -> str:
    """Independent reference: repr with its exponent expanded, no trailing ".0"."""
    if math.isnan(x) or math.isinf(x):
        return repr(x)
    text = repr(x)
    sign = "-" if text.startswith("-") else ""
    text = text.lstrip("-")
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0") or "0"
    point = len(whole) + int(exp or 0) - (len(whole + frac) - len((whole + frac).lstrip("0")))
    if digits == "0":
        return sign + "0"
    digits = digits.rstrip("0") if point <= len(digits) else digits
    if point <= 0:
        out = "0." + "0" * -point + digits
    elif point >= len(digits):
        out = digits + "0" * (point - len(digits))
    else:
        out = digits[:point] + "." + digits[point:]
    return sign + out


def mid_ref(bid: float, ask: float) -> str:
    """The definition: nearest float to the exact decimal mean, shortest plain, with ".0"."""
    with localcontext() as ctx:
        ctx.prec = 1000
        mid = float((Decimal(repr(bid)) + Decimal(repr(ask))) / 2)
    text = repr_plain(mid)
    return text if "." in text else text + ".0"
