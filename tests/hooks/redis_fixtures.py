"""The real Redis at 127.0.0.1:6379 for the shared-state tests: a database index no concurrent test stack uses,
and a key prefix of its own per test, both emptied afterwards.

Without Redis the tests are skipped, saying why; under CI=true they fail instead.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from include.devtools.airflow_stack import service_reachable
from tests.stack_support import redis_database

REDIS_CONN_ID = "zoho_state_redis"
"""The Airflow connection (type Redis) the Zoho connection's ``redis_conn_id`` extra names in these tests."""


@dataclass
class RedisState:
    """One test's place on Redis: the client (for checks), the key prefix and the Zoho connection's extras."""

    client: redis.Redis
    db: int
    prefix: str
    extras: dict[str, Any] = field(default_factory=dict)

    def keys(self) -> list[str]:
        """Every key of this test's prefix."""
        return sorted(key.decode() for key in self.client.scan_iter(match=f"{self.prefix}:*"))


@pytest.fixture(scope="session")
def redis_db() -> Iterator[int]:
    """A Redis database index reserved for this session's shared-state tests (flushed before and after)."""
    if not service_reachable("127.0.0.1", 6379):
        reason = "Redis is not reachable on 127.0.0.1:6379 (needed for the Redis shared-state backend tests)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + ": mandatory under CI=true")
        pytest.skip(reason)
    with redis_database() as url:
        yield int(url.rsplit("/", 1)[1])


@pytest.fixture
def redis_state(redis_db: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisState]:
    """The Airflow connection ``zoho_state_redis`` to the reserved database and a fresh key prefix; the extras
    that put a Zoho connection's shared state there; this prefix's keys are deleted afterwards."""
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{REDIS_CONN_ID.upper()}",
        json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": 6379, "extra": {"db": redis_db}}),
    )
    prefix = f"zoho-test-{secrets.token_hex(6)}"
    client = redis.Redis(host="127.0.0.1", port=6379, db=redis_db)
    state = RedisState(
        client, redis_db, prefix,
        {"shared_state": "redis", "redis_conn_id": REDIS_CONN_ID, "redis_key_prefix": prefix},
    )
    try:
        yield state
    finally:
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        client.close()
