"""The ring's edge: what it imports, the names it exports, salvage and logging through them."""

from __future__ import annotations

import ast
import inspect
import io
import logging
import os
import pkgutil
import re
import signal
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import ringbuffer
from common.log import StructuredHandler, bridge_stdlib

from ..support.ringprocs import CTX, WAIT, write_and_die

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(ringbuffer.__file__).parent
#: The application around the ring: the library imports none of it.
APPLICATION = ("common", "engine", "processor", "tools", "tests", "benchmarks", "data")

README = ROOT / "README.md"


def documented_names() -> list[str]:
    """The public names the README lists for the ring (between its two markers)."""
    text = README.read_text()
    begin, end = "<!-- ringbuffer public names: begin -->", "<!-- ringbuffer public names: end -->"
    assert begin in text and end in text, f"{README} lost the ring's list of public names"
    return re.findall(r"`([A-Za-z_]+)`", text[text.index(begin) : text.index(end)])


# -- the import boundary -------------------------------------------------------------------


def _imported_modules(path: Path) -> set[str]:
    """Absolute modules a source file imports (relative imports stay inside the package)."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_no_module_of_the_package_imports_the_application() -> None:
    sources = sorted(PACKAGE.glob("*.py"))
    assert len(sources) >= 10
    bad = {
        f"{path.name}: {module}"
        for path in sources
        for module in _imported_modules(path)
        if module.split(".")[0] in APPLICATION
    }
    assert not bad, f"ringbuffer imports the application: {sorted(bad)}"


def test_importing_the_package_loads_nothing_of_the_application() -> None:
    code = (
        "import sys, ringbuffer\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {APPLICATION!r}))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=WAIT
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


# -- the public names (as trio's test_exports) ---------------------------------------------


def test_all_is_what_the_readme_documents_and_every_name_exists() -> None:
    documented = documented_names()
    assert len(documented) == len(set(documented)), "a name is listed twice in the README"
    assert sorted(ringbuffer.__all__) == sorted(documented)
    for name in ringbuffer.__all__:
        assert hasattr(ringbuffer, name), name


def test_every_public_name_is_in_all() -> None:
    public = {
        name
        for name in dir(ringbuffer)
        if not name.startswith("_") and not isinstance(getattr(ringbuffer, name), types.ModuleType)
    }
    assert public == set(ringbuffer.__all__)


def test_every_module_of_the_package_is_private() -> None:
    modules = [m.name for m in pkgutil.iter_modules(ringbuffer.__path__)]
    assert modules, "no modules found"
    assert [m for m in modules if not m.startswith("_")] == []
    for name in dir(ringbuffer):
        if isinstance(getattr(ringbuffer, name), types.ModuleType):
            assert name.startswith("_"), f"ringbuffer.{name} is a public module"


def test_exported_classes_and_functions_say_they_are_ringbuffer_s() -> None:
    for name in ringbuffer.__all__:
        obj = getattr(ringbuffer, name)
        if isinstance(obj, type) or inspect.isfunction(obj):
            assert obj.__module__.startswith("ringbuffer."), (name, obj.__module__)
            assert obj.__doc__, f"ringbuffer.{name} has no docstring"


def _parameters(func: object) -> list[str]:
    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


def test_the_contract_surface_exists() -> None:
    """Contract section 5: create, attach; Writer publish, end, close; Reader read, ended,
    commit, close."""
    assert _parameters(ringbuffer.create)[:3] == ["name", "schema", "capacity"]
    assert _parameters(ringbuffer.attach)[:3] == ["name", "consumer", "timeout"]
    for method in ("publish", "end", "close"):
        assert callable(getattr(ringbuffer.Writer, method)), method
    for method in ("read", "commit", "close"):
        assert callable(getattr(ringbuffer.Reader, method)), method
    assert isinstance(inspect.getattr_static(ringbuffer.Reader, "ended"), property)
    assert _parameters(ringbuffer.Reader.read)[1:3] == ["max_records", "timeout"]
    assert issubclass(ringbuffer.RingNotFound, ringbuffer.RingError)


def test_the_contract_example_runs(ring_name: str) -> None:
    w = ringbuffer.create(ring_name, {"seq": "uint64", "bid": "float64"}, capacity=1 << 10)
    r = ringbuffer.attach(ring_name, consumer="x", timeout=10.0)
    seq_array, bid_array = np.arange(5, dtype=np.uint64), np.linspace(1.0, 2.0, 5)
    w.publish({"seq": seq_array, "bid": bid_array})
    batch = r.read(max_records=65536, timeout=1.0)
    assert batch is not None and batch.column("seq").to_pylist() == list(range(5))
    assert r.commit() == 5
    w.end()
    assert r.read(timeout=1.0) is None and r.ended
    r.close()
    w.close()


def test_names_and_segments_through_the_public_helpers(ring_name: str) -> None:
    with pytest.raises(ValueError, match=re.escape("bad ring name '../x': use 1-100 letters")):
        ringbuffer.check_name("../x")
    ringbuffer.check_name(ring_name)
    path = ringbuffer.segment_path(ring_name)
    assert path.parent == ringbuffer.SHM_DIR and ring_name in path.name
    assert ring_name not in ringbuffer.segments(ring_name)
    with ringbuffer.create(ring_name, {"seq": "uint64"}, capacity=8):
        assert ringbuffer.segments(ring_name) == [ring_name]
        assert path.exists()
    assert ringbuffer.segments(ring_name) == []
    assert ringbuffer.storage_dtype("symbol") == np.dtype("<u4")


def test_states_keep_their_on_disk_values() -> None:
    from ringbuffer._layout import VERSION, SegmentState, SlotState

    assert VERSION == 1
    assert {s.name: int(s) for s in SegmentState} == {"WRITING": 1, "CLOSED": 2, "SUPERSEDED": 3}
    assert {s.name: int(s) for s in SlotState} == {
        "FREE": 0, "ACTIVE": 1, "DETACHED": 2, "DEAD": 3, "EVICTED": 4,
    }  # fmt: skip


# -- salvage -------------------------------------------------------------------------------


def test_salvage_reads_what_a_dead_writer_left(
    ring_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert ringbuffer.salvage(ring_name) is None  # no ring of that name
    ready, child = CTX.Pipe()
    p = CTX.Process(target=write_and_die, args=(ring_name, child), daemon=True)
    p.start()
    assert ready.poll(WAIT), "the writer did not publish"
    assert ready.recv() == 10
    with pytest.raises(ringbuffer.RingBusy, match="live writer"):
        ringbuffer.salvage(ring_name)
    os.kill(p.pid, signal.SIGKILL)  # type: ignore[arg-type]
    p.join(WAIT)
    left = ringbuffer.salvage(ring_name)
    assert isinstance(left, ringbuffer.Salvage)
    assert (left.start, left.cursor, left.generation, left.tag) == (0, 10, 1, 0)
    assert left.records.column("seq").to_pylist() == list(range(10))
    assert left.records.column("val").to_pylist() == [i * 0.5 for i in range(10)]
    assert ringbuffer.segments(ring_name) == [ring_name]  # salvage leaves the segment
    with caplog.at_level(logging.WARNING, logger="ringbuffer"):
        ringbuffer.create(ring_name, {"seq": "uint64"}, capacity=8).close()  # reclaims it
    assert left.records.num_rows == 10  # the table owns its memory
    [record] = [r for r in caplog.records if r.name.startswith("ringbuffer")]
    assert record.getMessage() == "reclaimed a ring left by a stopped writer"
    assert record.fields == {"ring": ring_name, "gen": 1}  # type: ignore[attr-defined]


# -- logging -------------------------------------------------------------------------------


@pytest.fixture
def bridged() -> Iterator[None]:
    """``bridge_stdlib()`` as the programs call it; the logger is put back afterwards."""
    logger = logging.getLogger("ringbuffer")
    handlers, level = list(logger.handlers), logger.level
    bridge_stdlib()
    bridge_stdlib()  # idempotent: still one line a record
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


def _evict_a_lagging_consumer(ring_name: str) -> int:
    """A consumer that stops reading, and a writer that stops waiting for it; returns its pid."""
    seq = np.arange(8, dtype=np.uint64)
    with ringbuffer.create(ring_name, {"seq": "uint64"}, capacity=8, evict_after=0.05) as w:
        r = ringbuffer.attach(ring_name, "lazy", timeout=WAIT)
        w.publish({"seq": seq})
        w.publish({"seq": seq + 8})  # blocks on "lazy", evicts it, goes on
        with pytest.raises(ringbuffer.Overrun, match="evicted"):
            r.read(timeout=WAIT)
        r.close()
    return os.getpid()


def test_a_retired_consumer_reaches_the_structured_stderr_line(
    ring_name: str, bridged: None, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = _evict_a_lagging_consumer(ring_name)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "no longer gates" in ln]
    assert len(lines) == 1, lines
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(
        stamp + r' ERROR ring "consumer no longer gates the writer" '
        rf'ring={re.escape(ring_name)} consumer=lazy pid={pid} why="lagged \d+\.\ds" lag=\d+',
        lines[0],
    ), lines[0]


def test_without_the_bridge_records_carry_their_fields(
    ring_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ringbuffer"):
        pid = _evict_a_lagging_consumer(ring_name)
    [record] = [r for r in caplog.records if r.name.startswith("ringbuffer")]
    assert (record.name, record.levelno) == ("ringbuffer.writer", logging.ERROR)
    fields = record.fields  # type: ignore[attr-defined]
    assert {k: fields[k] for k in ("ring", "consumer", "pid")} == {
        "ring": ring_name, "consumer": "lazy", "pid": pid,
    }  # fmt: skip
    assert fields["lag"] > 0 and fields["why"].startswith("lagged")


def test_the_handler_maps_levels_and_quotes_values() -> None:
    out = io.StringIO()
    logger = logging.getLogger("ringbuffer.test-handler")
    handler = StructuredHandler("ring", out)
    logger.addHandler(handler)
    try:
        logger.critical("gone", extra={"fields": {"why": "two words"}})
        logger.warning("no fields")
    finally:
        logger.removeHandler(handler)
    first, second = (line.split(" ", 1)[1] for line in out.getvalue().splitlines())
    assert first == 'ERROR ring gone why="two words"'
    assert second == 'WARNING ring "no fields"'
