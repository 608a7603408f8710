"""The connection: host tables per data centre/environment, overrides, and errors for missing pieces."""

from __future__ import annotations

import json

import pytest
from airflow.sdk import Connection

from tests.hooks.zoho_conn import CLIENT_SECRET, REFRESH_TOKEN, assert_no_secret
from zoho_crm.api.errors import ZohoConfigError
from zoho_crm.hooks.connection import ZohoConnectionConfig
from zoho_crm.hooks.zoho_crm import ZohoCRMHook

API_HOSTS = {
    "us": "zohoapis.com",
    "eu": "zohoapis.eu",
    "in": "zohoapis.in",
    "au": "zohoapis.com.au",
    "jp": "zohoapis.jp",
    "cn": "zohoapis.com.cn",
    "ca": "zohoapis.ca",
    "sa": "zohoapis.sa",
}
ACCOUNTS = {
    "us": "https://accounts.zoho.com",
    "eu": "https://accounts.zoho.eu",
    "in": "https://accounts.zoho.in",
    "au": "https://accounts.zoho.com.au",
    "jp": "https://accounts.zoho.jp",
    "cn": "https://accounts.zoho.com.cn",
    "ca": "https://accounts.zohocloud.ca",
    "sa": "https://accounts.zoho.sa",
}
PREFIX = {"production": "www", "sandbox": "sandbox", "developer": "developer"}


def conn(login="1000.ID", password=CLIENT_SECRET, **extra) -> Connection:
    extra = {"refresh_token": REFRESH_TOKEN, **extra}
    return Connection(conn_id="zoho_crm_default", conn_type="http", login=login, password=password,
                      extra=json.dumps(extra))


@pytest.mark.parametrize("environment", list(PREFIX))
@pytest.mark.parametrize("data_center", list(API_HOSTS))
def test_hosts_for_every_data_centre_and_environment(data_center, environment):
    config = ZohoConnectionConfig.from_connection(conn(data_center=data_center, environment=environment))
    assert config.api_base() == f"https://{PREFIX[environment]}.{API_HOSTS[data_center]}"
    assert config.accounts_url == ACCOUNTS[data_center]
    assert config.token_url == f"{ACCOUNTS[data_center]}/oauth/v2/token"
    assert config.bulk_read_path("123", result=True) == "/crm/bulk/v8/read/123/result"


def test_defaults_and_overrides():
    config = ZohoConnectionConfig.from_connection(conn())
    assert (config.data_center, config.environment, config.api_version) == ("us", "production", "v8")
    assert (config.download_limit, config.download_window_seconds) == (10, 60.0)
    assert config.api_base("https://www.zohoapis.eu") == "https://www.zohoapis.eu", "token answer's api_domain wins"
    over = ZohoConnectionConfig.from_connection(
        conn(api_domain="http://127.0.0.1:9/", accounts_url="http://127.0.0.1:9", api_version="v6",
             download_limit="5", download_window_seconds="4")
    )
    assert over.api_base("https://www.zohoapis.eu") == "http://127.0.0.1:9", "an explicit override wins"
    assert over.token_url == "http://127.0.0.1:9/oauth/v2/token"
    assert over.fields_path() == "/crm/v6/settings/fields"
    assert (over.download_limit, over.download_window_seconds) == (5, 4.0)


def test_repr_has_no_secret():
    text = repr(ZohoConnectionConfig.from_connection(conn()))
    assert "1000.ID" in text
    assert_no_secret(text)


@pytest.mark.parametrize(
    ("connection", "named"),
    [
        (conn(login=None), "login (the OAuth client id)"),
        (conn(password=None), "password (the OAuth client secret)"),
        (Connection(conn_id="zoho_crm_default", conn_type="http", login="x", password=CLIENT_SECRET), "refresh_token"),
        (conn(data_center="mars"), "data_center 'mars'"),
        (conn(environment="prod"), "environment 'prod'"),
        (conn(api_version="v9"), "api_version 'v9'"),
        (conn(api_domain="www.zohoapis.com"), "api_domain"),
        (conn(download_limit="0"), "download_limit"),
    ],
)
def test_missing_or_wrong_piece_is_named_with_an_example(connection, named):
    with pytest.raises(ZohoConfigError) as caught:
        ZohoConnectionConfig.from_connection(connection)
    text = str(caught.value)
    assert named in text
    assert '"refresh_token": "<refresh token>"' in text and '"data_center": "us"' in text
    assert caught.value.fails_fast
    assert_no_secret(text)


def test_env_var_connection_through_the_hook(monkeypatch, tmp_path):
    monkeypatch.setenv(
        "AIRFLOW_CONN_ZOHO_EU",
        json.dumps({"conn_type": "http", "login": "1000.EU", "password": CLIENT_SECRET,
                    "extra": {"refresh_token": REFRESH_TOKEN, "data_center": "eu", "environment": "sandbox",
                              "token_cache_dir": str(tmp_path)}}),
    )
    config = ZohoCRMHook("zoho_eu").config
    assert config.client_id == "1000.EU"
    assert config.api_base() == "https://sandbox.zohoapis.eu"
    assert config.cache_dir == tmp_path


def test_cache_dir_fallbacks(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOHO_CRM_TOKEN_CACHE_DIR", str(tmp_path / "env"))
    assert ZohoConnectionConfig.from_connection(conn()).cache_dir == tmp_path / "env"
    monkeypatch.delenv("ZOHO_CRM_TOKEN_CACHE_DIR")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    assert ZohoConnectionConfig.from_connection(conn()).cache_dir == tmp_path / "home" / "zoho_crm_token_cache"


def test_which_api_host_is_used_when():
    """override > the environment's host for sandbox/developer > a trusted token api_domain (production) > table."""
    token_domain = "https://www.zohoapis.com"  # Zoho's token answer names the data centre's production host
    sandbox = ZohoConnectionConfig.from_connection(conn(data_center="eu", environment="sandbox"))
    developer = ZohoConnectionConfig.from_connection(conn(data_center="in", environment="developer"))
    production = ZohoConnectionConfig.from_connection(conn(data_center="eu"))
    overridden = ZohoConnectionConfig.from_connection(
        conn(data_center="eu", environment="sandbox", api_domain="http://proxy.local:8080")
    )
    assert sandbox.api_base(token_domain) == "https://sandbox.zohoapis.eu"
    assert developer.api_base(token_domain) == "https://developer.zohoapis.in"
    assert production.api_base(token_domain) == token_domain
    assert production.api_base(None) == "https://www.zohoapis.eu"
    assert overridden.api_base(token_domain) == "http://proxy.local:8080"
    assert production.api_base("https://evil.example") == "https://www.zohoapis.eu", "an untrusted host is not used"
    assert production.trusts_api_domain("https://sandbox.zohoapis.com.au")
    for untrusted in ("https://www.zohoapis.com.evil.example", "http://www.zohoapis.com", "https://zohoapis.com",
                      "https://www.zohoapis.com/crm", "ftp://www.zohoapis.com", "javascript:alert(1)"):
        assert not production.trusts_api_domain(untrusted), untrusted
    assert overridden.trusts_api_domain("http://proxy.local:8080/") and not overridden.trusts_api_domain(
        "http://proxy.local:8081"
    )
