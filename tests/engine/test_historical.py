"""Historical CSV parsing and validation (contract sections 1 and 2), and the reject log."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.historical import (
    INT64_MAX,
    NUMBER_RE,
    InputError,
    MissingColumn,
    arrival_ns,
    load_historical,
    parse_historical,
)
from engine.rejects import REJECT_FILE, Rejected, RejectLog
from engine.timestamps import parse_timestamp, parse_timestamps

HEADER = ",index,timestamp,ticker,ask_amount,ask_price,bid_price,bid_amount,latency"
TS = "2025-10-02 23:59:57.290000"
TS_NS = 1759449597290000000


def row(
    n: int = 0,
    timestamp: str = TS,
    ticker: str = "SOL-USDT-SWAP@BINANCE",
    ask_amount: str = "377.85",
    ask: str = "234.61",
    bid: str = "234.6",
    bid_amount: str = "1356.54",
    latency: str = "24.435913010256233",
) -> str:
    """One data line in the real layout."""
    return f"{n},{n},{timestamp},{ticker},{ask_amount},{ask},{bid},{bid_amount},{latency}"


def csv_bytes(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def parse(*rows: str, header: str = HEADER) -> tuple[pa.Table, list[Rejected]]:
    parsed = parse_historical(csv_bytes(*rows, header=header), "x.csv")
    assert parsed.rejected_count == len(parsed.rejected)
    return parsed.table, parsed.rejected


def lines(table: pa.Table) -> list[int]:
    return table.column("line").to_pylist()


# --- order -------------------------------------------------------------------------------------


def test_arrival_order_follows_timestamp_plus_latency_ms() -> None:
    # Contract section 2's example, with latency in milliseconds as section 1 defines it:
    # arrivals are 00:00:00.120, 00:00:00.201 and 00:00:00.710, so the file order holds.
    # (The contract prints [2, 3, 1] for it, which only holds for latency in seconds.)
    table, rejected = parse(
        row(1, "2025-01-01 00:00:00", latency="120"),
        row(2, "2025-01-01 00:00:00.200", latency="1"),
        row(3, "2025-01-01 00:00:00.700", latency="10"),
    )
    assert not rejected
    assert lines(table) == [2, 3, 4]
    base = 1735689600 * 10**9
    assert table.column("arrival").to_pylist() == [
        base + 120_000_000,
        base + 201_000_000,
        base + 710_000_000,
    ]


def test_late_first_record_publishes_2_3_1() -> None:
    # The example's intent: a record whose latency carries it past later ones goes last.
    table, _ = parse(
        row(1, "2025-01-01 00:00:00", latency="1200"),
        row(2, "2025-01-01 00:00:00.200", latency="1"),
        row(3, "2025-01-01 00:00:00.700", latency="10"),
    )
    assert lines(table) == [3, 4, 2]  # records [2, 3, 1] sit on lines 3, 4, 2


def test_equal_arrivals_keep_file_order() -> None:
    rows = [
        row(1, "2025-01-01 00:00:00.010", latency="5"),
        row(2, "2025-01-01 00:00:00.005", latency="10"),
        row(3, "2025-01-01 00:00:00", latency="15"),
        row(4, "2025-01-01 00:00:00.000", latency="1"),
        row(5, "2025-01-01 00:00:00.015", latency="0"),
    ]
    table, _ = parse(*rows)
    assert lines(table) == [5, 2, 3, 4, 6]


def test_stable_sort_on_many_ties() -> None:
    rng = np.random.default_rng(3)
    stamps = rng.integers(0, 5, 2000)
    rows = [row(i, f"2025-01-01 00:00:0{s}", latency="0") for i, s in enumerate(stamps)]
    table, _ = parse(*rows)
    expected = (np.argsort(stamps, kind="stable") + 2).tolist()
    assert lines(table) == expected


# --- columns -----------------------------------------------------------------------------------


def test_output_schema_and_values() -> None:
    table, _ = parse(row())
    assert table.column_names == [
        "line", "ticker", "timestamp", "arrival", "latency",
        "bid_price", "ask_price", "bid_amount", "ask_amount",
    ]  # fmt: skip
    assert table.schema.field("timestamp").type == pa.int64()
    assert table.to_pylist() == [
        {
            "line": 2,
            "ticker": "SOL-USDT-SWAP@BINANCE",
            "timestamp": TS_NS,
            "arrival": TS_NS + 24_435_913,
            "latency": 24.435913010256233,
            "bid_price": 234.6,
            "ask_price": 234.61,
            "bid_amount": 1356.54,
            "ask_amount": 377.85,
        }
    ]


def test_header_case_and_order_do_not_matter() -> None:
    header = "LATENCY,Ticker,Bid_Price, ask_price ,TimeStamp"
    table, rejected = parse("24.5,BTC,1.5,2.5," + TS, header=header)
    assert not rejected
    got = table.to_pylist()[0]
    assert (got["ticker"], got["bid_price"], got["ask_price"], got["latency"]) == (
        "BTC",
        1.5,
        2.5,
        24.5,
    )
    assert math.isnan(got["bid_amount"]) and math.isnan(got["ask_amount"])


def test_missing_required_column_names_column_and_file() -> None:
    data = csv_bytes("1,BTC,1,2", header="timestamp,ticker,bid_price,ask_price")
    with pytest.raises(MissingColumn) as info:
        parse_historical(data, "some/file.csv")
    assert isinstance(info.value, InputError)
    assert "'latency'" in str(info.value) and "some/file.csv" in str(info.value)
    assert info.value.columns == ("latency",)


def test_empty_file_is_missing_columns_and_header_only_is_empty() -> None:
    with pytest.raises(MissingColumn):
        parse_historical(b"", "empty.csv")
    table, rejected = parse()
    assert table.num_rows == 0 and not rejected
    assert table.schema.names[0] == "line"


def test_latency_optional_when_not_required() -> None:
    header = "timestamp,ticker,bid_price,ask_price"
    data = csv_bytes(",".join([TS, "BTC", "1", "2"]), header=header)
    parsed = parse_historical(data, "live.csv", required=header.split(","))
    got = parsed.table.to_pylist()[0]
    assert got["arrival"] == got["timestamp"] == TS_NS and math.isnan(got["latency"])


# --- timestamps --------------------------------------------------------------------------------


@pytest.mark.parametrize("digits", range(1, 10))
def test_fraction_of_1_to_9_digits_is_exact(digits: int) -> None:
    frac = "123456789"[:digits]
    table, rejected = parse(row(timestamp=f"2025-10-02 23:59:57.{frac}"))
    assert not rejected
    assert table.column("timestamp")[0].as_py() == 1759449597 * 10**9 + int(frac) * 10 ** (
        9 - digits
    )


def test_t_separator_and_no_fraction() -> None:
    table, _ = parse(row(1, "2025-10-02T23:59:57.29"), row(2, "2025-10-02 23:59:57"))
    assert table.column("timestamp").to_pylist() == [1759449597 * 10**9, TS_NS]


def test_vector_and_scalar_timestamp_parsers_agree_on_edges() -> None:
    texts = [
        "1970-01-01 00:00:00", "2024-02-29 12:00:00.5", "2023-02-29 12:00:00",
        "2262-04-11 23:47:16.854775807", "2262-04-11 23:47:16.854775808",
        "1677-09-21 00:12:43.145224192", "1677-09-21 00:12:43.145224191",
        "0000-01-01 00:00:00", "9999-12-31 23:59:59.999999999", "2025-10-02 24:00:00",
    ]  # fmt: skip
    ns, code = parse_timestamps(pa.array(texts))
    for text, n, c in zip(texts, ns.tolist(), code.tolist(), strict=True):
        scalar = parse_timestamp(text)
        assert (
            (c == 0 and scalar == n)
            or (c == 2 and scalar == "does not parse")
            or (c == 3 and scalar == "is out of range")
        ), text


_TS_CHARS = st.sampled_from(list("0123456789-: T.x/"))


_TS_TEXT = st.one_of(
    st.text(_TS_CHARS, max_size=32),
    st.builds(
        "{:04d}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}".format,
        st.integers(1600, 2300), st.integers(0, 13), st.integers(0, 32),
        st.sampled_from([" ", "T", "t", "  "]),
        st.integers(0, 24), st.integers(0, 60), st.integers(0, 60),
        st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,10}", fullmatch=True)),
    ),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_TS_TEXT, min_size=1, max_size=12))
def test_vector_parser_matches_scalar_parser(texts: list[str]) -> None:
    for batch in (texts, [texts[0]] * 3):  # mixed widths, and one width
        ns, code = parse_timestamps(pa.array(batch, pa.string()))
        for text, n, c in zip(batch, ns.tolist(), code.tolist(), strict=True):
            scalar = parse_timestamp(text)
            expected = (
                (0, scalar)
                if isinstance(scalar, int)
                else (2 if scalar == "does not parse" else 3, 0)
            )
            assert (c, n) == expected, text


# --- numbers -----------------------------------------------------------------------------------


def test_exponent_prices_and_values_that_are_data() -> None:
    table, rejected = parse(
        row(1, bid="3.9e-08", ask="4.1E-08"),
        row(2, bid="0", ask="1"),
        row(3, bid="-1", ask="-2"),
        row(4, bid="5", ask="4"),
        row(5, bid="inf", ask="1e400"),
        row(6, bid_amount="", ask_amount=""),
    )
    assert not rejected
    got = {r["line"]: r for r in table.to_pylist()}
    assert (got[2]["bid_price"], got[2]["ask_price"]) == (3.9e-08, 4.1e-08)
    assert got[3]["bid_price"] == 0.0 and got[4]["bid_price"] == -1.0
    assert got[5]["bid_price"] > got[5]["ask_price"]
    assert got[6]["bid_price"] == math.inf and got[6]["ask_price"] == math.inf
    assert math.isnan(got[7]["bid_amount"]) and math.isnan(got[7]["ask_amount"])


def test_arrival_is_integer_exact_and_saturates() -> None:
    ts = np.array([0, 10**18, INT64_MAX - 5, -(10**18)], np.int64)
    lat = np.array([24.435913010256233, math.inf, 1.0, 1e300])
    assert arrival_ns(ts, lat).tolist() == [24_435_913, INT64_MAX, INT64_MAX, INT64_MAX - 10**18]
    assert arrival_ns(np.array([5], np.int64), np.array([120.0])).tolist() == [120_000_005]


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(list("0123456789.+-eEinfatyINFAT() \tx_")), max_size=12))
def test_number_pattern_matches_arrow_parser(text: str) -> None:
    import re

    trimmed = text.strip(" \t")
    try:
        pa.array([trimmed]).cast(pa.float64())
        arrow_ok = trimmed != ""
    except pa.ArrowInvalid:
        arrow_ok = False
    assert bool(re.search(NUMBER_RE, trimmed)) == arrow_ok


def test_amounts_that_are_not_numbers_become_nan() -> None:
    table, rejected = parse(row(1, bid_amount="abc"), row(2))
    assert not rejected
    assert math.isnan(table.column("bid_amount")[0].as_py())


# --- rejects -----------------------------------------------------------------------------------

REJECTS = [
    ({"timestamp": "2025-13-01 00:00:00"}, "timestamp does not parse ('2025-13-01 00:00:00')"),
    ({"timestamp": "2025-02-30 00:00:00"}, "timestamp does not parse ('2025-02-30 00:00:00')"),
    ({"timestamp": "2025-01-01 00:00:00Z"}, "timestamp does not parse ('2025-01-01 00:00:00Z')"),
    ({"timestamp": "2025-01-01"}, "timestamp does not parse ('2025-01-01')"),
    ({"timestamp": "2025-1-01 00:00:00"}, "timestamp does not parse ('2025-1-01 00:00:00')"),
    (
        {"timestamp": "2025-01-01 00:00:00.1234567890"},
        "timestamp does not parse ('2025-01-01 00:00:00.1234567890')",
    ),
    ({"timestamp": "2025-01-01 00:00:00."}, "timestamp does not parse ('2025-01-01 00:00:00.')"),
    ({"timestamp": "3000-01-01 00:00:00"}, "timestamp is out of range ('3000-01-01 00:00:00')"),
    ({"timestamp": ""}, "timestamp is empty"),
    ({"ticker": ""}, "ticker is empty"),
    ({"ticker": "X" * 65}, f"ticker is longer than 64 bytes (65 bytes: '{'X' * 65}')"),
    ({"bid": ""}, "bid_price is empty"),
    ({"bid": "abc"}, "bid_price is not a number ('abc')"),
    ({"bid": "nan"}, "bid_price is not a number ('nan')"),
    ({"ask": ""}, "ask_price is empty"),
    ({"ask": "1,5"}, None),  # an unquoted comma: a field too many
    ({"ask": "NaN"}, "ask_price is not a number ('NaN')"),
    ({"ask": "0x10"}, "ask_price is not a number ('0x10')"),
    ({"latency": ""}, "latency is empty"),
    ({"latency": "fast"}, "latency is not a number ('fast')"),
    ({"latency": "NaN"}, "latency is not a number ('NaN')"),
    ({"latency": "-1.5"}, "latency is negative (-1.5)"),
    ({"latency": "-inf"}, "latency is negative (-inf)"),
]


@pytest.mark.parametrize(("fields", "reason"), REJECTS)
def test_each_rejection_reason(fields: dict[str, str], reason: str | None) -> None:
    bad = row(7, **fields)
    table, rejected = parse(row(1), bad, row(3))
    assert lines(table) == [2, 4]
    assert len(rejected) == 1
    rej = rejected[0]
    assert (rej.source, rej.line, rej.raw) == ("x.csv", 3, bad)
    assert rej.reason == (reason or "wrong number of fields (10, header has 9)")


def test_first_failing_field_is_reported() -> None:
    _, rejected = parse(row(timestamp="bad", ticker="", bid="x", latency="-1"))
    assert rejected[0].reason == "timestamp does not parse ('bad')"
    _, rejected = parse(row(bid="x", latency="-1"))
    assert rejected[0].reason == "bid_price is not a number ('x')"


def test_ticker_of_64_bytes_passes_and_65_fails() -> None:
    ok64 = "é" * 32  # 2 bytes each
    emoji64 = "😀" * 16  # 4 bytes each
    bad65 = "é" * 32 + "A"
    table, rejected = parse(row(1, ticker=ok64), row(2, ticker=emoji64), row(3, ticker=bad65))
    assert table.column("ticker").to_pylist() == [ok64, emoji64]
    assert [r.line for r in rejected] == [4]
    assert rejected[0].reason.startswith("ticker is longer than 64 bytes (65 bytes")


def test_invalid_utf8_ticker_is_rejected() -> None:
    data = csv_bytes(row(1)) + row(2, ticker="AB").encode().replace(b"AB", b"A\xff")
    parsed = parse_historical(data, "x.csv")
    assert lines(parsed.table) == [2]
    assert [(r.line, r.reason) for r in parsed.rejected] == [(3, "ticker is not valid UTF-8")]


def test_ragged_row_with_invalid_utf8_does_not_sink_the_file() -> None:
    data = csv_bytes(row(1), row(3, ticker="AB")) + b"\xe1\xff,1,2\n" + row(5).encode() + b"\n"
    data = data.replace(b"AB", b"A\xff")
    parsed = parse_historical(data, "x.csv")
    assert lines(parsed.table) == [2, 5]
    assert [(r.line, r.reason) for r in parsed.rejected] == [
        (3, "ticker is not valid UTF-8"),
        (4, "wrong number of fields (3, header has 9)"),
    ]
    assert parsed.rejected[1].raw == "\ufffd\ufffd,1,2"


def test_typed_and_text_number_paths_agree() -> None:
    cases = [("1.5", "3"), ("nan", "1"), ("", "2"), (" 7 ", "1"), ("2", "-1"), ("1e-3", " 4")]
    rows = [row(i, bid=b, latency=lat) for i, (b, lat) in enumerate(cases)]
    typed_table, typed_rejects = parse(*rows)
    text_table, text_rejects = parse(*rows, row(99, ask="abc"))  # numbers are read as text
    assert typed_table.equals(text_table)
    assert text_rejects[:-1] == typed_rejects
    assert text_rejects[-1].reason == "ask_price is not a number ('abc')"
    assert [r.reason for r in typed_rejects] == [
        "bid_price is not a number ('nan')",
        "bid_price is empty",
        "latency is negative (-1)",
    ]


def test_blank_lines_ragged_rows_and_crlf_keep_line_numbers() -> None:
    rows = [row(1), "", row(2, ticker=""), "1,2,3", row(4), "", "", row(5, latency="-2"), row(6)]
    text = "\n".join([HEADER, *rows])
    for data in (text.encode(), text.replace("\n", "\r\n").encode()):
        parsed = parse_historical(data, "x.csv")
        assert sorted(lines(parsed.table)) == [2, 6, 10]
        assert [(r.line, r.reason, r.raw) for r in parsed.rejected] == [
            (4, "ticker is empty", row(2, ticker="")),
            (5, "wrong number of fields (3, header has 9)", "1,2,3"),
            (9, "latency is negative (-2)", row(5, latency="-2")),
        ]


def test_quoted_fields() -> None:
    table, rejected = parse(row(1, ticker='"A,B"'), row(2, ticker='"say ""hi"""'))
    assert not rejected
    assert table.column("ticker").to_pylist() == ["A,B", 'say "hi"']


CELLS = st.one_of(
    st.sampled_from(["", "1", "-1", "nan", "inf", "abc", "1e5", TS, "2025-02-30 00:00:00"]),
    st.text(st.characters(blacklist_characters='\n\r"', blacklist_categories=["Cs"]), max_size=8),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(CELLS, min_size=5, max_size=6), max_size=20))
def test_random_rows_are_each_accepted_or_rejected(rows: list[list[str]]) -> None:
    header = "timestamp,ticker,bid_price,ask_price,latency"
    body = [",".join(f'"{c}"' if "," in c else c for c in cells) for cells in rows]
    parsed = parse_historical(("\n".join([header, *body]) + "\n").encode(), "r.csv")
    assert parsed.table.num_rows + len(parsed.rejected) == len(rows)
    got = sorted(lines(parsed.table) + [r.line for r in parsed.rejected])
    assert got == list(range(2, len(rows) + 2))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_after_a_header_never_raises_anything_but_input_error(body: bytes) -> None:
    data = HEADER.encode() + b"\n" + body
    try:
        parsed = parse_historical(data, "g.csv")
    except InputError:
        return
    assert all(r.line >= 2 for r in parsed.rejected)
    assert parsed.table.schema.names[0] == "line"


# --- files -------------------------------------------------------------------------------------


def test_load_from_file_matches_bytes(tmp_path: Path) -> None:
    data = csv_bytes(row(1), row(2, bid="x"), row(3, timestamp="2025-10-02 23:59:57.1"))
    path = tmp_path / "h.csv"
    path.write_bytes(data)
    from_file = load_historical(path)
    from_bytes = parse_historical(data, str(path))
    assert from_file.table.equals(from_bytes.table)
    assert from_file.rejected == from_bytes.rejected


def test_load_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.csv"):
        load_historical(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(MissingColumn):
        load_historical(tmp_path / "empty.csv")


def test_reject_log_appends_with_one_header(tmp_path: Path) -> None:
    rows = [
        Rejected("a.csv", 3, "bid_price is not a number ('x')", '1,2,"q,x",\u00e9'),
        Rejected("ws://h:1", 7, "frame is not valid JSON", 'line1\nline2 "quoted"'),
    ]
    with RejectLog(tmp_path / "state") as log:
        assert log.append(rows[:1]) == 1
        assert log.append([]) == 0
        assert log.append(rows[1:]) == 1
        assert log.count == 2
    with RejectLog(tmp_path / "state") as log:
        log.append(rows[:1])
        assert log.count == 1
    text = (tmp_path / "state" / REJECT_FILE).read_text(encoding="utf-8")
    assert text.startswith("source,line,reason,raw\n") and text.count("source,line") == 1
    with open(tmp_path / "state" / REJECT_FILE, newline="", encoding="utf-8") as f:
        back = list(csv.reader(f))
    assert back[1:] == [[r.source, str(r.line), r.reason, r.raw] for r in [*rows, rows[0]]]
