"""Shared pytest set-up: the simulator fixtures for every test package."""

from tests.simulator_fixtures import *  # noqa: F403 - re-export the fixtures to every test module
