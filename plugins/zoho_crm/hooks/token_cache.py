"""OAuth access-token cache shared by every process of a deployment (workers, triggerer).

Why not Airflow's own state: tasks cannot use the metadata DB and Airflow Variables have no compare-and-set. A
:class:`TokenStore` keeps one entry per (accounts_url, client_id, refresh_token), named by their sha256 -- the
access token with its expiry and api_domain, or the marker of a failed refresh -- as JSON encrypted and
authenticated as a whole with Fernet (AES + HMAC-SHA256) under a key derived (HKDF-SHA256) from the client secret +
refresh token. An entry that does not authenticate (tampered with, corrupt, from an older version, other
credentials) is treated as absent, with a warning. The store's exclusive lock serialises read-check-refresh-write,
so concurrent processes refresh once: a process that gets the lock re-reads the entry and uses a token another
process just stored. An in-process memory copy sits in front.

Stores: :class:`FileTokenStore` (files locked with ``fcntl.flock``: one host, or a volume every host mounts) and
``zoho_crm.hooks.redis_state.RedisTokenStore`` (Redis: several hosts, no shared filesystem); the connection picks
one (``zoho_crm.hooks.shared_state``).

A refresh that fails (after its own retries) leaves a failure marker: for ``FAILURE_PAUSE_SECONDS`` every process
that would refresh raises the same error instead of repeating the whole retried sequence, so N waiting processes
behind a slow or failing accounts host add no token requests of their own.

Bound: per store (cache dir, or Redis key prefix) and credentials, at most one token request per token lifetime
(a token is reused until ``expires_at - margin``, margin = min(60 s, 10% of its lifetime)), plus one per
INVALID_TOKEN rejection of the current token; a failing accounts host gets at most one retried refresh sequence
per ``FAILURE_PAUSE_SECONDS``.
Invalidation is compare-and-invalidate: only the token the cache still holds is dropped, so N processes rejected
with the same token cause one refresh, not N.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from zoho_crm.api.errors import ERROR_FAMILIES, ZohoError, ZohoTransientError

log = logging.getLogger(__name__)

MAX_MARGIN_SECONDS = 60.0
LOCK_TIMEOUT_SECONDS = 120.0
FAILURE_PAUSE_SECONDS = 20.0
"""After a failed refresh, no process of the deployment asks for a token again for this long: longer than one call's
own retries (1 + 2 + 4 + 8 s by default), shorter than a task's retry delay."""
ENTRY_VERSION = 2


@dataclass(frozen=True)
class AccessToken:
    """An access token with its lifetime; the token itself is excluded from repr."""

    token: str = field(repr=False)
    issued_at: float
    expires_at: float
    api_domain: str | None = None

    @property
    def valid_until(self) -> float:
        """Epoch seconds after which the token is not handed out any more."""
        lifetime = max(self.expires_at - self.issued_at, 0.0)
        return self.expires_at - min(MAX_MARGIN_SECONDS, 0.1 * lifetime)

    def is_fresh(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.valid_until


@dataclass(frozen=True)
class RefreshFailure:
    """The marker of a refresh that failed: when, and the error (Zoho's code and message; no secret)."""

    failed_at: float
    error: dict[str, Any]

    def pausing(self, now: float | None = None) -> bool:
        """True while other processes must not repeat the refresh (clock steps backwards end the pause)."""
        age = (time.time() if now is None else now) - self.failed_at
        return -1.0 <= age < FAILURE_PAUSE_SECONDS

    @classmethod
    def of(cls, err: ZohoError) -> RefreshFailure:
        return cls(
            time.time(),
            {
                "family": type(err).__name__,
                "code": err.code,
                "message": err.message,
                "http_status": err.http_status,
                "retryable": err.retryable,
                "resolution": err.resolution,
            },
        )

    def raise_paused(self) -> None:
        """Raise the recorded error again, saying it is not repeated until the pause is over."""
        error = self.error
        family = ERROR_FAMILIES.get(str(error.get("family")), ZohoError)
        age = max(time.time() - self.failed_at, 0.0)
        raise family(
            f"the last token request for these credentials failed {age:.0f}s ago ({error.get('message')}); "
            f"no process asks again until {FAILURE_PAUSE_SECONDS:.0f}s after that failure",
            code=str(error.get("code") or ""),
            http_status=error.get("http_status"),
            resolution=error.get("resolution"),
            retryable=bool(error.get("retryable")),
        )


Entry = AccessToken | RefreshFailure


class _Memory:
    """Process-wide memory copy of the cached tokens, keyed by where the store keeps the entry."""

    lock = threading.Lock()
    tokens: dict[str, AccessToken] = {}


class LockedEntry(Protocol):
    """One credentials' entry in a store, while the store's lock for it is held."""

    def read(self) -> bytes | None:
        """The sealed entry, or None when there is none (or it cannot be read: a warning says so)."""

    def write(self, sealed: bytes) -> bool:
        """Replace the entry; False when the lock was lost meanwhile (its lease ran out) and nothing was written."""

    def delete(self) -> bool:
        """Remove the entry; False when the lock was lost meanwhile and nothing was removed."""


class TokenStore(Protocol):
    """Where the sealed entries live and how their read-check-refresh-write is made exclusive across processes."""

    def where(self, name: str) -> str:
        """The entry's place, for messages (``file /path/x.token``, ``Redis key ...``); never a secret."""

    def locked(self, name: str) -> contextlib.AbstractContextManager[LockedEntry]:
        """Hold the entry's exclusive lock (blocking) for the ``with`` block."""

    def alocked(self, name: str) -> contextlib.AbstractAsyncContextManager[LockedEntry]:
        """Async :meth:`locked`: waits without blocking the event loop."""


class _FileEntry:
    """A cache file, read and replaced atomically under its ``flock``."""

    def __init__(self, cache_dir: Path, name: str) -> None:
        self.cache_dir = cache_dir
        self.path = cache_dir / f"{name}.token"

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("Token cache file %s is unreadable (%s): requesting a new token", self.path, type(exc).__name__)
            return None

    def write(self, sealed: bytes) -> bool:
        tmp = self.cache_dir / f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(sealed)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return True

    def delete(self) -> bool:
        self.path.unlink(missing_ok=True)
        return True


class FileTokenStore:
    """Entries as files ``<name>.token`` in ``cache_dir`` (mode 0700/0600), each locked with ``fcntl.flock`` on a
    sibling ``<name>.lock``: the processes of one host, or of hosts mounting one volume (``flock`` over NFS is
    unreliable: use Redis there).

    :param cache_dir: the directory, created on first use.
    """

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)

    def where(self, name: str) -> str:
        return f"file {self.cache_dir / f'{name}.token'}"

    def _open_lock(self, name: str) -> int:
        self.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(self.cache_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[LockedEntry]:
        fd = self._open_lock(name)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield _FileEntry(self.cache_dir, name)
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    @contextlib.asynccontextmanager
    async def alocked(self, name: str) -> AsyncIterator[LockedEntry]:
        """The lock is polled (non-blocking ``flock`` in a thread), so no pool thread waits on it."""
        fd = await asyncio.to_thread(self._open_lock, name)
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
            while True:
                try:
                    await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ZohoTransientError(
                            f"Waited {LOCK_TIMEOUT_SECONDS:.0f}s for the token cache lock "
                            f"{self.cache_dir / f'{name}.lock'}: another process holds it; check for a hung task.",
                            code="TOKEN_CACHE_LOCK",
                        ) from None
                    await asyncio.sleep(0.05)
            yield _FileEntry(self.cache_dir, name)
        finally:
            os.close(fd)


class TokenCache:
    """Token cache for one set of credentials in ``store``.

    :param store: where the entries live (:class:`FileTokenStore`, or Redis's store).
    :param accounts_url: the OAuth accounts host (part of the entry's name).
    :param client_id: the OAuth client id.
    :param client_secret: the client secret (with the refresh token, the entry's key).
    :param refresh_token: the refresh token.
    :param accept: False for a cached token that must not be used (an api_domain the connection does not trust).
    """

    def __init__(
        self,
        store: TokenStore,
        *,
        accounts_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        accept: Callable[[AccessToken], bool] | None = None,
    ) -> None:
        identity = "\n".join((accounts_url, client_id, refresh_token)).encode()
        name = hashlib.sha256(identity).hexdigest()
        self.name = name
        self.accept = accept or (lambda _token: True)
        self.store = store
        self.where = store.where(name)
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"zoho-crm-token-cache-v1", info=client_id.encode()
        ).derive(f"{client_secret}\n{refresh_token}".encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    # -- memory --------------------------------------------------------------------------------------------
    def _usable(self, token: AccessToken | None) -> bool:
        return token is not None and token.is_fresh() and self.accept(token)

    def _remembered(self) -> AccessToken | None:
        with _Memory.lock:
            token = _Memory.tokens.get(self.where)
        return token if self._usable(token) else None

    def _remember(self, token: AccessToken) -> None:
        with _Memory.lock:
            _Memory.tokens[self.where] = token

    def _forget_if(self, token: str) -> None:
        with _Memory.lock:
            held = _Memory.tokens.get(self.where)
            if held is not None and held.token == token:
                del _Memory.tokens[self.where]

    # -- sealed entries ------------------------------------------------------------------------------------
    def _unseal(self, data: bytes | None) -> Entry | None:
        """The entry if it authenticates; None (absent, or refused with a warning) otherwise."""
        if data is None:
            return None
        try:
            record = json.loads(self._fernet.decrypt(data.strip()))
            if record.get("v") != ENTRY_VERSION or record.get("for") != self.name:
                raise ValueError("entry for another cache entry")
            if record["kind"] == "failure":
                return RefreshFailure(float(record["failed_at"]), dict(record["error"]))
            domain = record.get("api_domain")
            if domain is not None and not isinstance(domain, str):
                raise ValueError("api_domain is not text")
            return AccessToken(
                token=str(record["token"]),
                issued_at=float(record["issued_at"]),
                expires_at=float(record["expires_at"]),
                api_domain=domain,
            )
        except (InvalidToken, ValueError, KeyError, TypeError, AttributeError):
            log.warning(
                "Token cache %s does not authenticate (tampered with, corrupt, from an older version or written "
                "under other credentials): ignoring it and requesting a new token",
                self.where,
            )
            return None

    def _seal(self, entry: Entry) -> bytes:
        if isinstance(entry, AccessToken):
            record: dict[str, Any] = {
                "kind": "token",
                "token": entry.token,
                "issued_at": entry.issued_at,
                "expires_at": entry.expires_at,
                "api_domain": entry.api_domain,
            }
        else:
            record = {"kind": "failure", "failed_at": entry.failed_at, "error": entry.error}
        return self._fernet.encrypt(json.dumps({"v": ENTRY_VERSION, "for": self.name, **record}).encode())

    def _read(self) -> AccessToken | None:
        """The stored token, if any (taking the lock): for checks and tests."""
        with self.store.locked(self.name) as held:
            entry = self._unseal(held.read())
        return entry if isinstance(entry, AccessToken) else None

    # -- under the lock ------------------------------------------------------------------------------------
    def _fresh(self, held: LockedEntry) -> AccessToken | None:
        """A usable stored token (maybe another process's, just stored), else None; raises the recorded error
        while a recent refresh failure pauses refreshing."""
        entry = self._unseal(held.read())
        if isinstance(entry, RefreshFailure):
            if entry.pausing():
                entry.raise_paused()
            return None
        if entry is not None and not self.accept(entry):
            log.warning("Token cache %s names an API host this connection does not trust: refreshing", self.where)
            return None
        if self._usable(entry):
            self._remember(entry)
            return entry
        return None

    def _store(self, held: LockedEntry, token: AccessToken) -> AccessToken:
        if not held.write(self._seal(token)):
            log.warning("Lost the token cache lock of %s during the refresh (its lease ran out): the new token is "
                        "used by this process only", self.where)
        self._remember(token)
        return token

    def _record_failure(self, held: LockedEntry, err: ZohoError) -> None:
        try:
            held.write(self._seal(RefreshFailure.of(err)))
        except (OSError, ZohoError) as exc:
            log.warning("Could not record the failed refresh in %s (%s)", self.where, type(exc).__name__)

    def _invalidate(self, held: LockedEntry, token: str) -> None:
        current = self._unseal(held.read())
        if isinstance(current, AccessToken) and current.token == token:
            held.delete()

    # -- sync API ------------------------------------------------------------------------------------------
    def get(self, fetch: Callable[[], AccessToken]) -> AccessToken:
        """Return a fresh token: memory, else the store, else ``fetch()`` under the exclusive lock.

        :param fetch: requests a new token (called at most once, with the lock held).
        """
        token = self._remembered()
        if token is not None:
            return token
        with self.store.locked(self.name) as held:
            token = self._fresh(held)
            if token is not None:
                return token
            try:
                fetched = fetch()
            except ZohoError as err:
                self._record_failure(held, err)
                raise
            return self._store(held, fetched)

    def invalidate(self, token: str) -> None:
        """Drop ``token`` from memory and the store, only if they still hold that same token.

        :param token: the access token Zoho rejected.
        """
        self._forget_if(token)
        with self.store.locked(self.name) as held:
            self._invalidate(held, token)

    # -- async API (store work in threads; the lock is awaited without blocking the event loop) --------------
    async def aget(self, fetch: Callable[[], Awaitable[AccessToken]]) -> AccessToken:
        """Async :meth:`get`.

        :param fetch: a coroutine function requesting a new token (aiohttp).
        """
        token = self._remembered()
        if token is not None:
            return token
        async with self.store.alocked(self.name) as held:
            token = await asyncio.to_thread(self._fresh, held)
            if token is not None:
                return token
            try:
                fetched = await fetch()
            except ZohoError as err:
                await asyncio.to_thread(self._record_failure, held, err)
                raise
            return await asyncio.to_thread(self._store, held, fetched)

    async def ainvalidate(self, token: str) -> None:
        """Async :meth:`invalidate`.

        :param token: the access token Zoho rejected.
        """
        self._forget_if(token)
        async with self.store.alocked(self.name) as held:
            await asyncio.to_thread(self._invalidate, held, token)
