"""OAuth access-token cache shared by every process of a deployment (workers, triggerer) on one host/volume.

Why a file: tasks cannot use the metadata DB and Airflow Variables have no compare-and-set. One file per
(accounts_url, client_id, refresh_token), named by their sha256, holds the access token encrypted with Fernet under a
key derived (HKDF-SHA256) from the client secret + refresh token, plus the expiry and api_domain in clear.
``fcntl.flock`` on a sibling ``.lock`` file serialises read-check-refresh-write, so concurrent processes refresh once.
An in-process memory copy sits in front.

Bound: per cache dir and credentials, at most one token request per token lifetime (a token is reused until
``expires_at - margin``, margin = min(60 s, 10% of its lifetime)), plus one per INVALID_TOKEN rejection of the
current token. Invalidation is compare-and-invalidate: only the token the cache still holds is dropped, so N
processes rejected with the same token cause one refresh, not N.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from zoho_crm.errors import ZohoTransientError

MAX_MARGIN_SECONDS = 60.0
LOCK_TIMEOUT_SECONDS = 120.0


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


class _Memory:
    """Process-wide memory copy of the cached tokens, keyed by cache file."""

    lock = threading.Lock()
    tokens: dict[str, AccessToken] = {}


class TokenCache:
    """File-backed token cache for one set of credentials in ``cache_dir``."""

    def __init__(
        self, cache_dir: Path, *, accounts_url: str, client_id: str, client_secret: str, refresh_token: str
    ) -> None:
        identity = "\n".join((accounts_url, client_id, refresh_token)).encode()
        name = hashlib.sha256(identity).hexdigest()
        self.cache_dir = Path(cache_dir)
        self.path = self.cache_dir / f"{name}.token"
        self.lock_path = self.cache_dir / f"{name}.lock"
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"zoho-crm-token-cache-v1", info=client_id.encode()
        ).derive(f"{client_secret}\n{refresh_token}".encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    # -- memory --------------------------------------------------------------------------------------------
    def _remembered(self) -> AccessToken | None:
        with _Memory.lock:
            token = _Memory.tokens.get(str(self.path))
        return token if token is not None and token.is_fresh() else None

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

    def _read(self) -> AccessToken | None:
        try:
            record = json.loads(self.path.read_text())
            token = self._fernet.decrypt(record["token"].encode()).decode()
            return AccessToken(
                token=token,
                issued_at=float(record["issued_at"]),
                expires_at=float(record["expires_at"]),
                api_domain=record.get("api_domain"),
            )
        except (OSError, ValueError, KeyError, TypeError, InvalidToken):
            return None  # absent, unreadable or written under other credentials: refresh and overwrite

    def _write(self, token: AccessToken) -> None:
        record = {
            "token": self._fernet.encrypt(token.token.encode()).decode(),
            "issued_at": token.issued_at,
            "expires_at": token.expires_at,
            "api_domain": token.api_domain,
        }
        tmp = self.cache_dir / f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(record, handle)
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
        cached = self._read()
        if cached is not None and cached.is_fresh():
            self._remember(cached)
            return cached
        return None

    def _store(self, token: AccessToken) -> AccessToken:
        self._write(token)
        self._remember(token)
        return token

    # -- sync API ------------------------------------------------------------------------------------------
    def get(self, fetch: Callable[[], AccessToken]) -> AccessToken:
        """Return a fresh token: memory, else the shared file, else ``fetch()`` under the exclusive lock."""
        token = self._remembered()
        if token is not None:
            return token
        with self._locked():
            return self._fresh_from_file() or self._store(fetch())

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
            if token is None:
                token = await asyncio.to_thread(self._store, await fetch())
            return token
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
