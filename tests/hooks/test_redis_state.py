"""The shared state on the real Redis: the token cache of workers on hosts that share no directory.

Each process plays a worker on its own "host" (working directory, AIRFLOW_HOME and default token cache dir of its
own): only Redis is shared. The simulator's token log is the judge of how many tokens were requested.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Connection

from tests.hooks import redis_fixtures
from tests.hooks.redis_fixtures import REDIS_CONN_ID, RedisState
from tests.hooks.test_token_sharing import (
    _LosingAccountsHost,
    assert_one_failed_refresh_for_all,
    new_job,
    token_requests,
    wait_for,
)
from tests.hooks.token_worker import run_workers
from tests.hooks.zoho_conn import CLIENT_SECRET, REFRESH_TOKEN, assert_no_secret
from tests.local_http import serving
from zoho_crm.api.errors import ZohoConfigError, ZohoTransientError
from zoho_crm.hooks import shared_state
from zoho_crm.hooks.connection import ZohoConnectionConfig
from zoho_crm.hooks.redis_state import ENTRY_TTL_SECONDS, RedisLease, RedisTokenStore, redis_client, redis_key
from zoho_crm.hooks.token_cache import AccessToken, FileTokenStore, TokenCache
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.rate_limit.redis_ledger import RedisDownloadLedger

redis_db, redis_state = redis_fixtures.redis_db, redis_fixtures.redis_state  # the fixtures

HOLDER_LEASE = 4.0
"""The lease of the holder killed while holding the refresh lock: short, so the test waits it out quickly."""


def use_redis(sim, monkeypatch: pytest.MonkeyPatch, state: RedisState, **extras: Any) -> ZohoConnectionConfig:
    """Point ``zoho_crm_default`` at the simulator with its shared state on ``state``'s Redis prefix."""
    monkeypatch.setenv(*sim.env_var(conn_type="http", **{**state.extras, **extras}))
    return ZohoCRMHook().config


def hosts(tmp_path: Path, count: int) -> list[Path]:
    return [tmp_path / f"host-{i}" for i in range(count)]


def assert_nothing_on_disk(homes: list[Path]) -> None:
    for home in homes:
        written = [p for p in home.rglob("*") if p.is_file()] if home.exists() else []
        assert written == [], f"a worker wrote shared state to its own disk: {written}"


def test_the_connection_or_the_deployment_picks_the_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def config(**extra: Any) -> ZohoConnectionConfig:
        return ZohoConnectionConfig.from_connection(Connection(
            conn_id="zoho_crm_default", conn_type="http", login="1000.ID", password="secret",
            extra=json.dumps({"refresh_token": "1000.r.t", **extra}),
        ))

    for name in ("ZOHO_CRM_SHARED_STATE", "ZOHO_CRM_REDIS_CONN_ID", "ZOHO_CRM_REDIS_KEY_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZOHO_CRM_TOKEN_CACHE_DIR", str(tmp_path))
    default = config()
    assert (default.shared_state, default.redis_conn_id, default.redis_key_prefix) == ("file", "redis_default", "zoho_crm")
    assert isinstance(shared_state.token_store(default), FileTokenStore)
    assert shared_state.download_ledger(default, margin=0.5, unfinished_grace=60).path.parent == tmp_path
    monkeypatch.setenv("ZOHO_CRM_SHARED_STATE", "Redis")
    monkeypatch.setenv("ZOHO_CRM_REDIS_CONN_ID", "celery_broker")
    deployment = config()
    assert (deployment.shared_state, deployment.redis_conn_id) == ("redis", "celery_broker")
    store = shared_state.token_store(deployment)
    assert isinstance(store, RedisTokenStore) and store.redis_conn_id == "celery_broker"
    assert isinstance(shared_state.download_ledger(deployment, margin=0.5, unfinished_grace=60), RedisDownloadLedger)
    extra_wins = config(shared_state="file", redis_conn_id="", redis_key_prefix="team-a")
    assert (extra_wins.shared_state, extra_wins.redis_conn_id, extra_wins.redis_key_prefix) == (
        "file", "celery_broker", "team-a"
    )
    with pytest.raises(ZohoConfigError) as caught:
        config(shared_state="nfs")
    assert "shared_state 'nfs'" in str(caught.value) and "use file" in str(caught.value) and "redis" in str(caught.value)


def test_a_missing_redis_connection_is_named(sim, monkeypatch: pytest.MonkeyPatch, redis_state: RedisState) -> None:
    use_redis(sim, monkeypatch, redis_state, redis_conn_id="no_such_redis")
    with pytest.raises(ZohoConfigError) as caught:
        ZohoCRMHook(retry_attempts=1).get_access_token()
    assert "'no_such_redis'" in str(caught.value) and "redis_conn_id" in str(caught.value)
    assert token_requests(sim) == 0


def test_an_unreachable_redis_is_a_retryable_error(sim, monkeypatch: pytest.MonkeyPatch, redis_state: RedisState) -> None:
    use_redis(sim, monkeypatch, redis_state, redis_conn_id="dead_redis")
    monkeypatch.setenv("AIRFLOW_CONN_DEAD_REDIS", json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": 9}))
    with pytest.raises(ZohoTransientError) as caught:
        ZohoCRMHook(retry_attempts=1).get_access_token()
    assert caught.value.retryable and "'dead_redis'" in str(caught.value) and "ConnectionError" in str(caught.value)
    assert token_requests(sim) == 0, "no token is refreshed without the shared lock"


def test_eight_processes_on_two_hosts_make_one_token_request(
    sim, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_state: RedisState
) -> None:
    job_id = new_job(sim, monkeypatch, tmp_path)
    before = token_requests(sim)
    use_redis(sim, monkeypatch, redis_state)
    homes = hosts(tmp_path, 2)
    results = run_workers(job_id, 8, 3, hosts=homes)
    assert [r.get("error") for r in results] == [None] * 8
    assert len({r["pid"] for r in results}) == 8 and all(len(r["states"]) == 3 for r in results)
    assert sorted(r["cwd"] for r in results) == sorted(str(home) for home in homes for _ in range(4))
    assert token_requests(sim) - before == 1
    assert len(sim.requests("details")) == 24
    assert_nothing_on_disk(homes)
    assert [key.rsplit(":", 1)[1] for key in redis_state.keys()] == ["token"], "the lock is released after use"


def test_async_refresh_from_a_cold_redis_cache_is_single(
    sim, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_state: RedisState
) -> None:
    use_redis(sim, monkeypatch, redis_state)

    async def cold() -> set[str]:
        return set(await asyncio.gather(*(ZohoCRMHook().aget_access_token() for _ in range(6))))

    assert len(asyncio.run(cold())) == 1
    assert token_requests(sim) == 1


def hold_the_refresh_lock(held: Any) -> None:
    """A forked worker that takes the refresh lock (a short lease) and then hangs until it is killed."""
    try:
        config = ZohoCRMHook().config
        name = shared_state.token_cache(config).name
        store = RedisTokenStore(config.redis_conn_id, config.redis_key_prefix, lease_seconds=HOLDER_LEASE)
        with store.locked(name):
            held.put(os.getpid())
            threading.Event().wait()
    except BaseException:
        held.put(traceback.format_exc())


def test_a_holder_killed_with_the_lock_blocks_the_others_only_until_its_lease_ends(
    sim, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_state: RedisState
) -> None:
    job_id = new_job(sim, monkeypatch, tmp_path)
    before = token_requests(sim)
    config = use_redis(sim, monkeypatch, redis_state)
    lock = redis_key(redis_state.prefix, shared_state.token_cache(config).name, "lock")
    ctx = multiprocessing.get_context("fork")
    held = ctx.Queue()
    holder = ctx.Process(target=hold_the_refresh_lock, args=(held,))
    holder.start()
    assert held.get(timeout=60) == holder.pid
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(30)
    remaining_ms = redis_state.client.pttl(lock)
    assert 0 < remaining_ms <= HOLDER_LEASE * 1000, "the dead holder's lock outlives it, at most by its lease"
    frees_at = time.time() + remaining_ms / 1000
    still_held = []
    results = run_workers(job_id, 4, 1, hosts=hosts(tmp_path, 2),
                          before_go=lambda: still_held.append(redis_state.client.pttl(lock)))
    done_at = time.time()
    assert still_held[0] > 0, "the workers started while the dead holder's lock was still there"
    assert [r.get("error") for r in results] == [None] * 4
    tokens = sim.requests("token")[before:]
    assert len(tokens) == 1, "one refresh, by the first worker to get the freed lock"
    assert tokens[0]["wall"] >= frees_at - 0.1, "no worker refreshed while the dead holder's lease ran"
    assert done_at - frees_at < 10, "the workers got the lock soon after the lease ended (not after a timeout)"


def test_a_holder_whose_lease_ran_out_cannot_overwrite_the_next_holder(redis_state: RedisState) -> None:
    client = redis_client(REDIS_CONN_ID)
    lock, entry = (redis_key(redis_state.prefix, "credentials", part) for part in ("lock", "token"))
    first = RedisLease(client, lock, lease_seconds=30)
    assert first.try_acquire() and not RedisLease(client, lock).try_acquire(), "one holder at a time"
    client.delete(lock)  # what the end of the lease does (the holder was paused, or cut off from Redis)
    second = RedisLease(client, lock, lease_seconds=30)
    assert second.try_acquire()
    assert second.fenced_set(entry, b"second", 60)
    assert not first.fenced_set(entry, b"first", 60) and not first.fenced_delete(entry), "the fence refuses"
    assert client.get(entry) == b"second"
    first.release()
    assert client.get(lock) == second.token.encode(), "a former holder cannot free the current holder's lock"
    second.release()
    assert client.get(lock) is None


def test_a_living_holder_keeps_its_lease_renewed(redis_state: RedisState) -> None:
    client = redis_client(REDIS_CONN_ID)
    lease = RedisLease(client, redis_key(redis_state.prefix, "credentials", "lock"), lease_seconds=0.9)
    assert lease.try_acquire()
    acquired = time.monotonic()
    seen = [client.pttl(lease.key)]

    def renewed() -> bool:
        """The time left went up again: the holder extended its lease (it only runs down otherwise)."""
        seen.append(client.pttl(lease.key))
        return seen[-1] > min(seen) + 100

    try:
        wait_for(renewed, what="the lease renewed")
        wait_for(lambda: time.monotonic() - acquired > 2 * lease.lease_seconds, what="two leases' time passing")
        assert client.get(lease.key) == lease.token.encode(), "the living holder still holds its lock"
    finally:
        lease.release()


def test_redis_entries_are_sealed_and_compare_and_invalidate(
    sim, monkeypatch: pytest.MonkeyPatch, redis_state: RedisState, caplog: pytest.LogCaptureFixture
) -> None:
    config = use_redis(sim, monkeypatch, redis_state)
    token = ZohoCRMHook().get_access_token()
    cache = shared_state.token_cache(config)
    key = redis_key(redis_state.prefix, cache.name, "token")
    assert redis_state.keys() == [key]
    text = redis_state.client.get(key).decode()
    assert_no_secret(text, sim)
    assert token not in text and sim.url not in text and "expires_at" not in text, "the whole entry is sealed"
    assert 0 < redis_state.client.ttl(key) <= ENTRY_TTL_SECONDS
    other = TokenCache(RedisTokenStore(REDIS_CONN_ID, redis_state.prefix), accounts_url=sim.url,
                       client_id="1000.SIMULATOR", client_secret="another-secret", refresh_token=REFRESH_TOKEN)
    assert other.name == cache.name and other._read() is None, "not readable without the key"
    assert "does not authenticate" in caplog.text
    same = TokenCache(RedisTokenStore(REDIS_CONN_ID, redis_state.prefix), accounts_url=sim.url,
                      client_id="1000.SIMULATOR", client_secret=CLIENT_SECRET, refresh_token=REFRESH_TOKEN)
    assert same._read().token == token
    cache.invalidate("some-older-token")
    assert cache._read().token == token, "another token's rejection must not drop the current one"
    cache.invalidate(token)
    assert cache._read() is None and redis_state.keys() == []
    now = time.time()
    assert cache.get(lambda: AccessToken("tok-1", now, now + 3600)).token == "tok-1"


def test_waiters_on_redis_do_not_repeat_a_failed_retried_refresh(
    sim, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_state: RedisState
) -> None:
    """The failure marker on Redis: four workers on two hosts behind a failing accounts host make one retried
    refresh sequence in all (3 requests), and every one fails on the marker naming no secret."""
    job_id = new_job(sim, monkeypatch, tmp_path)
    before = token_requests(sim)
    _LosingAccountsHost.target = sim.url
    with serving(_LosingAccountsHost) as accounts:
        use_redis(sim, monkeypatch, redis_state, accounts_url=accounts)
        results = run_workers(job_id, 4, 1, hook_kwargs={"retry_attempts": 3, "retry_max_wait": 0.2},
                              hosts=hosts(tmp_path, 2))
    assert_one_failed_refresh_for_all(sim, results, before)
    [key] = redis_state.keys()
    assert_no_secret(redis_state.client.get(key).decode(), sim)
