"""The venue's whole state as canonical bytes, its hash, and the state rebuilt from them.

The canonical form is JSON with sorted keys and no spaces, integers only (ticks, lots,
nanoseconds): every order in id order (fills included), every trade, each book's live orders in
priority order (levels best first, FIFO within a level), the next ids and the sequence of the last
command applied. The same state always gives the same bytes, so ``state_hash`` (SHA-256 of them)
proves that a replay of snapshot + journal reached exactly the state of the live run.

Snapshots are these bytes behind a one-line header (format, seq, length, SHA-256), written
atomically (temporary file, fsync, rename, fsync of the folder) as ``snapshot-<seq>.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from common.fsio import atomic_write
from exchange._book import Matcher
from exchange._model import Fill, Order, Trade

SNAPSHOT_FORMAT = "venue-snapshot-1"
KEEP_SNAPSHOTS = 2
log = logging.getLogger("exchange.state")


def _order_row(o: Order) -> list[Any]:
    fills = [list(f) for f in o.fills] if o.fills else []
    return [
        o.id, o.symbol, o.side, o.type, o.time_in_force, o.price, o.quantity, o.remaining,
        o.status, o.created_at, o.client_order_id, fills,
    ]  # fmt: skip


def to_document(matcher: Matcher, seq: int) -> dict[str, Any]:
    """The state as plain JSON values (see the module's notes for the order of everything)."""
    books = {}
    for name, book in matcher.books.items():
        sides = {}
        for side in (book.bids, book.asks):
            sides[side.name] = [
                [level.price, [o.id for o in level.orders if o.is_open]]
                for level in side.in_order()
            ]
        books[name] = sides
    return {
        "seq": seq,
        "next_order_id": matcher.next_order_id,
        "next_trade_id": matcher.next_trade_id,
        "orders": [_order_row(o) for o in matcher.orders.values()],
        "trades": [list(t) for t in matcher.trades],
        "books": books,
    }


def canonical(matcher: Matcher, seq: int) -> bytes:
    return json.dumps(to_document(matcher, seq), sort_keys=True, separators=(",", ":")).encode()


def state_hash(matcher: Matcher, seq: int) -> str:
    """SHA-256 (hex) of the canonical state."""
    return hashlib.sha256(canonical(matcher, seq)).hexdigest()


def from_document(doc: dict[str, Any], symbols: list[str]) -> Matcher:
    """A matcher holding the state ``doc`` describes (books of ``symbols``)."""
    matcher = Matcher(symbols)
    for row in doc["orders"]:
        (
            oid,
            symbol,
            side,
            type_,
            tif,
            price,
            quantity,
            remaining,
            status,
            created,
            client,
            fills,
        ) = row
        order = Order(oid, symbol, side, type_, tif, price, quantity, client, created)
        order.remaining = remaining
        order.status = status
        order.fills = [Fill(*f) for f in fills] or None
        matcher.orders[oid] = order
    matcher.trades = [Trade(*t) for t in doc["trades"]]
    for name, sides in doc["books"].items():
        if name not in matcher.books:
            raise ValueError(f"the snapshot holds a book of {name}, not among the symbols")
        book = matcher.books[name]
        for side in (book.bids, book.asks):
            for price, ids in sides[side.name]:
                level = side.level_for(price)
                for oid in ids:
                    order = matcher.orders[oid]
                    level.orders.append(order)
                    level.total += order.remaining
                    level.live += 1
    matcher.next_order_id = doc["next_order_id"]
    matcher.next_trade_id = doc["next_trade_id"]
    return matcher


def snapshot_path(folder: Path, seq: int) -> Path:
    return folder / f"snapshot-{seq:020d}.json"


def write_snapshot(folder: Path, matcher: Matcher, seq: int) -> tuple[Path, str]:
    """Write the snapshot of ``seq`` atomically, drop the older ones; its path and state hash."""
    body = canonical(matcher, seq)
    digest = hashlib.sha256(body).hexdigest()
    head = {"format": SNAPSHOT_FORMAT, "seq": seq, "length": len(body), "sha256": digest}
    path = snapshot_path(folder, seq)
    atomic_write(path, json.dumps(head, sort_keys=True).encode() + b"\n" + body)
    for old in sorted(folder.glob("snapshot-*.json"))[:-KEEP_SNAPSHOTS]:
        old.unlink(missing_ok=True)
    return path, digest


def read_snapshot(path: Path) -> dict[str, Any]:
    """The state document of one snapshot file; ValueError saying why it is not valid."""
    data = path.read_bytes()
    head_line, sep, body = data.partition(b"\n")
    try:
        head = json.loads(head_line)
    except ValueError:
        raise ValueError("its header is not JSON") from None
    if not sep or not isinstance(head, dict) or head.get("format") != SNAPSHOT_FORMAT:
        raise ValueError("not a venue snapshot")
    if len(body) != head.get("length") or hashlib.sha256(body).hexdigest() != head.get("sha256"):
        raise ValueError("its length or SHA-256 does not match its header")
    doc: dict[str, Any] = json.loads(body)
    if doc.get("seq") != head.get("seq"):
        raise ValueError("its sequence does not match its header")
    return doc


def newest_snapshot(folder: Path) -> dict[str, Any] | None:
    """The newest valid snapshot's document; invalid ones are skipped with a warning."""
    for path in sorted(folder.glob("snapshot-*.json"), reverse=True):
        try:
            return read_snapshot(path)
        except (OSError, ValueError) as e:
            log.warning("snapshot skipped", extra={"fields": {"file": str(path), "why": str(e)}})
    return None
