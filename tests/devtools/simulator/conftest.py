"""Fixtures of the simulator tests: one shared simulator, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from include.devtools.zoho_simulator.process import SimulatorProcess
from tests.devtools.simulator.sim_client import access_token
from tests.simulator_fixtures import simulator, start_simulator  # noqa: F401 -- fixtures for this directory

FAST = {"job_seconds": 0.2}


@pytest.fixture
def sim(simulator: SimulatorProcess) -> Iterator[SimulatorProcess]:  # noqa: F811
    """The shared simulator, reset to its start-up settings with fast jobs."""
    simulator.reset()
    simulator.set_faults(**FAST)
    yield simulator


@pytest.fixture
def token(sim: SimulatorProcess) -> str:
    return access_token(sim)
