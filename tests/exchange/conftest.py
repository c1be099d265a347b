"""A venue per test, on free ports, stopped (exit 0) at the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.venue import VenueProc


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[VenueProc]:
    v = VenueProc(tmp_path / "venue")
    yield v
    if v.proc.p.poll() is None:
        assert v.stop() == 0, v.proc.stderr()
