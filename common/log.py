"""Structured log lines on stderr: ``time level component message key=value ...``.

>>> import io
>>> log = get_logger("engine", stream=io.StringIO())
>>> log.info("switched", mode="live", seq=42)
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
_lock = threading.Lock()
_threshold = _LEVELS["INFO"]


def set_level(level: str) -> None:
    """Set the lowest level written, one of DEBUG, INFO, WARNING, ERROR."""
    global _threshold
    _threshold = _LEVELS[level.upper()]


def _value(v: Any) -> str:
    text = f"{v:.6g}" if isinstance(v, float) else str(v)
    if not text or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class Logger:
    """Writes one line a call; safe to use from several threads."""

    def __init__(self, component: str, stream: TextIO | None = None) -> None:
        self.component = component
        self._stream = stream

    def log(self, level: str, message: str, **fields: Any) -> None:
        if _LEVELS[level] < _threshold:
            return
        now = time.time()
        millis = int(now % 1 * 1000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{millis:03d}Z"
        parts = [stamp, level, self.component, _value(message)]
        parts += [f"{k}={_value(v)}" for k, v in fields.items()]
        line = " ".join(parts) + "\n"
        stream = self._stream or sys.stderr
        with _lock:
            stream.write(line)
            stream.flush()

    def debug(self, message: str, **fields: Any) -> None:
        self.log("DEBUG", message, **fields)

    def info(self, message: str, **fields: Any) -> None:
        self.log("INFO", message, **fields)

    def warning(self, message: str, **fields: Any) -> None:
        self.log("WARNING", message, **fields)

    def error(self, message: str, **fields: Any) -> None:
        self.log("ERROR", message, **fields)


def get_logger(component: str, stream: TextIO | None = None) -> Logger:
    """A logger whose lines name ``component``."""
    return Logger(component, stream)
