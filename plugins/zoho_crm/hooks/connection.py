"""The ``zoho_crm_default`` connection: parsing, checks and the Zoho host tables per data centre/environment.

Two connection forms, one meaning: the provider's ``zoho_crm`` type (the UI form's fields, which Airflow stores in
the extra JSON under their own names; a ``extra__zoho_crm__<name>`` key, Airflow 2's prefixed form, is read too) and
the README's ``http`` type with the same keys typed as extras. Both read the same extra keys.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoho_crm.api.errors import ZohoConfigError
from zoho_crm.api.query import API_VERSIONS

DATA_CENTERS = ("us", "eu", "in", "au", "jp", "cn", "ca", "sa")
ENVIRONMENTS = ("production", "sandbox", "developer")

_API_DOMAIN_SUFFIX = {
    "us": "zohoapis.com",
    "eu": "zohoapis.eu",
    "in": "zohoapis.in",
    "au": "zohoapis.com.au",
    "jp": "zohoapis.jp",
    "cn": "zohoapis.com.cn",
    "ca": "zohoapis.ca",
    "sa": "zohoapis.sa",
}
_ENV_PREFIX = {"production": "www", "sandbox": "sandbox", "developer": "developer"}
ACCOUNTS_URLS = {
    "us": "https://accounts.zoho.com",
    "eu": "https://accounts.zoho.eu",
    "in": "https://accounts.zoho.in",
    "au": "https://accounts.zoho.com.au",
    "jp": "https://accounts.zoho.jp",
    "cn": "https://accounts.zoho.com.cn",
    "ca": "https://accounts.zohocloud.ca",
    "sa": "https://accounts.zoho.sa",
}

CONN_TYPE = "zoho_crm"
PREFIXED_EXTRA = f"extra__{CONN_TYPE}__"
"""Airflow 2's key prefix of a connection type's form fields in the extra (read as the unprefixed key)."""

CONNECTION_EXAMPLE = json.dumps(
    {
        "conn_type": CONN_TYPE,
        "login": "<client id, e.g. 1000.ABC123>",
        "password": "<client secret>",
        "extra": {
            "refresh_token": "<refresh token>",
            "data_center": "us",
            "environment": "production",
            "api_version": "v8",
        },
    }
)


def api_domain_for(data_center: str, environment: str = "production") -> str:
    """Zoho API host for a data centre and environment, e.g. ``https://sandbox.zohoapis.eu``."""
    return f"https://{_ENV_PREFIX[environment]}.{_API_DOMAIN_SUFFIX[data_center]}"


ZOHO_API_HOSTS = frozenset(api_domain_for(dc, env) for dc in DATA_CENTERS for env in ENVIRONMENTS)
"""Every Zoho API host (each data centre's production, sandbox and developer host)."""


def origin(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL, lower case ("" when it is not one)."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def _problem(conn_id: str, what: str) -> ZohoConfigError:
    return ZohoConfigError(
        f"Connection {conn_id!r}: {what}. A correct connection (e.g. AIRFLOW_CONN_{conn_id.upper()} as JSON) "
        f"looks like {CONNECTION_EXAMPLE}",
        code="CONNECTION_CONFIG",
        details={"problem": what},
        resolution="Fix the connection and run the task again.",
    )


def connection_extra(conn: Any) -> dict[str, Any]:
    """The connection's Zoho settings from its extra: the keys as the README names them; a form field stored
    Airflow 2's way (``extra__zoho_crm__<name>``) counts when the plain key is absent or empty."""
    extra = dict(conn.extra_dejson or {})
    for key in [key for key in extra if key.startswith(PREFIXED_EXTRA)]:
        value = extra.pop(key)
        name = key[len(PREFIXED_EXTRA):]
        if extra.get(name) in (None, ""):
            extra[name] = value
    return extra


def _url(conn_id: str, name: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    text = str(value).strip().rstrip("/")
    if not text.startswith(("http://", "https://")):
        raise _problem(conn_id, f"extra {name} {text!r} must be an http(s) URL like https://www.zohoapis.com")
    return text


def _positive(conn_id: str, name: str, value: Any, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number <= 0:
        raise _problem(conn_id, f"extra {name} must be a positive number, not {value!r}")
    return number


SHARED_STATE_BACKENDS = ("file", "redis")
"""Where the token cache and the download ledger live: ``file`` (a directory, one host), ``redis`` (several hosts)."""
SHARED_STATE_ENV = "ZOHO_CRM_SHARED_STATE"
REDIS_CONN_ID_ENV = "ZOHO_CRM_REDIS_CONN_ID"
REDIS_KEY_PREFIX_ENV = "ZOHO_CRM_REDIS_KEY_PREFIX"
DEFAULT_REDIS_CONN_ID = "redis_default"
DEFAULT_REDIS_KEY_PREFIX = "zoho_crm"


def _deployment_setting(extra: dict[str, Any], name: str, env: str, default: str) -> str:
    """The extra ``name``, else the deployment's ``$env``, else ``default`` (empty values count as unset)."""
    value = extra.get(name)
    if value in (None, ""):
        value = os.environ.get(env) or default
    return str(value).strip()


DEFAULT_MAX_DOWNLOAD_BYTES = 2 * 2**30
"""Cap of one downloaded page (extra ``max_download_bytes``); a Bulk Read page holds at most 200,000 records."""


@dataclass(frozen=True)
class ZohoConnectionConfig:
    """Everything the hook needs from the connection; secrets are excluded from repr."""

    conn_id: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    data_center: str = "us"
    environment: str = "production"
    api_version: str = "v8"
    api_domain_override: str | None = None
    accounts_url_override: str | None = None
    download_limit: int = 10
    download_window_seconds: float = 60.0
    token_cache_dir: str | None = None
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    shared_state: str = "file"
    redis_conn_id: str = DEFAULT_REDIS_CONN_ID
    redis_key_prefix: str = DEFAULT_REDIS_KEY_PREFIX

    @classmethod
    def from_connection(cls, conn: Any) -> ZohoConnectionConfig:
        """Build from an Airflow Connection; raise ZohoConfigError naming the missing or wrong piece."""
        conn_id = getattr(conn, "conn_id", None) or "zoho_crm_default"
        try:
            extra = connection_extra(conn)
        except Exception:
            raise _problem(conn_id, "extra is not valid JSON") from None
        if not conn.login:
            raise _problem(conn_id, "login (the OAuth client id) is missing")
        if not conn.password:
            raise _problem(conn_id, "password (the OAuth client secret) is missing")
        if not extra.get("refresh_token"):
            raise _problem(conn_id, "extra refresh_token is missing")
        data_center = str(extra.get("data_center") or "us").lower()
        if data_center not in DATA_CENTERS:
            raise _problem(conn_id, f"extra data_center {data_center!r} is unknown (use {', '.join(DATA_CENTERS)})")
        environment = str(extra.get("environment") or "production").lower()
        if environment not in ENVIRONMENTS:
            raise _problem(
                conn_id, f"extra environment {environment!r} is unknown (use {', '.join(ENVIRONMENTS)})"
            )
        api_version = str(extra.get("api_version") or "v8").lower()
        if api_version not in API_VERSIONS:
            raise _problem(conn_id, f"extra api_version {api_version!r} is unknown (use one of {', '.join(API_VERSIONS)})")
        shared_state = _deployment_setting(extra, "shared_state", SHARED_STATE_ENV, "file").lower()
        if shared_state not in SHARED_STATE_BACKENDS:
            raise _problem(
                conn_id, f"shared_state {shared_state!r} (extra, else ${SHARED_STATE_ENV}) is unknown: use file "
                "(token cache and download ledger in token_cache_dir, one host) or redis (on the Redis connection "
                "redis_conn_id, several hosts)",
            )
        return cls(
            conn_id=conn_id,
            client_id=str(conn.login),
            client_secret=str(conn.password),
            refresh_token=str(extra["refresh_token"]),
            data_center=data_center,
            environment=environment,
            api_version=api_version,
            api_domain_override=_url(conn_id, "api_domain", extra.get("api_domain")),
            accounts_url_override=_url(conn_id, "accounts_url", extra.get("accounts_url")),
            download_limit=int(_positive(conn_id, "download_limit", extra.get("download_limit"), 10)),
            download_window_seconds=_positive(
                conn_id, "download_window_seconds", extra.get("download_window_seconds"), 60.0
            ),
            token_cache_dir=str(extra["token_cache_dir"]) if extra.get("token_cache_dir") else None,
            max_download_bytes=int(_positive(
                conn_id, "max_download_bytes", extra.get("max_download_bytes"), DEFAULT_MAX_DOWNLOAD_BYTES
            )),
            shared_state=shared_state,
            redis_conn_id=_deployment_setting(extra, "redis_conn_id", REDIS_CONN_ID_ENV, DEFAULT_REDIS_CONN_ID),
            redis_key_prefix=_deployment_setting(
                extra, "redis_key_prefix", REDIS_KEY_PREFIX_ENV, DEFAULT_REDIS_KEY_PREFIX
            ),
        )

    @property
    def accounts_url(self) -> str:
        """OAuth accounts host (override, else the data centre table)."""
        return self.accounts_url_override or ACCOUNTS_URLS[self.data_center]

    @property
    def token_url(self) -> str:
        return f"{self.accounts_url}/oauth/v2/token"

    @property
    def cache_dir(self) -> Path:
        """Token cache dir (the file backend's place, see :attr:`shared_state`): extra token_cache_dir, else
        $ZOHO_CRM_TOKEN_CACHE_DIR, else $AIRFLOW_HOME/zoho_crm_token_cache."""
        if self.token_cache_dir:
            return Path(self.token_cache_dir).expanduser()
        if os.environ.get("ZOHO_CRM_TOKEN_CACHE_DIR"):
            return Path(os.environ["ZOHO_CRM_TOKEN_CACHE_DIR"]).expanduser()
        airflow_home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
        return Path(airflow_home) / "zoho_crm_token_cache"

    @property
    def uses_token_api_domain(self) -> bool:
        """True when the token answer's api_domain picks the API host (production without an override)."""
        return self.api_domain_override is None and self.environment == "production"

    def trusts_api_domain(self, api_domain: str) -> bool:
        """True for a Zoho API host (any data centre/environment) or the host of the connection's override."""
        found = origin(api_domain)
        if not found:
            return False
        if self.api_domain_override and found == origin(self.api_domain_override):
            return True
        return found in ZOHO_API_HOSTS and api_domain.strip().rstrip("/").lower() == found

    def api_base(self, token_api_domain: str | None = None) -> str:
        """API host to call: the extra api_domain override, else the environment's host for sandbox/developer,
        else (production) the token answer's api_domain if it is a trusted host, else the data centre table."""
        if self.api_domain_override:
            return self.api_domain_override
        if self.environment == "production" and token_api_domain and self.trusts_api_domain(token_api_domain):
            return token_api_domain.strip().rstrip("/")
        return api_domain_for(self.data_center, self.environment)

    def bulk_read_path(self, job_id: str | None = None, *, result: bool = False) -> str:
        path = f"/crm/bulk/{self.api_version}/read"
        if job_id is not None:
            path += f"/{job_id}"
        if result:
            path += "/result"
        return path

    def fields_path(self) -> str:
        return f"/crm/{self.api_version}/settings/fields"
