"""Structured log lines on stderr: ``time level component message key=value ...``.

>>> import io
>>> log = get_logger("engine", stream=io.StringIO())
>>> log.info("switched", mode="live", seq=42)

Libraries that log through the standard ``logging`` module (``ringbuffer`` does) reach the same
lines through :func:`bridge_stdlib`, which the programs call at start.
"""

from __future__ import annotations

import logging
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


class StructuredHandler(logging.Handler):
    """Writes standard-library log records as structured lines of ``component``; the record's
    key=value fields come from ``extra={"fields": {...}}``.

    >>> import io
    >>> out = io.StringIO()
    >>> records = logging.getLogger("doctest-bridge")
    >>> records.addHandler(StructuredHandler("demo", out))
    >>> records.warning("slot retired", extra={"fields": {"consumer": "x", "lag": 3}})
    >>> out.getvalue().split(" ", 1)[1]
    'WARNING demo "slot retired" consumer=x lag=3\\n'
    """

    def __init__(self, component: str, stream: TextIO | None = None) -> None:
        super().__init__()
        self._log = Logger(component, stream)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = logging.getLevelName(min(max(record.levelno, 10) // 10 * 10, 40))
            fields = dict(getattr(record, "fields", None) or {})
            if record.exc_info and record.exc_info[1] is not None:
                fields["error"] = repr(record.exc_info[1])
            self._log.log(level, record.getMessage(), **fields)
        except Exception:
            self.handleError(record)


def bridge_stdlib(logger: str = "ringbuffer", component: str = "ring") -> None:
    """Write the records of the standard-library ``logger`` (and its children) as structured
    lines of ``component`` on stderr, at the level :func:`set_level` chose. Idempotent."""
    target = logging.getLogger(logger)
    if not any(isinstance(h, StructuredHandler) for h in target.handlers):
        target.addHandler(StructuredHandler(component))
    target.setLevel(logging.DEBUG)  # let every record reach the handler: _threshold decides
