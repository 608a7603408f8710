"""OAuth access-token cache shared by every process of a deployment (workers, triggerer) on one host/volume.

Why a file: tasks cannot use the metadata DB and Airflow Variables have no compare-and-set. One file per
(accounts_url, client_id, refresh_token), named by their sha256, holds one entry -- the access token with its expiry
and api_domain, or the marker of a failed refresh -- as JSON encrypted and authenticated as a whole with Fernet
(AES + HMAC-SHA256) under a key derived (HKDF-SHA256) from the client secret + refresh token. An entry that does not
authenticate (tampered with, corrupt, from an older version, other credentials) is treated as absent, with a
warning. ``fcntl.flock`` on a sibling ``.lock`` file serialises read-check-refresh-write, so concurrent processes
refresh once: a process that gets the lock re-reads the file and uses a token another process just stored. An
in-process memory copy sits in front.

A refresh that fails (after its own retries) leaves a failure marker: for ``FAILURE_PAUSE_SECONDS`` every process
that would refresh raises the same error instead of repeating the whole retried sequence, so N waiting processes
behind a slow or failing accounts host add no token requests of their own.

Bound: per cache dir and credentials, at most one token request per token lifetime (a token is reused until
``expires_at - margin``, margin = min(60 s, 10% of its lifetime)), plus one per INVALID_TOKEN rejection of the
current token; a failing accounts host gets at most one retried refresh sequence per ``FAILURE_PAUSE_SECONDS``.
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
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    """Process-wide memory copy of the cached tokens, keyed by cache file."""

    lock = threading.Lock()
    tokens: dict[str, AccessToken] = {}


class TokenCache:
    """File-backed token cache for one set of credentials in ``cache_dir``."""

    def __init__(
        self,
        cache_dir: Path,
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
        self.cache_dir = Path(cache_dir)
        self.path = self.cache_dir / f"{name}.token"
        self.lock_path = self.cache_dir / f"{name}.lock"
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"zoho-crm-token-cache-v1", info=client_id.encode()
        ).derive(f"{client_secret}\n{refresh_token}".encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    # -- memory --------------------------------------------------------------------------------------------
    def _usable(self, token: AccessToken | None) -> bool:
        return token is not None and token.is_fresh() and self.accept(token)

    def _remembered(self) -> AccessToken | None:
        with _Memory.lock:
            token = _Memory.tokens.get(str(self.path))
        return token if self._usable(token) else None

    def _remember(self, token: AccessToken | None) -> None:
        with _Memory.lock:
            if token is None:
                _Memory.tokens.pop(str(self.path), None)
            else:
                _Memory.tokens[str(self.path)] = token

    def _forget_if(self, token: str) -> None:
        with _Memory.lock:
            held = _Memory.tokens.get(str(self.path))
            if held is not None and held.token == token:
                del _Memory.tokens[str(self.path)]

    # -- file ----------------------------------------------------------------------------------------------
    def _open_lock(self) -> int:
        self.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = self._open_lock()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _read_entry(self) -> Entry | None:
        """The file's entry if it authenticates; None (absent, or refused with a warning) otherwise."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("Token cache file %s is unreadable (%s): requesting a new token", self.path, type(exc).__name__)
            return None
        try:
            record = json.loads(self._fernet.decrypt(data.strip()))
            if record.get("v") != ENTRY_VERSION or record.get("for") != self.name:
                raise ValueError("entry for another cache file")
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
                "Token cache file %s does not authenticate (tampered with, corrupt, from an older version or written "
                "under other credentials): ignoring it and requesting a new token",
                self.path,
            )
            return None

    def _read(self) -> AccessToken | None:
        entry = self._read_entry()
        return entry if isinstance(entry, AccessToken) else None

    def _write(self, entry: Entry) -> None:
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
        sealed = self._fernet.encrypt(json.dumps({"v": ENTRY_VERSION, "for": self.name, **record}).encode())
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

    def _invalidate_file(self, token: str) -> None:
        current = self._read()
        if current is not None and current.token == token:
            self.path.unlink(missing_ok=True)

    def _fresh_from_file(self) -> AccessToken | None:
        """Under the lock: a usable token from the file (maybe another process's, just stored), else None; raises
        the recorded error while a recent refresh failure pauses refreshing."""
        entry = self._read_entry()
        if isinstance(entry, RefreshFailure):
            if entry.pausing():
                entry.raise_paused()
            return None
        if entry is not None and not self.accept(entry):
            log.warning("Token cache file %s names an API host this connection does not trust: refreshing", self.path)
            return None
        if self._usable(entry):
            self._remember(entry)
            return entry
        return None

    def _store(self, token: AccessToken) -> AccessToken:
        self._write(token)
        self._remember(token)
        return token

    def _record_failure(self, err: ZohoError) -> None:
        try:
            self._write(RefreshFailure.of(err))
        except OSError as exc:
            log.warning("Could not record the failed refresh in %s (%s)", self.path, type(exc).__name__)

    # -- sync API ------------------------------------------------------------------------------------------
    def get(self, fetch: Callable[[], AccessToken]) -> AccessToken:
        """Return a fresh token: memory, else the shared file, else ``fetch()`` under the exclusive lock."""
        token = self._remembered()
        if token is not None:
            return token
        with self._locked():
            token = self._fresh_from_file()
            if token is not None:
                return token
            try:
                fetched = fetch()
            except ZohoError as err:
                self._record_failure(err)
                raise
            return self._store(fetched)

    def invalidate(self, token: str) -> None:
        """Drop ``token`` from memory and the shared file, only if they still hold that same token."""
        self._forget_if(token)
        with self._locked():
            self._invalidate_file(token)

    # -- async API (file and lock work in threads; the lock is polled so no pool thread waits on it) ----------
    async def _alock(self) -> int:
        fd = await asyncio.to_thread(self._open_lock)
        deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
        while True:
            try:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise ZohoTransientError(
                        f"Waited {LOCK_TIMEOUT_SECONDS:.0f}s for the token cache lock {self.lock_path}: "
                        "another process holds it; check for a hung task.",
                        code="TOKEN_CACHE_LOCK",
                    ) from None
                await asyncio.sleep(0.05)
            except BaseException:
                os.close(fd)
                raise

    async def aget(self, fetch: Callable[[], Awaitable[AccessToken]]) -> AccessToken:
        """Async :meth:`get`: ``fetch`` is a coroutine function (aiohttp), file work runs in threads."""
        token = self._remembered()
        if token is not None:
            return token
        fd = await self._alock()
        try:
            token = await asyncio.to_thread(self._fresh_from_file)
            if token is not None:
                return token
            try:
                fetched = await fetch()
            except ZohoError as err:
                await asyncio.to_thread(self._record_failure, err)
                raise
            return await asyncio.to_thread(self._store, fetched)
        finally:
            os.close(fd)

    async def ainvalidate(self, token: str) -> None:
        """Async :meth:`invalidate`."""
        self._forget_if(token)
        fd = await self._alock()
        try:
            await asyncio.to_thread(self._invalidate_file, token)
        finally:
            os.close(fd)
