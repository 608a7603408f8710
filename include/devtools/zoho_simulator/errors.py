"""Zoho's error answers: ``{"code", "details", "message", "status": "error"}`` with their HTTP statuses; the JSON
bodies every handler answers and every control call reads."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

HTTP_STATUS = {
    "INVALID_URL_PATTERN": 404, "RESOURCE_NOT_FOUND": 404, "OAUTH_SCOPE_MISMATCH": 401, "INVALID_TOKEN": 401,
    "AUTHENTICATION_FAILURE": 401, "NO_PERMISSION": 403, "MEDIA_TYPE_NOT_SUPPORTED": 415,
    "TOO_MANY_REQUESTS": 429, "INTERNAL_ERROR": 500,
}


class ZohoError(Exception):
    """An error answer; HTTP status from the code (400 unless listed in HTTP_STATUS)."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None, status: int | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}
        self.status = status or HTTP_STATUS.get(code, 400)

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "details": self.details, "message": self.message, "status": "error"}


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


async def json_object(request: web.Request, wants: str) -> dict[str, Any]:
    """The request's JSON body, which must be an object; else a ValueError saying ``wants`` (a 400 answer).

    :param request: the control call.
    :param wants: what the call wants, for the error.
    """
    body = await request.json()
    if not isinstance(body, dict):
        raise ValueError(wants)
    return body
