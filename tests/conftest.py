"""Shared pytest set-up: the simulator fixtures and the session's Airflow deployments for every test package."""

from tests.deployments import celery_deployment, local_deployment  # noqa: F401 - fixtures
from tests.simulator_fixtures import *  # noqa: F403 - re-export the fixtures to every test module
