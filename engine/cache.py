"""A cache of parsed historical tables, so a restart skips the CSV parse.

The parsed, sorted table is stored as an uncompressed Arrow IPC file under
``<state_dir>/cache/``, one file per input path, and loaded back memory-mapped (zero-copy). The
file's metadata records the input's identity (resolved path, size, mtime_ns and a hash of its first
and last MiB), the parser version and options, and the rejected-row count. A cache whose identity
does not match, or that does not open and validate, is ignored and replaced.

Beside each cache file, ``<file>.crc32`` holds the CRC-32 and length of its bytes, checked
against the mapped file on load: flipped bytes inside a price column leave a valid Arrow file,
and only a checksum of the bytes sees them. A mismatch is logged (naming the file) and the input
is parsed again. The files are 0600, like the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa

from common.log import get_logger
from common.schema import REQUIRED_COLUMNS, Mode
from engine.historical import TABLE_SCHEMA, Parsed, load_historical
from engine.rejects import Rejected

#: Bump when the parser's output changes meaning, so older caches are not trusted.
CACHE_VERSION = 1
_META_KEY = b"quote-replay.cache"
_EDGE = 1 << 20  # bytes hashed at each end of the input
_log = get_logger("engine")


@dataclass(frozen=True)
class Identity:
    """What makes an input file the same file: path, size, mtime and edge-content hash."""

    path: str
    size: int
    mtime_ns: int
    fingerprint: str


def identity(path: str | os.PathLike[str]) -> Identity:
    """The identity of the file at ``path`` now."""
    resolved = Path(path).resolve()
    with open(resolved, "rb") as f:
        st = os.fstat(f.fileno())
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f.read(_EDGE))
        if st.st_size > _EDGE:
            f.seek(max(_EDGE, st.st_size - _EDGE))
            digest.update(f.read(_EDGE))
    return Identity(str(resolved), st.st_size, st.st_mtime_ns, digest.hexdigest())


def identity_or_none(path: str | os.PathLike[str]) -> Identity | None:
    """The identity of the file at ``path``, None when it cannot be read."""
    try:
        return identity(path)
    except OSError:
        return None


def cache_path(state_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Where the cache of the input at ``path`` lives (one file per resolved input path)."""
    name = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:20]
    return Path(state_dir) / "cache" / f"historical-{name}.arrow"


def _meta(ident: Identity, required: Sequence[str], parsed: Parsed) -> dict:
    first = parsed.first_rejected
    return {
        "version": CACHE_VERSION,
        "identity": asdict(ident),
        "required": list(required),
        "rows": parsed.table.num_rows,
        "rejected_count": parsed.rejected_count,
        "first_rejected": asdict(first) if first is not None else None,
    }


def store(
    path: str | os.PathLike[str],
    state_dir: str | os.PathLike[str],
    parsed: Parsed,
    ident: Identity,
    *,
    required: Sequence[str] = REQUIRED_COLUMNS[Mode.HISTORICAL],
) -> Path:
    """Write ``parsed`` (the parse of the input ``ident`` describes); return the file.

    Written to a temporary file and renamed into place, not fsynced: a cache is disposable,
    and a torn one fails validation on load and is parsed anew.
    """
    target = cache_path(state_dir, path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    meta = json.dumps(_meta(ident, required, parsed)).encode()
    schema = TABLE_SCHEMA.with_metadata({_META_KEY: meta})
    table = parsed.table.replace_schema_metadata(schema.metadata)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    sum_path = _sum_path(target)
    sum_tmp = sum_path.with_name(f".{sum_path.name}.{os.getpid()}.tmp")
    try:
        _create_0600(tmp)
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            writer.write_table(table)
        with pa.memory_map(str(tmp)) as mapped:
            buf = mapped.read_buffer()
            checksum = f"{zlib.crc32(buf)} {buf.size}\n"
            del buf
        _create_0600(sum_tmp)
        sum_tmp.write_text(checksum)
        os.replace(tmp, target)
        os.replace(sum_tmp, sum_path)
    finally:
        tmp.unlink(missing_ok=True)
        sum_tmp.unlink(missing_ok=True)
    return target


def _sum_path(target: Path) -> Path:
    return target.with_name(target.name + ".crc32")


def _create_0600(path: Path) -> None:
    """Create (or empty) ``path`` with mode 0600, not through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    os.close(fd)


def _checked_buffer(target: Path) -> pa.Buffer | None:
    """The bytes of the cache file, mapped, if they match the checksum stored beside it."""
    try:
        want = _sum_path(target).read_text().split()
        crc, size = int(want[0]), int(want[1])
    except (OSError, ValueError, IndexError):
        return None  # no checksum (or an unreadable one): not a cache to trust
    with pa.memory_map(str(target)) as mapped:
        buf = mapped.read_buffer()
    if buf.size != size or zlib.crc32(buf) != crc:
        _log.warning("parse cache is corrupt (checksum mismatch): parsing the input again",
                     file=str(target))  # fmt: skip
        return None
    return buf


def load_cached(
    path: str | os.PathLike[str],
    state_dir: str | os.PathLike[str],
    *,
    required: Sequence[str] = REQUIRED_COLUMNS[Mode.HISTORICAL],
    ident: Identity | None = None,
) -> Parsed | None:
    """The cached parse of ``path`` if there is a valid one for its current identity, else None.

    The table memory-maps the cache file. ``rejected`` is empty; ``rejected_count`` and
    ``first_rejected`` come from the cache.
    """
    target = cache_path(state_dir, path)
    if not target.is_file():
        return None
    ident = ident or identity(path)
    try:
        buf = _checked_buffer(target)
        if buf is None:
            return None
        reader = pa.ipc.open_file(buf)
        meta = json.loads((reader.schema.metadata or {})[_META_KEY])
        if (
            meta["version"] != CACHE_VERSION
            or meta["identity"] != asdict(ident)
            or meta["required"] != list(required)
            or not reader.schema.equals(TABLE_SCHEMA)
        ):
            return None
        table = reader.read_all()
        if table.num_rows != meta["rows"]:
            return None
        table.validate(full=True)
        first = meta["first_rejected"]
        return Parsed(
            table.replace_schema_metadata(None),
            [],
            int(meta["rejected_count"]),
            Rejected(**first) if first is not None else None,
        )
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError):
        return None


def load_or_parse(
    path: str | os.PathLike[str],
    state_dir: str | os.PathLike[str],
    *,
    required: Sequence[str] = REQUIRED_COLUMNS[Mode.HISTORICAL],
    write: bool = True,
) -> tuple[Parsed, bool]:
    """The parse of the CSV at ``path``: from the cache when valid, else parsed and cached.

    Returns ``(parsed, from_cache)``. The cache is written only when the input did not change
    while it was parsed. Raises ``InputError`` like ``load_historical``.
    """
    try:
        ident = identity(path)
    except OSError:
        ident = None  # load_historical raises the proper InputError
    if ident is not None:
        cached = load_cached(path, state_dir, required=required, ident=ident)
        if cached is not None:
            return cached, True
    parsed = load_historical(path, required=required)
    if write and ident is not None and identity(path) == ident:
        store(path, state_dir, parsed, ident, required=required)
    return parsed, False
