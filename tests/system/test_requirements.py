"""Each requirement sits in the file that matches where it is imported.

``requirements.txt`` is what the programs import (``ringbuffer``, ``common``, ``engine``,
``processor``, ``exchange``, ``data``, ``tools``): nothing more, nothing less.
``requirements-dev.txt`` adds what the tests and benchmarks import, and the tools ``make`` runs
(ruff, mypy) or pytest loads as a plugin by configuration (pytest-timeout); a package imported
only by benchmarks says so in its comment.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ("ringbuffer", "common", "engine", "processor", "exchange", "relay", "data", "tools")
CHECKS = ("tests", "benchmarks")
OWN = {*PROGRAMS, *CHECKS}
#: Requirements used without an import: run by ``make lint``, or loaded by pytest's config.
TOOLS = {
    "ruff": "make lint",
    "mypy": "make lint",
    "pandas-stubs": "make lint (mypy)",
    "pytest-timeout": "pyproject timeout",
    "schemathesis": "run as a program by tests/exchange/test_venue_schemathesis.py",
}


def requirements(name: str) -> dict[str, str]:
    """Distribution name (normalised) -> its line, for one requirements file."""
    out = {}
    for line in (ROOT / name).read_text().splitlines():
        spec = line.split("#")[0].strip()
        if spec and not spec.startswith("-r"):
            dist = re.match(r"[A-Za-z0-9_.-]+", spec)
            assert dist, line
            out[normalise(dist.group())] = line
    return out


def normalise(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def imported(folders: tuple[str, ...]) -> dict[str, set[str]]:
    """Third-party distributions imported under ``folders`` -> the files importing them."""
    dists = packages_distributions()
    out: dict[str, set[str]] = {}
    files = [p for f in folders for p in (ROOT / f).rglob("*.py")]
    if folders == CHECKS:
        files.append(ROOT / "conftest.py")
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in OWN or top == "__future__":
                    continue
                assert top in dists, f"{path}: {top!r} is not installed by any requirement"
                for dist in dists[top]:
                    out.setdefault(normalise(dist), set()).add(str(path.relative_to(ROOT)))
    return out


def test_runtime_requirements_are_what_the_programs_import() -> None:
    needed = imported(PROGRAMS)
    listed = requirements("requirements.txt")
    assert not needed.keys() - listed.keys(), "imported by the programs, not in requirements.txt"
    assert not listed.keys() - needed.keys(), "in requirements.txt, imported by no program"


def test_dev_requirements_are_what_tests_and_benchmarks_use() -> None:
    runtime = requirements("requirements.txt")
    dev = requirements("requirements-dev.txt")
    used = imported(CHECKS)
    missing = used.keys() - runtime.keys() - dev.keys()
    assert not missing, f"imported by tests or benchmarks, in no requirements file: {missing}"
    for dist, line in dev.items():
        if dist in TOOLS:
            continue
        assert dist in used, f"requirements-dev.txt lists {dist}, which nothing imports: {line!r}"
        in_tests = any(f.startswith(("tests", "conftest")) for f in used[dist])
        if not in_tests:
            assert "benchmarks only" in line, (
                f"{dist} is imported only by benchmarks ({sorted(used[dist])}): "
                "say 'benchmarks only' in its comment"
            )
        else:
            assert "benchmarks only" not in line, f"tests import {dist}: {sorted(used[dist])}"
