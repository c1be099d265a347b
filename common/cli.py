"""The command-line layer every program shares: one way to fail, one way to exit.

Contract section 4: every program prints ``--help``, logs structured lines to stderr, exits 0 on
success, 2 on a usage or configuration error with one line saying what to fix, and 1 on a
runtime failure. This module is that rule, written once:

- :class:`UsageError`: raise it (or one of a program's own configuration errors) for exit 2;
- :class:`Parser`: an ``argparse`` parser whose errors are that one structured line, exit 2;
- :func:`run_program`: runs a program's body and maps what escapes it to 0/1/2;
- :class:`StopFlag`: SIGINT/SIGTERM set a flag, nothing else;
- :func:`loop_factory` and :func:`check_ws_url` for the programs that speak websockets.

>>> import io
>>> from common import log
>>> code = run_program("demo", lambda: (_ for _ in ()).throw(UsageError("--x: use 1 to 9")),
...                    stream=io.StringIO())
>>> code
2
"""

from __future__ import annotations

import argparse
import re
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, NoReturn, TextIO
from urllib.parse import urlsplit

from common.log import get_logger

if TYPE_CHECKING:
    import asyncio

#: Exit codes (contract section 4).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A usage or configuration problem the user must fix: exit 2, one line saying what to fix."""


class Parser(argparse.ArgumentParser):
    """An argument parser that reports a bad command line as one structured log line, exit 2.

    ``component`` names the program in the log line (``engine``, ``processor``, ``feed``...).
    """

    def __init__(self, *args: object, component: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.component = component

    def error(self, message: str) -> NoReturn:
        get_logger(self.component).error(f"{message} (see {self.prog} --help)")
        raise SystemExit(EXIT_USAGE)


def run_program(
    component: str,
    body: Callable[[], int],
    usage_errors: tuple[type[BaseException], ...] = (),
    *,
    stream: TextIO | None = None,
) -> int:
    """Run a program's ``body`` and return its exit code.

    :class:`UsageError` and the program's own ``usage_errors`` (configuration it was given that
    cannot work: a missing column, a ring owned by another writer...) log their message as one
    error line and give 2; any other ``Exception`` is a runtime failure: one line naming it, 1.
    """
    log = get_logger(component, stream=stream)
    usage: tuple[type[BaseException], ...] = (UsageError, *usage_errors)
    try:
        return body()
    except usage as exc:
        log.error(str(exc))
        return EXIT_USAGE
    except Exception as exc:
        log.error("failed", error=f"{type(exc).__name__}: {exc}")
        return EXIT_FAILURE


class StopFlag:
    """SIGINT/SIGTERM set a flag; the handler does nothing else (no locks, no logging)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``, less once a stop is requested."""
        deadline = time.monotonic() + seconds
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.02))


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop factory where uvloop is installed, else asyncio's.

    asyncio is imported here, not with this module: every program imports this module first,
    and only those that speak websockets need an event loop (asyncio costs ~20 ms of start-up).
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in requirements (not on Windows)
        import asyncio

        return asyncio.new_event_loop
    return uvloop.new_event_loop


_CONSUMER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


def check_consumer_name(name: str, flag: str = "--name") -> str:
    """A ring consumer's name, safe in file names too; a UsageError saying what to use."""
    if not _CONSUMER_NAME.fullmatch(name):
        raise UsageError(
            f"{flag} {name!r}: use 1-32 letters, digits, '_', '.' or '-', starting with "
            "a letter or digit"
        )
    return name


def check_ws_url(url: str, flag: str) -> str:
    """``url`` if it is a ``ws://`` or ``wss://`` URL with a host, else a :class:`UsageError`
    naming ``flag``.

    >>> check_ws_url("ws://127.0.0.1:8765", "--live-url")
    'ws://127.0.0.1:8765'
    >>> check_ws_url("ws://h:1/#frag", "--live-url")
    Traceback (most recent call last):
    ...
    common.cli.UsageError: --live-url must be ws://host:port[/path] (or wss://), not 'ws://h:1/#frag'
    >>> check_ws_url("http://x", "--live-url")
    Traceback (most recent call last):
    ...
    common.cli.UsageError: --live-url must be ws://host:port[/path] (or wss://), not 'http://x'
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number 0-65535
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("ws", "wss")
        or not parts.hostname
        or parts.fragment  # websockets refuses these two when it connects
        or (parts.username is not None and parts.password is None)
    ):
        raise UsageError(f"{flag} must be ws://host:port[/path] (or wss://), not {url!r}")
    return url
