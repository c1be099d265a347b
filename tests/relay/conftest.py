"""Fixtures of the relay's tests: the generated quotes (each test starts its own redis-server)."""

from __future__ import annotations

from ..system.conftest import csv20k

__all__ = ["csv20k"]
