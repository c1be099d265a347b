"""The parse cache in the state directory (issue 11, item 8): private files, and flipped bytes
inside it detected by its checksum."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from engine.cache import cache_path, load_or_parse

from .test_cache import write_csv


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_cache_files_are_0600(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "h.csv", 50)
    load_or_parse(csv, tmp_path / "state")
    files = list(cache_path(tmp_path / "state", csv).parent.iterdir())
    assert files and all(_mode(p) == 0o600 for p in files), [(p, oct(_mode(p))) for p in files]


def test_flipped_bytes_in_the_cache_are_detected_and_reparsed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = write_csv(tmp_path / "h.csv", 2000, bad=False)
    state = tmp_path / "state"
    fresh, _ = load_or_parse(csv, state)
    target = cache_path(state, csv)
    data = bytearray(target.read_bytes())
    # a price in the middle of the file: the Arrow structure stays valid
    at = len(data) // 2
    data[at] ^= 0xFF
    target.write_bytes(bytes(data))
    parsed, cached = load_or_parse(csv, state)
    assert not cached, "a corrupted cache was used"
    assert parsed.table.equals(fresh.table)
    assert str(target) in capsys.readouterr().err
    again, cached = load_or_parse(csv, state)
    assert cached and again.table.equals(fresh.table)
