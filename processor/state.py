"""The processor's crash-safe state file: how much of each log is durable, and up to which seq.

The file is JSON, replaced atomically (``common.fsio.atomic_write``) only after both logs were
flushed and fsynced up to the lengths it names, so at every moment it describes bytes that are
really on disk. A restart truncates both logs to those lengths and drops every record whose
``seq`` is at or below ``last_seq``; the ring's own commit is made only after the state file, so
it never runs ahead of it. Example::

    {"version": 1, "name": "mid-price", "ring": "quotes", "tag": 7, "last_seq": 41,
     "mid_log": "/data/mid_prices.log", "mid_bytes": 1234,
     "error_log": "/data/errors.log", "error_bytes": 567,
     "format": "spec", "threshold": 20.0}

``tag`` is the ring's tag (the engine's stream id); ``last_seq`` is null before the first record.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from common.cli import UsageError
from common.fsio import atomic_write

VERSION = 1


class StateError(UsageError):
    """The state file cannot be used as it is (unreadable, or it describes other files)."""


@dataclass(frozen=True)
class State:
    """What the logs durably hold."""

    name: str
    ring: str
    tag: int
    last_seq: int | None
    mid_log: str
    mid_bytes: int
    error_log: str
    error_bytes: int
    format: str
    threshold: float

    def to_json(self) -> bytes:
        """The file's bytes (one JSON object and a newline)."""
        return (json.dumps({"version": VERSION, **asdict(self)}) + "\n").encode()

    def advanced(self, **changes: Any) -> State:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)


def default_path(mid_log: str | os.PathLike[str], name: str) -> Path:
    """``<folder of the mid log>/.processor-<name>.state.json``."""
    return Path(mid_log).absolute().parent / f".processor-{name}.state.json"


def _field(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"field {key!r} is {value!r}")
    return value


def load(path: Path) -> State | None:
    """The state in ``path``, or None when there is no such file.

    Raises :class:`StateError` when the file exists but cannot be read as a state.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("version") != VERSION:
            raise ValueError(f"version {data.get('version')!r}, this program writes {VERSION}")
        last_seq = data.get("last_seq")
        if last_seq is not None:
            last_seq = _field(data, "last_seq", int)
        state = State(
            name=_field(data, "name", str),
            ring=_field(data, "ring", str),
            tag=_field(data, "tag", int),
            last_seq=last_seq,
            mid_log=_field(data, "mid_log", str),
            mid_bytes=_field(data, "mid_bytes", int),
            error_log=_field(data, "error_log", str),
            error_bytes=_field(data, "error_bytes", int),
            format=_field(data, "format", str),
            threshold=float(_field(data, "threshold", (int, float))),
        )
        if state.mid_bytes < 0 or state.error_bytes < 0:
            raise ValueError("negative log length")
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise StateError(
            f"state file {path} is not a valid processor state ({exc}): "
            "remove it to start both logs afresh"
        ) from exc
    return state


def save(path: Path, state: State) -> None:
    """Replace ``path`` with ``state`` atomically and durably (raises OSError)."""
    atomic_write(path, state.to_json())
