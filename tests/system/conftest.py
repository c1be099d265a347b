"""Fixtures of the whole-system tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..support.programs import run_module


@pytest.fixture(scope="session")
def csv20k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 generated rows (10 rejectable, some late or invalid quotes): ~2 s of arrivals."""
    out = tmp_path_factory.mktemp("gen")
    res = run_module("data.generate", "--rows", "20000", "--out-dir", str(out), "--kind",
                     "historical", "--bad-rows", "10", "--seed", "66")  # fmt: skip
    assert res.returncode == 0, res.stderr
    return out / "historical_sample.csv"
