"""Every workaround of an Airflow behaviour this package relies on, in one place.

Each workaround is a named helper here, with the Airflow issue and the version it was seen on, and is listed in
:data:`WORKAROUNDS`. ``tests/test_airflow_compat.py`` reproduces the cheap ones and fails once the installed
Airflow is newer than the version a workaround was checked on: then check the issue, and either remove the
workaround or record the new version it was checked on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk import Asset, AssetAlias, BaseXCom, Context


@dataclass(frozen=True)
class Workaround:
    """An Airflow behaviour worked around: where it is reported and the Airflow version it was last checked on."""

    name: str
    issue: str
    checked_on: str
    summary: str


WORKAROUNDS: tuple[Workaround, ...] = (
    Workaround(
        "MIN_DEFERRAL_SECONDS", "apache/airflow#72716", "3.3.2",
        "a deferred task resumed before the scheduler processed its worker's exit is failed as 'state changed "
        "externally'",
    ),
    Workaround(
        "push_result_before_trigger_success", "TaskSuccessEvent(xcoms=...)", "3.3.2",
        "XComs of a TaskSuccessEvent are stored JSON-encoded twice: downstream tasks get a string, not the value",
    ),
    Workaround(
        "asset_update_task_kwargs", "Asset / AssetAlias first use", "3.3.2",
        "two tasks naming a new Asset through an alias at once race to insert it; the second fails after its work",
    ),
    Workaround(
        "unwrap_lazy_context_value", "context proxies", "3.3.2",
        "lazily fetched context values (prev_data_interval_end_success) are proxies: a proxy of None is not None",
    ),
    Workaround(
        "RESCHEDULE_MIN_POKE_SECONDS", "apache/airflow#71172", "3.3.2",
        "a reschedule-mode sensor can be failed by a late executor event when it pokes faster than the scheduler",
    ),
    Workaround(
        "BaseUrlHttpHook", "HttpHook private attributes", "3.3.2",
        "HttpHook has no public way to bind a base URL without reading the connection's host and credentials",
    ),
    Workaround(
        "ConnectionTestPortFix", "apache/airflow#73298", "3.3.2",
        "the UI tests a saved connection with port 0, which the API refuses as a different port",
    ),
)


MIN_DEFERRAL_SECONDS = 10.0
"""The shortest deferral of any task in this package (apache/airflow#72716, open in 3.3.2): a trigger that fires
before the scheduler has processed the exit of the worker that deferred the task meets that exit's stale
"success", and the resumed attempt is failed as "state changed externally"."""

RESCHEDULE_MIN_POKE_SECONDS = 15.0
"""The shortest safe poke interval of a ``mode="reschedule"`` sensor (apache/airflow#71172): a faster one can be
failed by a late executor event."""


def push_result_before_trigger_success(context: Context, value: Any) -> None:
    """Push a task's return value now, for a task that will end as success in the triggerer.

    Airflow 3.3.2 stores the XComs of a ``TaskSuccessEvent`` through ``XComModel.set`` with ``serialize=True``,
    on top of the JSON column's own encoding: downstream tasks would read a JSON string instead of the value.

    :param context: the running task's context.
    :param value: the JSON-serialisable return value.
    """
    context["ti"].xcom_push(BaseXCom.XCOM_RETURN_KEY, value)


def asset_update_task_kwargs(alias: AssetAlias, asset_uris: Iterable[str]) -> dict[str, Any]:
    """Task arguments for a task that updates one of ``asset_uris`` through ``alias``, without the first-use race.

    Airflow 3.3 inserts an Asset, and its link to an alias, the first time an alias names it; two tasks doing so
    at once race on the insert and the second is failed after its work is done. So every Asset is declared up
    front (as an inlet, which emits no event, so the DAG processor creates it), the alias is one per DAG, and the
    DAG's updating tasks run one at a time.

    :param alias: the DAG's own alias.
    :param asset_uris: every Asset the task may update.
    """
    return {"outlets": [alias], "inlets": [Asset(uri) for uri in asset_uris], "max_active_tis_per_dag": 1}


def unwrap_lazy_context_value(value: Any) -> Any:
    """The object behind a lazily fetched context value (``prev_data_interval_end_success``): Airflow hands a
    proxy, and a proxy of None is not None."""
    return getattr(value, "__wrapped__", value)


class BaseUrlHttpHook(HttpHook):
    """``HttpHook`` bound to one base URL whose sessions carry only the headers passed in: none of the
    connection's host, login, password or extra headers (those are Zoho OAuth secrets here).

    Relies on ``HttpHook`` internals of the pinned provider: ``_base_url_initialized`` (skip reading the
    connection's host) and ``_configure_session_from_mount_adapters`` (keep the provider's adapter mounting).

    :param base_url: scheme and host every request goes to.
    :param method: the HTTP method.
    :param conn_id: the connection id (for logs and the provider's adapter settings).
    """

    def __init__(self, base_url: str, method: str, conn_id: str) -> None:
        super().__init__(method=method, http_conn_id=conn_id)
        self.base_url = base_url
        self._base_url_initialized = True

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        self.merged_extra = dict(extra_options or {})
        session = requests.Session()
        session.stream = bool(self.merged_extra.get("stream", False))
        session.trust_env = True
        session = self._configure_session_from_mount_adapters(session)
        if headers:
            session.headers.update(headers)
        return session


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONNECTION_TEST_PATH = "/api/v2/connections/test"
MAX_TEST_BODY_BYTES = 1024 * 1024
"""A connection test request larger than this is passed on as it is (a connection is a few KiB)."""


def portless(body: bytes) -> bytes:
    """``body`` with ``"port": 0`` replaced by ``"port": null``; anything else (not JSON, other ports) unchanged."""
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict) or data.get("port") != 0 or isinstance(data.get("port"), bool):
        return body
    return json.dumps({**data, "port": None}).encode()


class ConnectionTestPortFix:
    """ASGI middleware: a connection test posted with ``port: 0`` is passed on with ``port: null``.

    Airflow 3.3.2's UI tests a saved connection with ``port: Number(connection.port)``, ``0`` for a connection
    without a port (every ``zoho_crm`` connection: the form hides the port); the api-server then sees a port
    "different from the stored connection" (NULL) and answers 400. Fixed upstream in the API
    (apache/airflow#73298: a port of 0 means "no port"). Only ``POST /api/v2/connections/test`` is read.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope.get("type") != "http" or scope.get("method") != "POST"
                or not scope.get("path", "").endswith(CONNECTION_TEST_PATH)):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message.get("type") != "http.request":  # the client went away: let the app see it
                return await self.app(scope, _replay([message], receive), send)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if not message.get("more_body") or size > MAX_TEST_BODY_BYTES:
                break
        body = b"".join(chunks)
        if size <= MAX_TEST_BODY_BYTES and not message.get("more_body"):
            body = portless(body)
        headers = [(key, value) for key, value in scope.get("headers", []) if key.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        more = bool(message.get("more_body"))
        first = {"type": "http.request", "body": body, "more_body": more}
        await self.app({**scope, "headers": headers} if not more else scope, _replay([first], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
