"""``python -m engine --mode live --live-format F`` against a fake venue (``FakeVenue``): the
venue's quotes come out of a processor as the contract's lines, its bad quotes land in
``rejected_rows.csv``, and the options that do not fit together are refused with exit 2."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.engine.test_venues import DROP_AFTER, expected_rows
from tests.support import wait_until
from tests.support.fakevenue import FakeVenue, load_fixture
from tests.support.oracle import mid_ref, plain, stamp
from tests.support.processor import out_args
from tests.support.programs import Proc, cleanup, run_module, stop_live_engine


def contract_lines(rows: list[tuple]) -> tuple[list[str], list[str]]:
    """The extended mid lines and error lines the contract gives these quotes."""
    mids, errors = [], []
    for ticker, ns, bid, ask, *_ in rows:
        if bid > 0 and ask > 0:
            mids.append(f"{stamp(ns)}, {ticker}, {mid_ref(bid, ask)}")
        else:
            errors.append(f"No mid price at {stamp(ns)} as quote is invalid "
                          f"(bid {plain(bid, False)}, ask {plain(ask, False)})")  # fmt: skip
    return mids, errors


@pytest.mark.parametrize("name", ["okx", "bybit", "coinbase"])
def test_a_venues_quotes_go_through_the_engine_to_the_processor(
    tmp_path: Path, ring_name: str, name: str
) -> None:
    fx = load_fixture(name)
    mids, errors = contract_lines(expected_rows(fx, None))
    out, state = tmp_path / "out", tmp_path / "state"
    with FakeVenue(fx, drop_after=DROP_AFTER[name]) as venue:
        processor = Proc("processor", [*out_args(out, ring_name, "p"), "--format", "extended",
                                       "--exit-at-end"])  # fmt: skip
        engine = Proc("engine", ["--mode", "live", "--ring", ring_name, "--state-dir", str(state),
                                 "--live-url", venue.url, "--live-format", fx["format"],
                                 "--live-symbols", ",".join(fx["instruments"]),
                                 "--live-backoff-max", "0.2",
                                 "--wait-for-consumers", "1"])  # fmt: skip
        with cleanup(engine, processor):
            def written() -> bool:
                mid, err = out / "mid.log", out / "err.log"
                return (mid.exists() and len(mid.read_text().splitlines()) == len(mids)
                        and len(err.read_text().splitlines()) == len(errors))  # fmt: skip

            wait_until(written, f"{name}: a line per quote")
            stop_live_engine(engine, processor)
        assert venue.subscriptions == [1, 2]
    assert (out / "mid.log").read_text().splitlines() == mids
    assert (out / "err.log").read_text().splitlines() == errors
    with open(state / "rejected_rows.csv", newline="") as f:
        reasons = [row["reason"] for row in csv.DictReader(f)]
    assert reasons == fx["rejected"]
    log = engine.stderr()
    assert " live subscribed " in log
    assert log.count(' live "venue error" ') == fx["counts"].get("venue_errors", 0)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--live-format", "okx"], "--live-format okx subscribes to instruments"),
        (["--live-symbols", "BTCUSDT"], "--live-symbols is for a venue's format"),
        (["--live-format", "bitmex"], "--live-format: invalid choice"),
        (["--live-format", "okx", "--live-symbols", "A,,B"], "--live-symbols takes distinct"),
        (["--live-format", "okx", "--live-symbols", "A", "--live-heartbeat", "0"],
         "--live-heartbeat takes a number of seconds > 0"),
    ],
)
def test_live_options_that_cannot_work_are_refused_with_exit_2(
    tmp_path: Path, args: list[str], says: str
) -> None:
    done = run_module("engine", "--mode", "live", "--state-dir", str(tmp_path), *args)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
