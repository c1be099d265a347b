"""The processor's writer thread (``processor.output.OutputWriter``): when commit cycles run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from processor.output import Chunk, LogFile, OutputWriter
from processor.state import State

from ..support import wait_until


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[tuple[LogFile, LogFile, Path, State]]:
    mid, err = LogFile(tmp_path / "mid.log", "mid log"), LogFile(tmp_path / "err.log", "error log")
    state = State(name="t", ring="r", tag=1, last_seq=None, mid_log=str(mid.path),
                  mid_bytes=0, error_log=str(err.path), error_bytes=0, format="spec",
                  threshold=20.0)  # fmt: skip
    yield mid, err, tmp_path / "state.json", state
    mid.close()
    err.close()


def _chunk(position: int, records: int) -> Chunk:
    return Chunk((b"m\n" * records,), (), 0, position, 1, position - 1, records=records)


def test_a_cycle_runs_once_enough_records_were_added(
    logs: tuple[LogFile, LogFile, Path, State],
) -> None:
    # The timer alone would wait an hour: the record count starts the cycle.
    writer = OutputWriter(*logs, flush_every=3600.0, cycle_records=100)
    writer.start()
    try:
        writer.put(_chunk(60, 60))
        writer.put(_chunk(120, 60))
        assert wait_until(writer.take_report, "a commit cycle after 120 records") == (0, 120)
        assert (logs[0].path).read_bytes() == b"m\n" * 120  # written and synced before the report
        writer.put(_chunk(150, 30))
    finally:
        assert writer.finish() is None
    assert writer.take_report() == (0, 150)


def test_parts_are_written_in_order_through_short_writes(
    logs: tuple[LogFile, LogFile, Path, State], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.writev
    calls = []

    def short_writev(fd: int, buffers: list[memoryview]) -> int:  # at most 7 bytes a call
        calls.append(len(buffers))
        return real(fd, [b"".join(bytes(b) for b in buffers)[:7]])

    monkeypatch.setattr(os, "writev", short_writev)
    mid = logs[0]
    parts: list[bytes | bytearray | memoryview] = [
        b"first line\n",
        memoryview(b"xsecond\n")[1:],
        b"",
        bytearray(b"third\n"),
    ]
    for part in parts:
        # append takes any buffer (it wraps it in a memoryview), but LogFile.append is annotated
        # bytes | memoryview, which excludes bytearray under mypy's strict bytes
        mid.append(part)  # type: ignore[arg-type]
    mid.sync()
    assert mid.path.read_bytes() == b"first line\nsecond\nthird\n" and mid.length == 24
    assert len(calls) == 4 and calls[0] == 3  # the empty part was never queued
