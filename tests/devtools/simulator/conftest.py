"""Fixtures of the simulator tests: the shared ``simulator`` (tests/simulator_fixtures.py), reset before each test
with fast jobs, and an access token of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from include.devtools.zoho_simulator.process import SimulatorProcess
from tests.devtools.simulator.sim_client import access_token

FAST = {"job_seconds": 0.2}


@pytest.fixture
def sim(simulator: SimulatorProcess) -> Iterator[SimulatorProcess]:
    """Here instead of the suite's ``sim``: the shared simulator, reset to its start-up settings with fast jobs."""
    simulator.reset()
    simulator.set_faults(**FAST)
    yield simulator


@pytest.fixture
def token(sim: SimulatorProcess) -> str:
    return access_token(sim)
