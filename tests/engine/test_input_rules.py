"""Input rules decided in issue 11 (items 6 and 8): duplicate columns, compressed files, a header
alone, infinite latencies, control characters in tickers."""

from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import pytest

from engine.historical import InputError, load_historical, parse_historical
from engine.live_parse import parse_frame

HEADER = b"timestamp,ticker,bid_price,ask_price,latency"


def row(ticker: str, bid: str = "1", ask: str = "2", latency: str = "3") -> bytes:
    return f"2025-01-01 00:00:00,{ticker},{bid},{ask},{latency}".encode()


def parse(*rows: bytes) -> tuple[list[str], list[tuple[int, str]]]:
    parsed = parse_historical(b"\n".join([HEADER, *rows]) + b"\n", "in.csv")
    kept = [str(t) for t in parsed.table.column("ticker").to_pylist()]
    return kept, [(r.line, r.reason) for r in parsed.rejected]


def test_a_duplicate_column_is_an_error_naming_it() -> None:
    with pytest.raises(InputError, match=r"in.csv: column 'bid_price' appears twice"):
        parse_historical(HEADER + b",BID_PRICE\n" + row("A") + b",4\n", "in.csv")


@pytest.mark.parametrize(("kind", "pack"), [("gzip", gzip.compress), ("bzip2", bz2.compress)])
def test_a_compressed_file_says_so(tmp_path: Path, kind: str, pack: object) -> None:
    path = tmp_path / "quotes.csv.z"
    path.write_bytes(pack(HEADER + b"\n" + row("A") + b"\n"))  # type: ignore[operator]
    with pytest.raises(InputError, match=f"is {kind}-compressed: decompress it first"):
        load_historical(path)


@pytest.mark.parametrize("end", [b"", b"\n", b"\r\n"])
def test_a_header_alone_is_zero_records(tmp_path: Path, end: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(HEADER + end)
    parsed = load_historical(path)
    assert (parsed.table.num_rows, parsed.rejected_count) == (0, 0)


def test_an_infinite_latency_is_rejected_and_infinite_prices_are_data() -> None:
    kept, rejected = parse(
        row("A", latency="inf"), row("B", latency="1e400"), row("C", latency="-Infinity"),
        row("D", bid="inf", ask="-1e400"), row("E", latency="nan"),
    )  # fmt: skip
    assert kept == ["D"]
    assert rejected == [
        (2, "latency is not finite ('inf')"),
        (3, "latency is not finite ('1e400')"),
        (4, "latency is negative (-Infinity)"),
        (6, "latency is not a number ('nan')"),
    ]


def test_a_ticker_with_a_control_character_is_rejected_a_comma_is_not() -> None:
    kept, rejected = parse(row("A\tB"), row('"C, D"'), row("E\x7f"), row("F"))
    assert kept == ["C, D", "F"]
    assert rejected == [
        (2, "ticker holds a control character ('A\\tB')"),
        (4, "ticker holds a control character ('E\\x7f')"),
    ]


@pytest.mark.parametrize("ticker", ["A\nB", "A\rB", "A\x00B", "A\x1bB"])
def test_a_live_ticker_with_a_control_character_is_rejected(ticker: str) -> None:
    good = {"timestamp": "2025-01-01 00:00:00", "bid_price": 1, "ask_price": 2}
    frame = json.dumps([dict(good, ticker=ticker), dict(good, ticker="X, Y")])
    table, rejected = parse_frame(frame, source="ws://x", frame_no=1, received_ns=0)
    assert table is not None and table.column("ticker").to_pylist() == ["X, Y"]
    assert [r.reason for r in rejected] == [
        f"ticker holds a control character ({ticker!r}) (object 1 of frame)"
    ]


def test_rejects_after_a_quoted_newline_keep_their_own_lines_and_text() -> None:
    """A quoted field may hold a newline (an ignored column here: the row is data); every row
    left out after it is reported once, on the line where it starts, with its own text."""
    header = b"timestamp,ticker,bid_price,ask_price,latency,note"
    rows = [
        b'2025-01-01 00:00:00,A,1,2,3,"two\nlines"',  # lines 2-3: valid
        b"2025-01-01 00:00:01,B,x,2,3,",  # line 4
        b"2025-01-01 00:00:02,C,1,2,3,",  # line 5: valid
        b"bad,D,1,2,3,",  # line 6
        b"2025-01-01 00:00:03,E,1,2,-1,",  # line 7
        b"2025-01-01 00:00:04,F,1,2,3",  # line 8: ragged
        b'2025-01-01 00:00:05,G,1,2,3,"x"',  # line 9: valid
    ]
    parsed = parse_historical(b"\n".join([header, *rows]) + b"\n", "in.csv")
    assert [str(t) for t in parsed.table.column("ticker").to_pylist()] == ["A", "C", "G"]
    assert sorted(parsed.table.column("line").to_pylist()) == [2, 5, 9]
    assert [(r.line, r.raw) for r in parsed.rejected] == [
        (4, rows[1].decode()), (6, rows[3].decode()), (7, rows[4].decode()),
        (8, rows[5].decode()),
    ]  # fmt: skip
    assert parsed.rejected_count == 4


def test_a_stray_quote_costs_its_own_row_even_when_a_later_quote_pairs_with_it() -> None:
    rows = [
        b"2025-01-01 00:00:00,A,1,2,3",
        b'2025-01-01 00:00:01,"B,1,2,3',  # line 3: the quote is never closed
        b"2025-01-01 00:00:02,C,1,2,3",
        b'2025-01-01 00:00:03,"D",1,2,3',  # line 5: a quoted ticker, valid
        b"2025-01-01 00:00:04,E,1,2,3",
    ]
    parsed = parse_historical(b"\n".join([HEADER, *rows]) + b"\n", "in.csv")
    assert sorted(str(t) for t in parsed.table.column("ticker").to_pylist()) == [
        "A", "C", "D", "E",
    ]  # fmt: skip
    assert [(r.line, r.reason, r.raw) for r in parsed.rejected] == [
        (3, "a quote is never closed", rows[1].decode())
    ]
