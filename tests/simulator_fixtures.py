"""Pytest fixtures for the Zoho CRM simulator, for every test package (imported by tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from include.devtools.zoho_simulator.process import SimulatorProcess

__all__ = ["simulator", "start_simulator", "sim", "zoho_conn", "SimulatorProcess"]


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


@pytest.fixture
def sim(simulator: SimulatorProcess) -> Iterator[SimulatorProcess]:
    """The session simulator, reset before and after the test."""
    simulator.reset()
    yield simulator
    simulator.reset()


@pytest.fixture
def zoho_conn(sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SimulatorProcess:
    """``zoho_crm_default`` (HTTP type) pointing at the reset session simulator, with a fresh token cache dir."""
    monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "token-cache"))
    return sim
