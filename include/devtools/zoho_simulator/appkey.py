"""The aiohttp application key under which the running ``Simulator`` is stored (shared by every handler module)."""

from __future__ import annotations

from aiohttp import web

SIM = web.AppKey("simulator", "Simulator")
