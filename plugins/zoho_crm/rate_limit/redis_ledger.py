"""The download ledger on Redis: the same rule as the file ledger, for workers on several hosts.

One sorted set per credentials (``<prefix>:{<name>}:downloads``): member = request id, score = the moment the
entry stops counting (start + window + margin + unfinished grace while the request runs; end + window + margin
once it finished). A reservation is one Lua script, so it is atomic across every process: drop what stopped
counting, then either add the request or answer when the soonest place frees. The set expires only after its
last entry stops counting, so the entries of a killed worker keep counting for their whole window. Request ids
are random and the scores are times: nothing secret is stored.

Times are the callers' clocks (as with the file ledger): the hosts' clocks must agree (NTP) to well within the
hold margin.
"""

from __future__ import annotations

import secrets
import time

from zoho_crm.hooks.connection import DEFAULT_REDIS_KEY_PREFIX
from zoho_crm.hooks.redis_state import redis_client, redis_errors, redis_key
from zoho_crm.rate_limit.ledger import DownloadLedger, Reservation

_RESERVE = """
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1])
local count = redis.call('zcard', KEYS[1])
local limit = tonumber(ARGV[2])
if count >= limit then
  local soonest = redis.call('zrange', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  return {0, soonest[2], count}
end
redis.call('zadd', KEYS[1], ARGV[3], ARGV[4])
local last = redis.call('zrange', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('pexpire', KEYS[1], math.ceil((tonumber(last[2]) - tonumber(ARGV[1])) * 1000) + 1000)
return {1, '', count + 1}
"""
"""KEYS: the ledger. ARGV: now, limit, the new entry's score, its request id. Returns {added, soonest, count}."""

_FINISH = """
redis.call('zadd', KEYS[1], ARGV[2], ARGV[3])
local last = redis.call('zrange', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('pexpire', KEYS[1], math.ceil((tonumber(last[2]) - tonumber(ARGV[1])) * 1000) + 1000)
return 1
"""
"""KEYS: the ledger. ARGV: the end, the entry's new score, its request id."""


class RedisDownloadLedger(DownloadLedger):
    """The ledger as a Redis sorted set, changed only by atomic scripts.

    :param redis_conn_id: the Airflow connection of the Redis server.
    :param key_prefix: the prefix of every key (as the token store's).
    :param identity: the credentials (see :class:`~zoho_crm.rate_limit.ledger.DownloadLedger`).
    """

    def __init__(
        self,
        redis_conn_id: str,
        identity: str,
        *,
        key_prefix: str = DEFAULT_REDIS_KEY_PREFIX,
        limit: int,
        window: float,
        margin: float,
        unfinished_grace: float,
    ) -> None:
        super().__init__(identity, limit=limit, window=window, margin=margin, unfinished_grace=unfinished_grace)
        self.redis_conn_id = redis_conn_id
        self.key = redis_key(key_prefix, self.name, "downloads")

    def reserve(self, now: float | None = None) -> Reservation:
        now = time.time() if now is None else now
        request_id = secrets.token_hex(8)
        with redis_errors(self.redis_conn_id):
            script = redis_client(self.redis_conn_id).register_script(_RESERVE)
            added, soonest, count = script(
                keys=[self.key], args=[repr(now), self.limit, repr(self.expires(now, finished=False)), request_id]
            )
        if not added:
            return Reservation(None, max(float(soonest) - now, 0.0), int(count))
        return Reservation(request_id, 0.0, int(count))

    def finish(self, request_id: str, ended_at: float | None = None) -> None:
        ended_at = time.time() if ended_at is None else ended_at
        with redis_errors(self.redis_conn_id):
            script = redis_client(self.redis_conn_id).register_script(_FINISH)
            script(keys=[self.key], args=[repr(ended_at), repr(self.expires(ended_at, finished=True)), request_id])
