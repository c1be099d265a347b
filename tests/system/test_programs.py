"""Every program fails the same way (contract section 4, ``common.cli``): ``--help`` exits 0; a
bad command line or configuration is exit 2 with one structured error line saying what to fix."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: ``time level component message key=value ...`` (common.log).
LINE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) \S+ ')

PROGRAMS = {  # module -> the component its log lines name
    "engine": "engine",
    "processor": "processor",
    "relay": "relay",
    "engine.feed": "feed",
    "engine.record": "record",
    "data.generate": "generate",
    "exchange": "exchange",
    "exchange.check": "check",
    "processor.plot": "plot",
}

USAGE_ERRORS = [  # (module, arguments, what the error line must name)
    ("engine", ["--bogus"], "--mode"),
    ("engine", ["--mode", "sideways"], "--mode"),
    ("engine", ["--mode", "live", "--live-url", "http://x"], "--live-url"),
    ("engine", ["--mode", "historical", "--capacity", "1000"], "power of two"),
    ("engine", ["--mode", "historical", "--ring", "bad name"], "--ring"),
    ("engine", ["--mode", "historical", "--evict-after", "-1"], "--evict-after"),
    ("engine", ["--mode", "historical", "--consumer-grace", "nan"], "--consumer-grace"),
    ("engine", ["--mode", "historical", "--consumer-grace", "-5"], "--consumer-grace"),
    ("engine", ["--mode", "historical", "--wait-for-consumers", "65"], "--wait-for-consumers"),
    ("engine", ["--mode", "live", "--live-url", "ws://[::1"], "--live-url"),
    ("engine", ["--mode", "live", "--live-idle-timeout", "-1"], "--live-idle-timeout"),
    ("engine", ["--mode", "live", "--live-backoff-max", "nan"], "--live-backoff-max"),
    ("engine", ["--mode", "live", "--live-max-frame", "0"], "--live-max-frame"),
    ("engine", ["--mode", "historical", "--historical", "{tmp}/none.csv"], "none.csv"),
    ("processor", ["--bogus"], "--bogus"),
    ("processor", ["--latency-threshold", "-1"], "--latency-threshold"),
    ("processor", ["--name", "bad name"], "--name"),
    ("processor", ["--ring", "bad name"], "--ring"),
    ("processor", ["--redis", "http://x"], "--redis"),
    ("relay", ["--bogus"], "--bogus"),
    ("relay", ["--max-lag", "0"], "--max-lag"),
    ("relay", ["--stream", "a b"], "--stream"),
    ("relay", ["--ring", "bad name"], "--ring"),
    ("relay", ["--redis", "http://x"], "--redis"),
    ("processor.plot", ["--bogus"], "--bogus"),
    ("processor.plot", ["--mid-log", "{tmp}/none.log"], "none.log"),
    ("processor.plot", [], "nothing to plot"),
    ("engine.record", ["--bogus"], "--out"),
    ("engine.record", ["--out", "{tmp}/o", "--rotate-rows", "0"], "--rotate-rows"),
    ("engine.record", ["--out", "{tmp}/o", "--live-format", "okx"], "--live-symbols"),
    ("engine.record", ["--out", "{tmp}/o", "--ring", "bad name"], "--ring"),
    ("engine.record", ["--out", "{tmp}/o", "--ring", "q", "--name", "a b"], "--name"),
    ("engine", ["--mode", "live", "--live-format", "kraken"], "--live-symbols"),
    ("engine.feed", ["--bogus"], "--bogus"),
    ("engine.feed", ["--csv", "{tmp}/none.csv"], "--csv"),
    ("data.generate", ["--rows", "-1"], "--rows"),
    ("exchange", ["--symbols", "BTC-USDT:0.01"], "--symbols"),
    ("exchange", ["--symbols", "X:0:1"], "--symbols"),
    ("exchange", ["--http-port", "70000"], "--http-port"),
    ("exchange", ["--venue", "a b"], "--venue"),
    ("exchange", ["--snapshot-every", "0"], "--snapshot-every"),
    ("exchange.check", ["--url", "http://127.0.0.1:9"], "--url"),
]


def run(module: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
        timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


@pytest.mark.parametrize("module", PROGRAMS)
def test_help_exits_0(module: str, tmp_path: Path) -> None:
    res = run(module, ["--help"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"usage: python -m {module}"), res.stdout[:200]


@pytest.mark.parametrize(("module", "args", "names"), USAGE_ERRORS)
def test_usage_error_is_one_structured_line_and_exit_2(
    module: str, args: list[str], names: str, tmp_path: Path
) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if module == "engine":  # a ring and state folder of this test's own
        args += ["--state-dir", str(tmp_path / "s")]
        if "--ring" not in args:
            args += ["--ring", f"t-prog-{tmp_path.name}"[:60]]
    res = run(module, args, tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert all(LINE.match(line) for line in lines), f"not all structured:\n{res.stderr}"
    errors = [line for line in lines if " ERROR " in line]
    assert len(errors) == 1, res.stderr
    assert errors[0] == lines[-1], "the error is the last word"
    assert f" ERROR {PROGRAMS[module]} " in errors[0]
    assert names in errors[0], errors[0]
    assert "Traceback" not in res.stderr
