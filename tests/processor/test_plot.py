"""``python -m processor.plot`` on small inputs: the files it writes, what it reads from each
input, and its exit codes (0 written, 2 usage)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from processor import plot
from processor.output import PARQUET_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"

MIDS_EXTENDED = """\
2025-10-02 23:59:57.290, AAA-USDT@X, 100.5
2025-10-02 23:59:57.300, BBB-USDT@X, 0.0000000385
2025-10-02 23:59:57.450, AAA-USDT@X, 100.75
2025-10-02 23:59:58.010, AAA-USDT@X, 101.0
2025-10-02 23:59:58.020, ODD, NAME@Y, 7.0
"""
ERRORS = """\
No mid price at 2025-10-02 23:59:57.291 as latency 21.120632267876505ms is bigger than 20ms
No mid price at 2025-10-02 23:59:57.500 as quote is invalid (bid 0, ask 1.5)
No mid price at 2025-10-02 23:59:58.100 as latency 120ms is bigger than 20ms
"""
CSV = """\
,index,timestamp,ticker,ask_amount,ask_price,bid_price,bid_amount,latency
0,0,2025-10-02 23:59:57.290,AAA-USDT@X,1,101,100,1,5
1,1,2025-10-02 23:59:57.291,AAA-USDT@X,1,101,100,1,21.120632267876505
2,2,2025-10-02 23:59:57.300,BBB-USDT@X,1,4e-08,3.7e-08,1,20
3,3,2025-10-02 23:59:57.450,AAA-USDT@X,1,101,100.5,1,1
4,4,2025-10-02 23:59:57.500,BBB-USDT@X,1,1.5,0,1,2
5,5,2025-10-02 23:59:58.010,AAA-USDT@X,1,101.5,100.5,1,3
6,6,2025-10-02 23:59:58.020,"ODD, NAME@Y",1,8,6,1,4
7,7,2025-10-02 23:59:58.100,AAA-USDT@X,1,101.5,100.5,1,120
8,8,2025-10-02 23:59:58.200,AAA-USDT@X,1,101.5,100.5,1,not-a-number
"""


def run(*argv: str) -> int:
    try:
        return plot.main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code or 0)


def written(out: Path) -> str:
    for name in plot.FIGURES:
        assert (out / name).read_bytes().startswith(PNG), name
    page = (out / "plots.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3 and all(base64.b64decode(i).startswith(PNG) for i in images)
    assert not re.search(r"(src|href)=\"(?!data:)", page), "an external asset"
    return page


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    (tmp_path / "mid_prices.log").write_text(MIDS_EXTENDED)
    (tmp_path / "errors.log").write_text(ERRORS)
    (tmp_path / "replay.csv").write_text(CSV)
    return tmp_path


def test_extended_logs_and_the_input_csv_give_three_figures_and_one_page(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = logs / "plots"
    assert run("--mid-log", str(logs / "mid_prices.log"), "--error-log", str(logs / "errors.log"),
               "--input", str(logs / "replay.csv"), "--top", "2", "--out", str(out)) == 0
    page = written(out)
    assert "<td>AAA-USDT@X, BBB-USDT@X</td>" in page  # the busiest two, busiest first
    assert "<td>20 ms (errors.log)</td>" in page
    # the CSV's 8 valid latencies, 2 strictly above 20 (20 itself passes)
    assert "<td>input CSV</td>" in page
    assert "25.0000% (2 of 8)" in page
    assert "errors.log: latency above threshold</th><td>2</td>" in page
    assert "errors.log: invalid quote</th><td>1</td>" in page
    assert "plots written" in capsys.readouterr().err


def test_mid_log_reads_tickers_with_commas_and_exact_mids(logs: Path) -> None:
    frame, extended = plot.read_mid_log(logs / "mid_prices.log")
    assert extended
    assert frame.get_column("ticker").to_list() == [
        "AAA-USDT@X", "BBB-USDT@X", "AAA-USDT@X", "AAA-USDT@X", "ODD, NAME@Y"
    ]  # fmt: skip
    assert frame.get_column("mid").to_list() == [100.5, 3.85e-08, 100.75, 101.0, 7.0]
    assert frame.get_column("time")[0] == datetime(2025, 10, 2, 23, 59, 57, 290000)


def test_error_log_reads_latencies_kinds_and_the_threshold(logs: Path) -> None:
    frame, threshold = plot.read_error_log(logs / "errors.log")
    assert threshold == 20
    assert frame.get_column("latency").to_list() == [21.120632267876505, None, 120.0]


def test_records_per_second_buckets_adapt_to_the_span(logs: Path) -> None:
    data = plot.Data()
    data.mids, _ = plot.read_mid_log(logs / "mid_prices.log")
    data.errors, _ = plot.read_error_log(logs / "errors.log")
    width, starts, per_kind = plot.rates(data)
    assert width == 0.01  # 810 ms: 10 ms buckets
    assert len(starts) == 82
    assert {k: int(v.sum() * width) for k, v in per_kind.items()} == {
        "mid written": 5, "dropped: latency": 2, "invalid quote": 1
    }  # fmt: skip
    assert per_kind["mid written"][0] == 100  # one record in 10 ms


def test_errors_log_alone_gives_the_tail_and_the_share_over_both_logs(logs: Path) -> None:
    out = logs / "plots"
    assert run("--mid-log", str(logs / "mid_prices.log"), "--error-log", str(logs / "errors.log"),
               "--out", str(out)) == 0  # fmt: skip
    page = written(out)
    assert "<td>errors.log (tail only)</td>" in page
    assert "25.0000% (2 of 8)" in page  # 2 latency lines of 5 mids + 3 error lines


def test_defaults_read_the_logs_in_the_current_folder_and_spec_format_has_no_tickers(
    logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = "".join(f"{line[:23]}, {line.rsplit(', ', 1)[1]}\n"
                   for line in MIDS_EXTENDED.splitlines())  # fmt: skip
    (logs / "mid_prices.log").write_text(spec)
    monkeypatch.chdir(logs)
    monkeypatch.setenv("LATENCY_THRESHOLD", "50")  # errors.log names the replay's: it wins
    assert run() == 0
    page = written(logs / "plots")
    assert "spec format (no ticker)" in page
    assert "<td>20 ms (errors.log)</td>" in page
    assert run("--tickers", "AAA-USDT@X") == 2


def test_parquet_output_and_chosen_tickers(tmp_path: Path) -> None:
    times = [datetime(2025, 10, 2, 23, 59, s, tzinfo=UTC) for s in (1, 2, 3, 4)]
    table = pa.Table.from_pydict(
        {"timestamp": times, "ticker": ["A", "B", "A", "C"], "mid": [1.5, 2.0, 1.75, 3.0]},
        schema=PARQUET_SCHEMA,
    )
    pq.write_table(table, tmp_path / "mids.parquet")
    out = tmp_path / "plots"
    assert run("--parquet", str(tmp_path / "mids.parquet"), "--tickers", "C,B",
               "--latency-threshold", "15.5", "--out", str(out)) == 0  # fmt: skip
    page = written(out)
    assert "<td>C, B</td>" in page
    assert "<td>15.5 ms (--latency-threshold)</td>" in page
    data = plot.Data(mids=plot.read_parquet(tmp_path / "mids.parquet"))
    assert plot.rates(data)[0] == 0.01
    assert data.mids is not None
    assert data.mids.get_column("mid").to_list() == [1.5, 2.0, 1.75, 3.0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mid-log", "missing.log"], "--mid-log missing.log: no such file"),
        (["--error-log", "bad.log"], "--error-log bad.log: line 2 is not an errors.log line"),
        (["--mid-log", "bad_mids.log"], "--mid-log bad_mids.log: line 2 is not a mid_prices.log"),
        (["--input", "mid_prices.log"], "no latency column"),
        (["--tickers", "NOPE,AAA-USDT@X"], "--tickers: not in mid_prices.log: NOPE"),
        (["--top", "0"], "--top must be at least 1"),
        (["--latency-threshold", "-1"], "--latency-threshold must be a finite number"),
        (["--format", "x"], "unrecognized arguments"),
    ],
)
def test_usage_errors_exit_2_saying_what_to_fix(
    logs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    argv: list[str], message: str,
) -> None:  # fmt: skip
    (logs / "bad.log").write_text(ERRORS.splitlines()[0] + "\nsomething else\n")
    (logs / "bad_mids.log").write_text(MIDS_EXTENDED.splitlines()[0] + "\n2025-10-02, x, 1\n")
    monkeypatch.chdir(logs)
    assert run(*argv) == 2
    assert message in capsys.readouterr().err
    assert not (logs / "plots" / "plots.html").exists()


def test_nothing_to_plot_is_a_usage_error(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "processor.plot"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60,
                         check=False)  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "nothing to plot" in res.stderr


def test_help_exits_0() -> None:
    res = subprocess.run([sys.executable, "-m", "processor.plot", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert res.returncode == 0
    assert "--latency-threshold" in res.stdout
