"""The committed sample logs are exactly what the code writes for the bundled sample."""

from __future__ import annotations

from pathlib import Path

from tools.sample_logs import OUT, generate


def test_sample_logs_match_the_code(tmp_path: Path) -> None:
    mid, err = generate(tmp_path)
    for fresh in (mid, err):
        committed = OUT / fresh.name
        assert fresh.read_bytes() == committed.read_bytes(), (
            f"sample_logs/{fresh.name} is stale: regenerate with `python -m tools.sample_logs`"
        )
