"""``pytest --benchmark`` runs the benchmark suite (benchmarks/) instead of the tests.

Without ``--benchmark`` the benchmarks are skipped even when benchmarks/ is named, so
``make test`` stays tests only and fast.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--benchmark",
        action="store_true",
        default=False,
        help="run the benchmark suite in benchmarks/ (make bench) instead of the tests",
    )


def pytest_configure(config: pytest.Config) -> None:
    from_testpaths = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    if config.getoption("--benchmark") and from_testpaths:  # no paths named: the suite
        config.args[:] = ["benchmarks"]
