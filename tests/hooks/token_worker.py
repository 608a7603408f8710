"""Child process used by the token-sharing tests: one "task" process making Zoho calls through ZohoCRMHook.

Started with the ``fork`` start method so each child is a real, separate process (own memory, own file
descriptors, own token-cache lock) without paying Airflow's import time again.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from multiprocessing.synchronize import Event
from typing import Any

from zoho_crm.hooks.zoho_crm import ZohoCRMHook


def work(
    job_id: str, calls: int, token_first: bool, ready: Any, go: Event, results: Any, hook_kwargs: dict | None = None
) -> None:
    """Signal ``ready``, wait for ``go``, make ``calls`` job-details calls, put the outcome on ``results``."""
    try:
        hook = ZohoCRMHook(**{"retry_min_wait": 0.05, **(hook_kwargs or {})})
        if token_first:
            hook.get_access_token()
        ready.put(os.getpid())
        if not go.wait(60):
            raise TimeoutError("no go signal within 60 s")
        states = [hook.get_bulk_read_job(job_id)["state"] for _ in range(calls)]
        results.put({"pid": os.getpid(), "states": states})
    except BaseException:
        results.put({"pid": os.getpid(), "error": traceback.format_exc()})


def run_workers(
    job_id: str, count: int, calls: int, *, token_first: bool = False, before_go=None, hook_kwargs: dict | None = None
) -> list[dict]:
    """Run ``count`` forked workers; return their outcomes (each with ``states`` or ``error``)."""
    ctx = multiprocessing.get_context("fork")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=work, args=(job_id, calls, token_first, ready, go, results, hook_kwargs))
        for _ in range(count)
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in range(count):
            ready.get(timeout=60)
        if before_go:
            before_go()
        go.set()
        outcomes = [results.get(timeout=120) for _ in range(count)]
        for proc in procs:
            proc.join(timeout=30)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
    return outcomes
