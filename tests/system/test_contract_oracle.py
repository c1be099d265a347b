"""The whole pipeline (engine and processor as programs) against an independent oracle."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.pipeline import ROOT, replay

from ..support.oracle import expected_logs

EDGE = Path(__file__).parents[1] / "data" / "edge_cases.csv"


@pytest.mark.parametrize(
    ("csv", "threshold"),
    [(EDGE, 20.0), (EDGE, 15.5), (EDGE, 0.0), (ROOT / "data" / "historical_sample.csv", 20.0)],
    ids=["edge-20", "edge-15.5", "edge-0", "sample-20"],
)
def test_logs_equal_the_oracle(tmp_path: Path, csv: Path, threshold: float) -> None:
    mid, err = tmp_path / "expected_mid.log", tmp_path / "expected_err.log"
    expected_logs(str(csv), threshold, str(mid), str(err))
    got = replay(csv, tmp_path / "run", threshold=threshold)
    assert got.mid_log.read_bytes() == mid.read_bytes()
    assert got.error_log.read_bytes() == err.read_bytes()
    assert mid.stat().st_size > 0 and err.stat().st_size > 0


def test_threshold_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(os.environ, "LATENCY_THRESHOLD", "100")
    mid, err = tmp_path / "m.log", tmp_path / "e.log"
    expected_logs(str(EDGE), 100.0, str(mid), str(err))
    got = replay(EDGE, tmp_path / "run")
    assert got.error_log.read_bytes() == err.read_bytes()
    assert b"is bigger than 100ms" in err.read_bytes()
