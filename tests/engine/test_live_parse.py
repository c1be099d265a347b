"""Live JSON frames: parsing, validation and rejection (contract section 1)."""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.historical import TABLE_SCHEMA
from engine.live_parse import parse_frame
from engine.timestamps import parse_timestamp

TS = "2025-10-02 23:59:57.290000"
TS_NS = 1759449597290000000
QUOTE = {
    "timestamp": TS,
    "ticker": "SOL-USDT-SWAP@BINANCE",
    "bid_price": 234.6,
    "ask_price": 234.61,
    "bid_amount": 1356.54,
    "ask_amount": 377.85,
}


def frame(data: Any, **kw: Any) -> tuple[pa.Table | None, list]:
    text = data if isinstance(data, str | bytes) else json.dumps(data)
    return parse_frame(text, source="ws://x", frame_no=7, received_ns=123, **kw)


def one(**changes: Any) -> dict:
    quote = {**QUOTE, **changes}
    return {k: v for k, v in quote.items() if v is not _DROP}


_DROP = object()


def test_single_object() -> None:
    table, rejected = frame(QUOTE)
    assert not rejected and table is not None
    assert table.schema.equals(TABLE_SCHEMA)
    got = table.to_pylist()[0]
    assert math.isnan(got.pop("latency"))
    assert got == {
        "line": 7,
        "ticker": "SOL-USDT-SWAP@BINANCE",
        "timestamp": TS_NS,
        "arrival": 123,
        "bid_price": 234.6,
        "ask_price": 234.61,
        "bid_amount": 1356.54,
        "ask_amount": 377.85,
    }


def test_array_keeps_order_and_bytes_equal_text() -> None:
    quotes = [one(ticker=f"T{i}", bid_price=float(i)) for i in range(5)]
    table, rejected = frame(quotes)
    assert not rejected and table is not None
    assert table.column("ticker").to_pylist() == [f"T{i}" for i in range(5)]
    assert table.column("bid_price").to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    table2, _ = frame(json.dumps(quotes).encode())
    assert table2 is not None
    assert table2.drop_columns("latency").equals(table.drop_columns("latency"))


def test_numbers_as_strings_exponents_and_ints() -> None:
    table, rejected = frame(
        one(bid_price="234.61", ask_price="3.9e-08", bid_amount=5, ask_amount=" 1E3 ")
    )
    assert not rejected and table is not None
    got = table.to_pylist()[0]
    assert (got["bid_price"], got["ask_price"], got["bid_amount"], got["ask_amount"]) == (
        234.61,
        3.9e-08,
        5.0,
        1000.0,
    )


def test_optional_amounts_unknown_keys_and_latency() -> None:
    table, rejected = frame(
        one(bid_amount=_DROP, ask_amount=None, latency="ignored", extra={"x": [1]})
    )
    assert not rejected and table is not None
    got = table.to_pylist()[0]
    assert math.isnan(got["bid_amount"]) and math.isnan(got["ask_amount"])
    assert math.isnan(got["latency"])


def test_values_that_are_data_pass() -> None:
    table, rejected = frame(
        [one(bid_price=0), one(bid_price=-1.5), one(bid_price=300.0), one(ask_price="inf")]
    )
    assert not rejected and table is not None
    assert table.column("bid_price").to_pylist() == [0.0, -1.5, 300.0, 234.6]
    assert table.column("ask_price")[3].as_py() == math.inf


def test_t_separator_and_fraction_digits() -> None:
    assert parse_timestamp("2025-10-02T23:59:57.123456789") == 1759449597123456789
    assert parse_timestamp("2025-10-02 23:59:57") == 1759449597000000000
    assert parse_timestamp("2025-10-02 23:59:57.1") == 1759449597100000000
    assert parse_timestamp("2025-10-02 23:59:57.1234567890") == "does not parse"
    assert parse_timestamp("2025-02-29 00:00:00") == "does not parse"
    assert parse_timestamp("2025-10-02 23:59:57\n") == "does not parse"
    assert parse_timestamp("٢٠٢٥-10-02 23:59:57") == "does not parse"
    assert parse_timestamp("3000-01-01 00:00:00") == "is out of range"


def test_ticker_of_64_bytes_passes_and_65_fails() -> None:
    table, rejected = frame([one(ticker="é" * 32), one(ticker="é" * 32 + "A")])
    assert table is not None and table.column("ticker").to_pylist() == ["é" * 32]
    assert rejected[0].reason.startswith("ticker is longer than 64 bytes (65 bytes")


OBJECT_REJECTS = [
    (one(ticker=_DROP), "missing field 'ticker'"),
    (one(timestamp=_DROP), "missing field 'timestamp'"),
    (one(bid_price=_DROP), "missing field 'bid_price'"),
    (one(ask_price=_DROP), "missing field 'ask_price'"),
    (one(timestamp=5), "timestamp has the wrong type (number)"),
    (one(timestamp="2025-13-01 00:00:00"), "timestamp does not parse ('2025-13-01 00:00:00')"),
    (one(timestamp="0001-01-01 00:00:00"), "timestamp is out of range ('0001-01-01 00:00:00')"),
    (one(ticker=12), "ticker has the wrong type (number)"),
    (one(ticker=""), "ticker is empty"),
    (one(ticker=["a"]), "ticker has the wrong type (array)"),
    (one(bid_price=True), "bid_price is not a number (true)"),
    (one(ask_price=False), "ask_price is not a number (false)"),
    (one(bid_price=None), "bid_price is null"),
    (one(bid_price={"v": 1}), "bid_price has the wrong type (object)"),
    (one(bid_price="abc"), "bid_price is not a number ('abc')"),
    (one(bid_price="NaN"), "bid_price is not a number ('NaN')"),
    (one(bid_amount="x"), "bid_amount is not a number ('x')"),
    (one(ask_amount=[1]), "ask_amount has the wrong type (array)"),
    (5, "item is not a quote object (number)"),
    ("quote", "item is not a quote object (string)"),
    ([QUOTE], "item is not a quote object (array)"),
    (None, "item is not a quote object (null)"),
]


@pytest.mark.parametrize(("obj", "reason"), OBJECT_REJECTS)
def test_object_rejects_name_field_and_position(obj: Any, reason: str) -> None:
    table, rejected = frame([QUOTE, QUOTE, obj, QUOTE])
    assert table is not None and table.num_rows == 3
    assert [(r.source, r.line, r.reason) for r in rejected] == [
        ("ws://x", 7, f"{reason} (object 3 of frame)")
    ]
    assert rejected[0].raw == json.dumps(obj, ensure_ascii=False)


INFINITE_TEXTS = [
    ("inf", math.inf), ("-Infinity", -math.inf), ("+INF", math.inf), (" infinity ", math.inf),
    ("1e400", math.inf), ("-1e400", -math.inf), ("1E999", math.inf), ("9" * 400, math.inf),
]


@pytest.mark.parametrize(("text", "value"), INFINITE_TEXTS)
def test_a_number_text_meaning_infinity_is_infinity(text: str, value: float) -> None:
    """One rule in both sources (README): ``inf``/``infinity`` and a finite-looking text that
    overflows float64 are infinity; a price that is infinite is data (the processor reports an
    invalid quote), an amount is carried as it is."""
    table, rejected = frame(
        [one(bid_price=text), one(ask_price=text), one(bid_amount=text, ask_amount=text)]
    )
    assert not rejected and table is not None
    assert table.column("bid_price").to_pylist() == [value, 234.6, 234.6]
    assert table.column("ask_price").to_pylist() == [234.61, value, 234.61]
    assert table.column("bid_amount").to_pylist()[2] == value
    assert table.column("ask_amount").to_pylist()[2] == value


@pytest.mark.parametrize("literal", ["1e400", "-1e999", "1" + "0" * 400, "-" + "9" * 400])
def test_an_overflowing_json_number_is_infinity_too(literal: str) -> None:
    value = -math.inf if literal.startswith("-") else math.inf
    for field in ("bid_price", "ask_price", "bid_amount", "ask_amount"):
        body = json.dumps(QUOTE)[:-1] + f', "{field}": {literal}}}'  # the last key wins
        table, rejected = frame(body)
        assert not rejected and table is not None, (field, rejected)
        assert table.column(field).to_pylist() == [value], field


@pytest.mark.parametrize("text", ["nan", "NaN", "-nan", "nan(123)"])
def test_not_a_number_text_is_still_rejected(text: str) -> None:
    table, rejected = frame(one(bid_price=text))
    assert table is None
    assert rejected[0].reason == f"bid_price is not a number ({text!r}) (object 1 of frame)"


FRAME_REJECTS = [
    ("not json", "frame is not valid JSON (Expecting value: line 1 column 1 (char 0))"),
    ("", "frame is not valid JSON (Expecting value: line 1 column 1 (char 0))"),
    ('{"bid_price": NaN}', "frame is not valid JSON (NaN is not allowed in JSON)"),
    ('[{"ask_price": -Infinity}]', "frame is not valid JSON (-Infinity is not allowed in JSON)"),
    ("42", "frame is not a quote object or an array of them (number)"),
    ('"text"', "frame is not a quote object or an array of them (string)"),
    ("null", "frame is not a quote object or an array of them (null)"),
    ("[" * 100_000 + "]" * 100_000, "frame is nested too deeply"),
    (b'{"ticker": "\xff"}', "frame is not valid UTF-8 (byte 12)"),
    ("[" + "1" * 5000 + "]", None),  # a huge integer: the decoder refuses it
]


@pytest.mark.parametrize(("data", "reason"), FRAME_REJECTS)
def test_frame_rejects(data: str | bytes, reason: str | None) -> None:
    table, rejected = frame(data)
    assert table is None and len(rejected) == 1
    assert rejected[0].line == 7
    if reason is not None:
        assert rejected[0].reason == reason
    else:
        assert rejected[0].reason.startswith("frame is not valid JSON")
    assert len(rejected[0].raw) <= 4096


def test_oversized_frame() -> None:
    data = json.dumps([QUOTE] * 20)
    table, rejected = frame(data, max_bytes=100)
    assert table is None
    assert rejected[0].reason == f"frame is larger than 100 bytes ({len(data)} bytes)"
    _, rejected = frame(data.encode(), max_bytes=100)
    assert rejected[0].reason == f"frame is larger than 100 bytes ({len(data)} bytes)"


def test_empty_array_is_nothing() -> None:
    assert frame([]) == (None, [])


def test_lone_surrogate_ticker_is_rejected() -> None:
    text = f'[{{"timestamp": "{TS}", "ticker": "\\ud800", "bid_price": 1, "ask_price": 2}}]'
    table, rejected = frame(text)
    assert table is None
    assert rejected[0].reason == "ticker is not valid UTF-8 (object 1 of frame)"


# --- properties --------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
FIELD_VALUES = st.one_of(
    JSON_VALUES,
    st.sampled_from([TS, "2025-10-02T00:00:00.5", "2025-02-30 00:00:00", "1.5", "nan", "x" * 70]),
)
QUOTES = st.dictionaries(
    st.sampled_from(["timestamp", "ticker", "bid_price", "ask_price", "bid_amount", "extra"]),
    FIELD_VALUES,
    max_size=6,
).map(lambda d: {**{k: v for k, v in QUOTE.items() if k not in d}, **d})


def _conserved(items: list[Any], table: pa.Table | None, rejected: list) -> None:
    accepted = 0 if table is None else table.num_rows
    assert accepted + len(rejected) == len(items)
    if table is not None:
        assert table.schema.equals(TABLE_SCHEMA)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(QUOTES, JSON_VALUES), max_size=8))
def test_random_objects_are_each_accepted_or_rejected(items: list[Any]) -> None:
    table, rejected = frame(items)
    _conserved(items, table, rejected)
    assert all("(object " in r.reason for r in rejected)


def _refuse(name: str) -> None:
    raise ValueError(name)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_bytes_never_raise(data: bytes) -> None:
    table, rejected = frame(data)
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_refuse)
    except (ValueError, RecursionError):
        assert table is None and len(rejected) == 1
        return
    items = [doc] if isinstance(doc, dict) else doc if isinstance(doc, list) else None
    if items is None:
        assert table is None and len(rejected) == 1
    else:
        _conserved(items, table, rejected)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_garbage_text_never_raises(text: str) -> None:
    table, rejected = frame(text)
    assert table is None or table.num_rows >= 0
    assert all(r.line == 7 for r in rejected)
