"""A PostgreSQL database of this test session for the warehouse tests (created, then dropped)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"


@pytest.fixture(scope="session")
def warehouse_dsn() -> Iterator[str]:
    """The DSN of a uniquely named database on the local PostgreSQL service (skipped without it, failed under
    CI=true)."""
    try:
        admin = psycopg.connect(ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL not reachable as user postgres on 127.0.0.1:5432 ({exc.__class__.__name__})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + ": mandatory under CI=true")
        pytest.skip(reason)
    name = f"zoho_tables_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield ADMIN_DSN.replace("dbname=postgres", f"dbname={name}")
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def conn(warehouse_dsn: str) -> Iterator[psycopg.Connection]:
    """A connection to the session's database, whose ``zoho_crm`` schema starts empty for every test."""
    with psycopg.connect(warehouse_dsn, autocommit=True) as admin:
        admin.execute("DROP SCHEMA IF EXISTS zoho_crm CASCADE")
    with psycopg.connect(warehouse_dsn) as connection:
        yield connection
