"""Shared pytest set-up: the simulator fixtures and the session's Airflow deployments for every test package."""

import sys

import pytest

from tests.deployments import (  # noqa: F401 - fixtures
    celery_deployment,
    default_install,
    default_install_celery,
    local_deployment,
)
from tests.simulator_fixtures import *  # noqa: F403 - re-export the fixtures to every test module
from tests.stack_support import embedded_databases, system_databases  # noqa: F401 - fixtures


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    """Under ``--dist loadgroup``, refuse to run if pytest-xdist did not tag the grouped tests.

    The groups keep Airflow deployments from being started twice and from starving each other on 2 cores; an
    incompatible pytest (9.2 ignores xdist 3.8's tagging) would silently spread them over every worker.
    """
    result = yield
    if getattr(config.option, "loadgroup", False):
        untagged = [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
        if untagged:
            message = (
                f"pytest-xdist did not group {len(untagged)} tests marked xdist_group (e.g. {untagged[0]}): "
                "this pytest / pytest-xdist pair is incompatible; install the versions pinned in constraints.txt."
            )
            print(f"ERROR: {message}", file=sys.__stderr__, flush=True)  # a worker's exception text is not shown
            raise pytest.UsageError(message)
    return result
