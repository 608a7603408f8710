"""The deployment's shared state on Redis, for workers on several hosts that share no filesystem.

Keys, per credentials ``<name>`` (the sha256 the file backend names its files by) under the key prefix ``<p>``:
``<p>:{<name>}:token`` (the token cache entry: the same Fernet-sealed bytes as the file, nothing in clear),
``<p>:{<name>}:lock`` (the refresh lock) and ``<p>:{<name>}:downloads`` (the download ledger, see
:mod:`zoho_crm.rate_limit.redis_ledger`). The braces are a hash tag: one slot, so the scripts run on a Redis
Cluster too.

The refresh lock is a lease: ``SET NX PX`` of a random fencing token for ``lease_seconds``, renewed by a thread
every third of the lease while the holder lives, deleted only by its holder. A holder that dies (SIGKILL, a lost
host) stops renewing, so the others wait at most one lease. Every write and delete under the lock is one Lua
script that first checks the lock still holds the writer's token: a holder whose lease ran out (paused, cut off
from Redis) cannot overwrite what the next holder stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator

import redis
from airflow.providers.redis.hooks.redis import RedisHook
from airflow.sdk.exceptions import AirflowNotFoundException

from zoho_crm.api.errors import ZohoConfigError, ZohoTransientError
from zoho_crm.hooks.connection import DEFAULT_REDIS_KEY_PREFIX, REDIS_CONN_ID_ENV
from zoho_crm.hooks.token_cache import LOCK_TIMEOUT_SECONDS, LockedEntry

log = logging.getLogger(__name__)

LEASE_SECONDS = 15.0
"""How long the refresh lock outlives a holder that stopped renewing it (died): the longest the others wait."""
POLL_SECONDS = 0.05
"""How often a process waiting for the lock tries again."""
ENTRY_TTL_SECONDS = 24 * 3600
"""Redis forgets a token cache entry this long after it was written (a Zoho access token lives one hour)."""

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_FENCED_SET = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('set', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"""
_FENCED_DELETE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('del', KEYS[2])
return 1
"""

_clients: dict[tuple[int, str], tuple[str, redis.Redis]] = {}
_clients_lock = threading.Lock()


def redis_key(prefix: str, name: str, part: str) -> str:
    """The key of one credentials' ``part`` (``token``, ``lock``, ``downloads``).

    :param prefix: the key prefix (extra ``redis_key_prefix``).
    :param name: the credentials' sha256.
    :param part: which piece of state.
    """
    return f"{prefix}:{{{name}}}:{part}"


def redis_client(redis_conn_id: str) -> redis.Redis:
    """This process's client of the Airflow connection ``redis_conn_id`` (made by the Redis provider's
    ``RedisHook``; made again after a fork or when the connection changes).

    :param redis_conn_id: the Airflow connection id of the Redis server.
    """
    try:
        uri = RedisHook.get_connection(redis_conn_id).get_uri()
    except AirflowNotFoundException:
        raise ZohoConfigError(
            f"The Redis connection {redis_conn_id!r} of the Zoho CRM shared state is not defined",
            code="SHARED_STATE_CONFIG",
            resolution=f"Create it (type Redis: host, port, extra {{\"db\": N}}), or name another one with the Zoho "
            f"connection's extra redis_conn_id or ${REDIS_CONN_ID_ENV}.",
        ) from None
    key = (os.getpid(), redis_conn_id)
    with _clients_lock:
        cached = _clients.get(key)
        if cached is not None and cached[0] == uri:
            return cached[1]
        client = RedisHook(redis_conn_id).get_conn()
        _clients[key] = (uri, client)
        return client


@contextlib.contextmanager
def redis_errors(redis_conn_id: str) -> Iterator[None]:
    """Turn a Redis failure into a retryable error naming the connection (never its password).

    :param redis_conn_id: the connection, for the message.
    """
    try:
        yield
    except redis.exceptions.RedisError as exc:
        raise ZohoTransientError(
            f"The Zoho CRM shared state on Redis (connection {redis_conn_id!r}) failed: "
            f"{type(exc).__name__}: {str(exc)[:200]}",
            code="SHARED_STATE_UNAVAILABLE",
            resolution="Check that Redis is up and that the connection's host, port, db and password are right; "
            "the task can be retried.",
        ) from exc


class RedisLease:
    """An exclusive lock on one key with a lease, renewed while held (see the module docstring).

    :param client: the Redis client.
    :param key: the lock's key.
    :param lease_seconds: how long the lock outlives a holder that stopped renewing it.
    """

    def __init__(self, client: redis.Redis, key: str, lease_seconds: float = LEASE_SECONDS) -> None:
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
        self.client = client
        self.key = key
        self.lease_seconds = lease_seconds
        self.token = secrets.token_hex(16)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def _lease_ms(self) -> int:
        return max(int(self.lease_seconds * 1000), 1)

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this lease now holds it (and is being renewed)."""
        if not self.client.set(self.key, self.token, nx=True, px=self._lease_ms):
            return False
        self._renewer = threading.Thread(target=self._renew_while_held, name=f"lease {self.key}", daemon=True)
        self._renewer.start()
        return True

    def _timed_out(self, waited_since: float) -> bool:
        return time.monotonic() - waited_since > LOCK_TIMEOUT_SECONDS

    def _timeout_error(self) -> ZohoTransientError:
        return ZohoTransientError(
            f"Waited {LOCK_TIMEOUT_SECONDS:.0f}s for the token cache lock {self.key} on Redis: another process holds "
            "it and keeps renewing its lease; check for a hung task.",
            code="TOKEN_CACHE_LOCK",
        )

    def acquire(self) -> None:
        """Wait for the lock (polled); raise ZohoTransientError after ``LOCK_TIMEOUT_SECONDS``."""
        since = time.monotonic()
        while not self.try_acquire():
            if self._timed_out(since):
                raise self._timeout_error()
            time.sleep(POLL_SECONDS)

    async def aacquire(self) -> None:
        """Async :meth:`acquire`: the event loop is never blocked."""
        since = time.monotonic()
        while not await asyncio.to_thread(self.try_acquire):
            if self._timed_out(since):
                raise self._timeout_error()
            await asyncio.sleep(POLL_SECONDS)

    def _renew_while_held(self) -> None:
        renew = self.client.register_script(_RENEW)
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                if not renew(keys=[self.key], args=[self.token, self._lease_ms]):
                    log.warning("The lease of %s ran out before it was renewed: another process may hold it now",
                                self.key)
                    return
            except redis.exceptions.RedisError as exc:  # try again; if the lease runs out the fence refuses writes
                log.warning("Could not renew the lease of %s (%s)", self.key, type(exc).__name__)

    def fenced_set(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        """Set ``key`` only while this lease holds the lock; False (nothing written) once it does not."""
        script = self.client.register_script(_FENCED_SET)
        return bool(script(keys=[self.key, key], args=[self.token, value, int(ttl_seconds * 1000)]))

    def fenced_delete(self, key: str) -> bool:
        """Delete ``key`` only while this lease holds the lock; False (nothing deleted) once it does not."""
        return bool(self.client.register_script(_FENCED_DELETE)(keys=[self.key, key], args=[self.token]))

    def release(self) -> None:
        """Stop renewing and free the lock if it is still ours (if Redis fails, the lease frees it)."""
        self._stop.set()
        try:
            self.client.register_script(_RELEASE)(keys=[self.key], args=[self.token])
        except redis.exceptions.RedisError as exc:
            log.warning("Could not release %s (%s): it frees itself within %.0f s", self.key,
                        type(exc).__name__, self.lease_seconds)


class _RedisEntry:
    """The token cache entry while its lease is held: reads plain, writes and deletes fenced."""

    def __init__(self, lease: RedisLease, key: str, redis_conn_id: str) -> None:
        self.lease = lease
        self.key = key
        self.redis_conn_id = redis_conn_id

    def read(self) -> bytes | None:
        with redis_errors(self.redis_conn_id):
            return self.lease.client.get(self.key)

    def write(self, sealed: bytes) -> bool:
        with redis_errors(self.redis_conn_id):
            return self.lease.fenced_set(self.key, sealed, ENTRY_TTL_SECONDS)

    def delete(self) -> bool:
        with redis_errors(self.redis_conn_id):
            return self.lease.fenced_delete(self.key)


class RedisTokenStore:
    """Token cache entries on Redis, under a lease lock per credentials (a :class:`~zoho_crm.hooks.token_cache.
    TokenStore`).

    :param redis_conn_id: the Airflow connection of the Redis server (its extra ``db`` picks the database).
    :param key_prefix: the prefix of every key (several deployments or tests on one Redis).
    :param lease_seconds: the refresh lock's lease (how long a dead holder blocks the others at most).
    """

    def __init__(
        self, redis_conn_id: str, key_prefix: str = DEFAULT_REDIS_KEY_PREFIX, *, lease_seconds: float = LEASE_SECONDS
    ) -> None:
        self.redis_conn_id = redis_conn_id
        self.key_prefix = key_prefix
        self.lease_seconds = lease_seconds

    def where(self, name: str) -> str:
        return f"Redis key {redis_key(self.key_prefix, name, 'token')} (connection {self.redis_conn_id})"

    def _lease(self, name: str) -> RedisLease:
        client = redis_client(self.redis_conn_id)
        return RedisLease(client, redis_key(self.key_prefix, name, "lock"), self.lease_seconds)

    def _entry(self, lease: RedisLease, name: str) -> LockedEntry:
        return _RedisEntry(lease, redis_key(self.key_prefix, name, "token"), self.redis_conn_id)

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[LockedEntry]:
        lease = self._lease(name)
        with redis_errors(self.redis_conn_id):
            lease.acquire()
        try:
            yield self._entry(lease, name)
        finally:
            lease.release()

    @contextlib.asynccontextmanager
    async def alocked(self, name: str) -> AsyncIterator[LockedEntry]:
        lease = await asyncio.to_thread(self._lease, name)
        with redis_errors(self.redis_conn_id):
            await lease.aacquire()
        try:
            yield self._entry(lease, name)
        finally:
            await asyncio.to_thread(lease.release)
