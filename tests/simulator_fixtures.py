"""Pytest fixtures for the Zoho CRM simulator (imported by tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from include.devtools.zoho_simulator.process import SimulatorProcess

__all__ = ["simulator", "start_simulator", "SimulatorProcess"]


@contextmanager
def start_simulator(**options: Any) -> Iterator[SimulatorProcess]:
    """A fresh simulator subprocess with the given options (kwargs become CLI flags)."""
    with SimulatorProcess(**options) as sim:
        yield sim


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorProcess]:
    """One simulator with default options shared by the session; call ``.reset()`` if you change settings."""
    with start_simulator() as sim:
        yield sim
