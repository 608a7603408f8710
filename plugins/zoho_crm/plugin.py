"""The provider's Airflow plugin (entry point ``airflow.plugins`` in pyproject.toml): makes the UI's Test button
work on Airflow 3.3.2.

Airflow 3.3.2's UI tests a saved connection by posting it with ``port: Number(connection.port)``, which is ``0``
for a connection without a port (every ``zoho_crm`` connection: the form hides the port); the api-server then
sees a port "different from the stored connection" (NULL) and answers 400 "The host or port to test differs ...",
since the UI sends the masked ``***`` password. Fixed upstream in the API (apache/airflow#73298: a port of 0 means
"no port", nothing addresses port 0); until a release with it, this root middleware does the same for
``POST /api/v2/connections/test`` only: a body whose ``port`` is ``0`` gets ``null`` instead. Nothing else is read
or changed; every other request passes through untouched.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

TEST_PATH = "/api/v2/connections/test"
MAX_BODY_BYTES = 1024 * 1024
"""A test request larger than this is passed on as it is (a connection is a few KiB)."""


def portless(body: bytes) -> bytes:
    """``body`` with ``"port": 0`` replaced by ``"port": null``; anything else (not JSON, other ports) unchanged."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict) or data.get("port") != 0 or isinstance(data.get("port"), bool):
        return body
    return json.dumps({**data, "port": None}).encode()


class ConnectionTestPortFix:
    """ASGI middleware: the port-0 body fix above, for the connection test route only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or not scope.get("path", "").endswith(TEST_PATH):
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
            if not message.get("more_body") or size > MAX_BODY_BYTES:
                break
        body = b"".join(chunks)
        if size <= MAX_BODY_BYTES and not message.get("more_body"):
            body = portless(body)
        headers = [(key, value) for key, value in scope.get("headers", []) if key.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        more = bool(message.get("more_body"))
        first = {"type": "http.request", "body": body, "more_body": more}
        await self.app({**scope, "headers": headers} if not more else scope, _replay([first], receive), send)


def _replay(messages: list[Message], receive: Callable[[], Awaitable[Message]]) -> Callable[[], Awaitable[Message]]:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


class ZohoCRMPlugin(AirflowPlugin):
    """Loaded by every Airflow component from the distribution's entry point; only the api-server uses it."""

    name = "zoho_crm"
    fastapi_root_middlewares = [
        {"middleware": ConnectionTestPortFix, "args": [], "kwargs": {}, "name": "Connection test: port 0 is no port"}
    ]
