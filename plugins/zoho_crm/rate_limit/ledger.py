"""A file ledger of recent download requests, shared by every process that downloads with the same credentials.

The pool is the rate limit's first line (see :mod:`zoho_crm.operators.download`). The ledger is the second: before
each download request a task reserves a place in it, and only ``limit`` requests may be in it for a window. So the
limit holds even where the pool alone would not: a pool with more slots than the connection's ``download_limit``,
or a worker killed mid-request whose slot Airflow frees before its window is over.

An entry counts until ``time + window + margin``: ``time`` is the request's start while it runs, then the moment
its answer (or error) arrived, after Zoho saw it: the same anchor as the pool hold. The entry of a request that
never finished (its process died) counts for ``unfinished_grace`` seconds more (the request timeout), because Zoho
may have received it that much later.
The ledger lives where the token cache does (one per deployment): :class:`FileDownloadLedger` in ``token_cache_dir``,
read and rewritten under an exclusive ``fcntl.flock`` and written atomically (one host, or a volume every host
mounts); ``zoho_crm.rate_limit.redis_ledger.RedisDownloadLedger`` on Redis (several hosts, no shared filesystem).
The connection picks one (``zoho_crm.hooks.shared_state``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from zoho_crm.files.atomic import write_json_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reservation:
    """The outcome of :meth:`DownloadLedger.reserve`: a request id, or how long to wait before asking again."""

    request_id: str | None
    wait_seconds: float = 0.0
    in_window: int = 0


class DownloadLedger(ABC):
    """At most ``limit`` download requests per ``window`` seconds, across every process using the same credentials.

    :param identity: the credentials (accounts host, client id, refresh token): each set has its own ledger,
        named by its sha256.
    :param limit: requests allowed per window (the connection's ``download_limit``).
    :param window: the window, seconds.
    :param margin: how long past its window an entry still counts (clock and network slack).
    :param unfinished_grace: how much longer a request that never finished counts (the request timeout).
    """

    def __init__(self, identity: str, *, limit: int, window: float, margin: float, unfinished_grace: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"download limit must be >= 1 and window > 0, got {limit} per {window} s")
        self.name = hashlib.sha256(identity.encode()).hexdigest()
        self.limit = limit
        self.window = window
        self.margin = margin
        self.unfinished_grace = unfinished_grace

    def expires(self, time_: float, *, finished: bool) -> float:
        """When an entry anchored at ``time_`` stops counting."""
        return time_ + self.window + self.margin + (0.0 if finished else self.unfinished_grace)

    @abstractmethod
    def reserve(self, now: float | None = None) -> Reservation:
        """Record a request starting now if fewer than ``limit`` are in the window; else say how long to wait.

        :param now: epoch seconds (default: the clock).
        """

    @abstractmethod
    def finish(self, request_id: str, ended_at: float | None = None) -> None:
        """The request was answered or failed (Zoho has seen it, if ever): it counts for a window from ``ended_at``.

        :param request_id: the reservation's id.
        :param ended_at: epoch seconds of the answer or error (default: the clock).
        """


class FileDownloadLedger(DownloadLedger):
    """The ledger as a JSON file ``<name>.downloads.json`` in ``cache_dir``, under ``flock``.

    :param cache_dir: the directory (the token cache's), created on first use.
    """

    def __init__(
        self,
        cache_dir: Path,
        identity: str,
        *,
        limit: int,
        window: float,
        margin: float,
        unfinished_grace: float,
    ) -> None:
        super().__init__(identity, limit=limit, window=window, margin=margin, unfinished_grace=unfinished_grace)
        self.path = Path(cache_dir) / f"{self.name}.downloads.json"
        self.lock_path = Path(cache_dir) / f"{self.name}.downloads.lock"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict]]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            entries = self._read()
            yield entries
            write_json_atomic(self.path, entries)
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _read(self) -> dict[str, dict]:
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            log.warning("Download ledger %s is unreadable; starting it afresh", self.path)
            return {}
        return entries if isinstance(entries, dict) else {}

    def _expires(self, entry: dict) -> float:
        return self.expires(float(entry.get("time", 0.0)), finished=bool(entry.get("finished")))

    def reserve(self, now: float | None = None) -> Reservation:
        with self._locked() as entries:
            now = time.time() if now is None else now
            for request_id in [key for key, entry in entries.items() if self._expires(entry) <= now]:
                del entries[request_id]
            if len(entries) >= self.limit:
                soonest = sorted(self._expires(entry) for entry in entries.values())[len(entries) - self.limit]
                return Reservation(None, max(soonest - now, 0.0), len(entries))
            request_id = secrets.token_hex(8)
            entries[request_id] = {"time": now, "finished": False}
            return Reservation(request_id, 0.0, len(entries))

    def finish(self, request_id: str, ended_at: float | None = None) -> None:
        with self._locked() as entries:
            entries[request_id] = {"time": time.time() if ended_at is None else ended_at, "finished": True}
