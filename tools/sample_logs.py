"""Regenerate ``sample_logs/``: what the processor writes for ``data/historical_sample.csv``.

    python -m tools.sample_logs          # or: make samples

Default settings (threshold 20 ms, spec format). ``tests/system/test_sample_logs.py`` regenerates
them and compares bytes, so they cannot drift from the code.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from tools.pipeline import ROOT, count_lines, replay

SAMPLE = ROOT / "data" / "historical_sample.csv"
OUT = ROOT / "sample_logs"


def generate(into: Path) -> tuple[Path, Path]:
    """Write mid_prices.log and errors.log for the bundled sample into ``into``."""
    with tempfile.TemporaryDirectory() as tmp:
        result = replay(SAMPLE, Path(tmp))
        into.mkdir(parents=True, exist_ok=True)
        mid = shutil.copyfile(result.mid_log, into / "mid_prices.log")
        err = shutil.copyfile(result.error_log, into / "errors.log")
    return Path(mid), Path(err)


def main() -> int:
    mid, err = generate(OUT)
    for path in (mid, err):
        print(f"{path.relative_to(ROOT)}: {count_lines(path)} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
