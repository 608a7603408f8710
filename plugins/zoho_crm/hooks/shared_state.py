"""The one way to a connection's shared state: its token cache and its download ledger, on the backend it names.

``shared_state`` (extra, else ``$ZOHO_CRM_SHARED_STATE``, else ``file``):

- ``file``: both in the directory ``token_cache_dir`` (:attr:`ZohoConnectionConfig.cache_dir`), locked with
  ``flock``: the processes of one host (or hosts mounting one volume).
- ``redis``: both on the Redis server of the Airflow connection ``redis_conn_id`` (extra, else
  ``$ZOHO_CRM_REDIS_CONN_ID``, else ``redis_default``), keys under ``redis_key_prefix`` (else
  ``$ZOHO_CRM_REDIS_KEY_PREFIX``, else ``zoho_crm``): workers on several hosts sharing no directory.

Same guarantees on both: one token refresh at a time per credentials, entries sealed with the same Fernet key,
the same failure marker, at most ``download_limit`` request starts per window.
"""

from __future__ import annotations

from zoho_crm.api.errors import ZohoConfigError
from zoho_crm.hooks.connection import ZohoConnectionConfig
from zoho_crm.hooks.token_cache import FileTokenStore, TokenCache, TokenStore
from zoho_crm.rate_limit.ledger import DownloadLedger, FileDownloadLedger


def _redis_missing(exc: ImportError) -> ZohoConfigError:
    return ZohoConfigError(
        f"shared_state redis needs the Redis provider, which is not installed ({exc.name or exc})",
        code="SHARED_STATE_CONFIG",
        resolution="pip install apache-airflow-providers-redis -c constraints.txt, or use shared_state file.",
    )


def _identity(config: ZohoConnectionConfig) -> str:
    return "\n".join((config.accounts_url, config.client_id, config.refresh_token))


def token_store(config: ZohoConnectionConfig) -> TokenStore:
    """Where the connection's token cache entries live.

    :param config: the parsed Zoho connection.
    """
    if config.shared_state == "redis":
        try:
            from zoho_crm.hooks.redis_state import RedisTokenStore
        except ImportError as exc:
            raise _redis_missing(exc) from None
        return RedisTokenStore(config.redis_conn_id, config.redis_key_prefix)
    return FileTokenStore(config.cache_dir)


def token_cache(config: ZohoConnectionConfig) -> TokenCache:
    """The connection's token cache; a cached token naming an API host the connection does not trust is not used.

    :param config: the parsed Zoho connection.
    """
    return TokenCache(
        token_store(config),
        accounts_url=config.accounts_url,
        client_id=config.client_id,
        client_secret=config.client_secret,
        refresh_token=config.refresh_token,
        accept=lambda token: token.api_domain is None or config.trusts_api_domain(token.api_domain),
    )


def download_ledger(config: ZohoConnectionConfig, *, margin: float, unfinished_grace: float) -> DownloadLedger:
    """The ledger of the download requests made with the connection's credentials.

    :param config: the parsed Zoho connection (``download_limit`` per ``download_window_seconds``).
    :param margin: how long past its window an entry still counts.
    :param unfinished_grace: how much longer a request that never finished counts (the request timeout).
    """
    limits = {
        "limit": config.download_limit,
        "window": config.download_window_seconds,
        "margin": margin,
        "unfinished_grace": unfinished_grace,
    }
    if config.shared_state == "redis":
        try:
            from zoho_crm.rate_limit.redis_ledger import RedisDownloadLedger
        except ImportError as exc:
            raise _redis_missing(exc) from None
        return RedisDownloadLedger(
            config.redis_conn_id, _identity(config), key_prefix=config.redis_key_prefix, **limits
        )
    return FileDownloadLedger(config.cache_dir, _identity(config), **limits)
