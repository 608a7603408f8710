"""Child process used by the token-sharing tests: one "task" process making Zoho calls through ZohoCRMHook.

Started with the ``fork`` start method so each child is a real, separate process (own memory, own file
descriptors, own token-cache lock) without paying Airflow's import time again. With ``hosts``, each child runs as
if on one of several machines sharing no directory: its own working directory, ``AIRFLOW_HOME`` and default
token cache directory.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Sequence
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from zoho_crm.hooks.zoho_crm import ZohoCRMHook


def settle_on(host: Path) -> None:
    """Make this process live on ``host``: its working directory, Airflow home and default token cache dir."""
    host.mkdir(parents=True, exist_ok=True)
    os.chdir(host)
    os.environ["AIRFLOW_HOME"] = str(host / "airflow")
    os.environ["ZOHO_CRM_TOKEN_CACHE_DIR"] = str(host / "token-cache")


def work(
    job_id: str, calls: int, token_first: bool, ready: Any, go: Event, results: Any, hook_kwargs: dict | None = None,
    host: Path | None = None,
) -> None:
    """Signal ``ready``, wait for ``go``, make ``calls`` job-details calls, put the outcome on ``results``."""
    try:
        if host is not None:
            settle_on(host)
        hook = ZohoCRMHook(**{"retry_min_wait": 0.05, **(hook_kwargs or {})})
        if token_first:
            hook.get_access_token()
        ready.put(os.getpid())
        if not go.wait(60):
            raise TimeoutError("no go signal within 60 s")
        states = [hook.get_bulk_read_job(job_id)["state"] for _ in range(calls)]
        results.put({"pid": os.getpid(), "states": states, "cwd": os.getcwd()})
    except BaseException:
        results.put({"pid": os.getpid(), "error": traceback.format_exc()})


def run_workers(
    job_id: str, count: int, calls: int, *, token_first: bool = False, before_go=None, hook_kwargs: dict | None = None,
    hosts: Sequence[Path] = (),
) -> list[dict]:
    """Run ``count`` forked workers; return their outcomes (each with ``states`` and ``cwd``, or ``error``).

    :param hosts: worker ``i`` lives on ``hosts[i % len(hosts)]`` (see :func:`settle_on`); empty: all share the
        parent's directories.
    """
    ctx = multiprocessing.get_context("fork")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(
            target=work,
            args=(job_id, calls, token_first, ready, go, results, hook_kwargs, hosts[i % len(hosts)] if hosts else None),
        )
        for i in range(count)
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
