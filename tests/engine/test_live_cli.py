"""The live knobs on ``python -m engine``'s command line: ``--live-idle-timeout``,
``--live-backoff-max`` and ``--live-max-frame`` reach the live source (bad values are exit 2,
checked with every program's usage errors in ``tests/system/test_programs.py``)."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection

from engine.cli import build_parser
from engine.wsserver import WsServer

from ..support import wait_until
from ..support.programs import Proc, no_segment


def test_the_live_flags_parse_with_their_defaults() -> None:
    args = build_parser().parse_args(["--mode", "live"])
    assert (args.live_idle_timeout, args.live_backoff_max, args.live_max_frame) == (
        10.0, 5.0, 1 << 20,
    )  # fmt: skip
    args = build_parser().parse_args(
        ["--mode", "live", "--live-idle-timeout", "0", "--live-backoff-max", "0.05",
         "--live-max-frame", "4096"]
    )  # fmt: skip
    assert (args.live_idle_timeout, args.live_backoff_max, args.live_max_frame) == (
        0.0, 0.05, 4096,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--live-idle-timeout", "-1"], "--live-idle-timeout"),
        (["--live-idle-timeout", "nan"], "--live-idle-timeout"),
        (["--live-backoff-max", "0"], "--live-backoff-max"),
        (["--live-backoff-max", "inf"], "--live-backoff-max"),
        (["--live-max-frame", "0"], "--live-max-frame"),
        (["--live-max-frame", "1MiB"], "--live-max-frame"),
    ],
)
def test_bad_live_values_exit_2_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--mode", "live", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and flag in err, err


def test_the_engine_uses_the_live_flags(tmp_path: Path, ring_name: str) -> None:
    """Connection 1 sends a frame over ``--live-max-frame`` (refused, close 1009); the later
    ones stay silent and hit ``--live-idle-timeout``; every retry waits at most
    ``--live-backoff-max``."""
    big = json.dumps({"ticker": "A", "pad": "x" * 300})

    async def handler(ws: ServerConnection, n: int) -> None:
        if n == 1:
            await ws.send(big)
        await ws.wait_closed()

    with WsServer(handler) as server:
        e = Proc("engine", ["--mode", "live", "--live-url", server.url, "--ring", ring_name,
                            "--state-dir", str(tmp_path / "s"), "--live-idle-timeout", "0.3",
                            "--live-backoff-max", "0.2", "--live-max-frame", "200"])  # fmt: skip
        try:
            e.wait_log(r"\"oversized frame\" .*limit=200")
            e.wait_log(r"\"connection idle\" .*idle_timeout=0\.3", count=2)
            wait_until(lambda: server.connections >= 3, "a third connection")
        finally:
            e.signal(signal.SIGTERM)
            code = e.wait()
    assert code == 0, e.stderr()
    delays = [float(d) for d in re.findall(r" retry_in=([0-9.]+)", e.stderr())]
    assert delays and max(delays) <= 0.2, delays
    assert no_segment(ring_name)
