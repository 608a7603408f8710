"""Provider metadata, read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point.

Declares the ``zoho_crm`` connection type the Airflow 3.2+ way: its form fields (``conn-fields``, stored unprefixed
in the connection's extra JSON, exactly the keys of the README's HTTP-type extras) and which standard fields are
hidden or relabelled (``ui-field-behaviour``). Importable without Airflow: nothing but literals here.
"""

from __future__ import annotations

from typing import Any

from zoho_crm.api.query import API_VERSIONS, DEFAULT_API_VERSION

PACKAGE_NAME = "airflow-provider-zoho-crm"
VERSION = "1.0.0"
CONN_TYPE = "zoho_crm"
HOOK_CLASS_NAME = "zoho_crm.hooks.zoho_crm.ZohoCRMHook"

DATA_CENTERS = ["us", "eu", "in", "au", "jp", "cn", "ca", "sa"]
ENVIRONMENTS = ["production", "sandbox", "developer"]

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "refresh_token": {
        "label": "Refresh token",
        "description": "The OAuth refresh token of the Self Client (1000.xxxx.yyyy), with the scopes "
        "ZohoCRM.bulk.read, ZohoCRM.modules.{module}.READ and ZohoCRM.settings.fields.READ.",
        "schema": {"type": "string", "format": "password"},
    },
    "data_center": {
        "label": "Data centre",
        "description": "Where the Zoho org lives (the accounts host the client was created on): us "
        "(zoho.com), eu, in, au, jp, cn, ca (zohocloud.ca), sa.",
        "schema": {"type": "string", "enum": DATA_CENTERS, "default": "us"},
    },
    "environment": {
        "label": "Environment",
        "description": "production, or the org's sandbox or developer environment (its own API host).",
        "schema": {"type": "string", "enum": ENVIRONMENTS, "default": "production"},
    },
    "api_version": {
        "label": "API version",
        "description": "Zoho CRM API version; page tokens from v7.",
        "schema": {"type": "string", "enum": list(reversed(API_VERSIONS)), "default": DEFAULT_API_VERSION},
    },
    "download_limit": {
        "label": "Download limit",
        "description": "Zoho's download rate limit: requests per window (the pool zoho_crm_downloads must have "
        "this many slots).",
        "schema": {"type": ["integer", "null"], "default": 10, "minimum": 1},
    },
    "download_window_seconds": {
        "label": "Download window (seconds)",
        "description": "The window of that limit; Zoho's is 60 s.",
        "schema": {"type": ["number", "null"], "default": 60, "minimum": 1},
    },
    "api_domain": {
        "label": "API host override",
        "description": "Optional: call this API host instead of the data centre's (a proxy, the simulator), "
        "e.g. https://www.zohoapis.eu. Empty: from the data centre and environment.",
        "schema": {"type": ["string", "null"]},
    },
    "accounts_url": {
        "label": "Accounts host override",
        "description": "Optional: the OAuth accounts host instead of the data centre's, e.g. "
        "https://accounts.zoho.eu. Empty: from the data centre.",
        "schema": {"type": ["string", "null"]},
    },
    "max_download_bytes": {
        "label": "Max download bytes",
        "description": "Optional: cap of one downloaded page (default 2 GiB).",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
    "token_cache_dir": {
        "label": "Token cache directory",
        "description": "Optional: the access-token cache shared by every process of the deployment (default "
        "$ZOHO_CRM_TOKEN_CACHE_DIR or $AIRFLOW_HOME/zoho_crm_token_cache).",
        "schema": {"type": ["string", "null"]},
    },
    "shared_state": {
        "label": "Shared state",
        "description": "Optional: where the token cache and the download ledger live: file (the token cache "
        "directory; one host) or redis (the Redis connection below; workers on several hosts sharing no "
        "directory). Empty: $ZOHO_CRM_SHARED_STATE, else file.",
        "schema": {"type": ["string", "null"]},
    },
    "redis_conn_id": {
        "label": "Redis connection id",
        "description": "Optional, for shared state redis: the Airflow connection (type Redis) of the server "
        "(empty: $ZOHO_CRM_REDIS_CONN_ID, else redis_default).",
        "schema": {"type": ["string", "null"]},
    },
    "redis_key_prefix": {
        "label": "Redis key prefix",
        "description": "Optional, for shared state redis: the prefix of its keys (empty: "
        "$ZOHO_CRM_REDIS_KEY_PREFIX, else zoho_crm).",
        "schema": {"type": ["string", "null"]},
    },
}
"""The form's fields; each value is stored in the connection's extra under its name."""

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "schema", "port", "extra"],
    "relabeling": {"login": "Client ID", "password": "Client Secret"},
    "placeholders": {
        "login": "1000.XXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "refresh_token": "1000.xxxx.yyyy",
        "api_domain": "https://www.zohoapis.com",
        "accounts_url": "https://accounts.zoho.com",
        "shared_state": "file",
        "redis_conn_id": "redis_default",
    },
}


def get_provider_info() -> dict[str, Any]:
    """The provider's info (the runtime form of a provider.yaml)."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "Zoho CRM",
        "description": "Zoho CRM Bulk Read exports: a hook with a shared OAuth token cache, operators, a "
        "deferrable sensor and trigger, and the Zoho CRM connection type.",
        "versions": [VERSION],
        "integrations": [
            {
                "integration-name": "Zoho CRM",
                "external-doc-url": "https://www.zoho.com/crm/developer/docs/api/v8/bulk-read/overview.html",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Zoho CRM", "python-modules": ["zoho_crm.hooks.zoho_crm"]}],
        "operators": [
            {
                "integration-name": "Zoho CRM",
                "python-modules": [
                    "zoho_crm.operators.bulk_read",
                    "zoho_crm.operators.pages",
                    "zoho_crm.operators.download",
                ],
            }
        ],
        "sensors": [{"integration-name": "Zoho CRM", "python-modules": ["zoho_crm.sensors.bulk_read_job"]}],
        "triggers": [{"integration-name": "Zoho CRM", "python-modules": ["zoho_crm.triggers.bulk_read_job", "zoho_crm.triggers.slot_hold"]}],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": HOOK_CLASS_NAME,
                "hook-name": "Zoho CRM",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
