"""Fixtures: the reset session simulator (``sim``) and the connection pointing at it (``zoho_conn``)."""

from tests.hooks.zoho_conn import sim, zoho_conn  # noqa: F401 - pytest fixtures
