"""The download ledger: the rate limit's second line, shared by every process using the same credentials.

Its rules on a fixed clock (on both backends: the file and the real Redis), then forked "task" processes downloading from the simulator over real HTTP with no
pool at all: the ledger alone keeps them within the simulator's limit (its request log is the judge).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from include.devtools.zoho_simulator.process import SimulatorProcess
from tests.hooks import redis_fixtures
from tests.hooks.redis_fixtures import REDIS_CONN_ID
from tests.hooks.zoho_conn import CONN_ENV
from tests.operators.download_checks import assert_never_over_limit, download_log, next_request_seq
from tests.operators.test_download_operator import completed_job, hook, operator, sim  # noqa: F401 - fixtures
from zoho_crm.hooks.download import stream_to_file
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.rate_limit.ledger import DownloadLedger, FileDownloadLedger
from zoho_crm.rate_limit.redis_ledger import RedisDownloadLedger

redis_db, redis_state = redis_fixtures.redis_db, redis_fixtures.redis_state  # the fixtures

WINDOW = 1.0  # the simulator's and the connection's (tests/operators/test_download_operator.py)


def ledger(path: Path, limit: int = 2) -> FileDownloadLedger:
    return FileDownloadLedger(path, "credentials", limit=limit, window=10, margin=0.5, unfinished_grace=5)


@pytest.fixture(params=["file", "redis"])
def ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., DownloadLedger]:
    """Ledgers of one backend, each a fresh object (as in another process) on the same shared state."""
    if request.param == "file":
        return lambda identity="credentials", limit=2: FileDownloadLedger(
            tmp_path, identity, limit=limit, window=10, margin=0.5, unfinished_grace=5
        )
    prefix = request.getfixturevalue("redis_state").prefix
    return lambda identity="credentials", limit=2: RedisDownloadLedger(
        REDIS_CONN_ID, identity, key_prefix=prefix, limit=limit, window=10, margin=0.5, unfinished_grace=5
    )


def test_full_ledger_says_when_a_place_frees(ledgers: Callable[..., DownloadLedger]) -> None:
    first, second = ledgers().reserve(now=0), ledgers().reserve(now=1)
    assert first.request_id and second.request_id and first.request_id != second.request_id
    full = ledgers().reserve(now=2)
    # Unfinished requests count for window + margin + grace from their start: 0 + 10 + 0.5 + 5.
    assert (full.request_id, full.wait_seconds, full.in_window) == (None, 13.5, 2)
    # A finished request counts for window + margin from its end.
    ledgers().finish(first.request_id, ended_at=3)
    assert ledgers().reserve(now=4).wait_seconds == pytest.approx(9.5)
    assert ledgers().reserve(now=13.5).request_id


def test_each_credential_set_has_its_own_ledger(ledgers: Callable[..., DownloadLedger]) -> None:
    ours = ledgers(limit=1)
    other = ledgers("other org", limit=1)
    assert ours.reserve(now=0).request_id and other.reserve(now=0).request_id
    assert ours.reserve(now=1).request_id is None


def test_an_unreadable_ledger_starts_afresh(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = ledger(tmp_path, limit=1)
    broken.path.parent.mkdir(parents=True, exist_ok=True)
    broken.path.write_text("{not json")
    assert broken.reserve(now=0).request_id
    assert "unreadable" in caplog.text
    assert broken.reserve(now=1).request_id is None, "the ledger was rewritten with the new reservation"


def download_jobs(jobs: list[dict[str, Any]], out: str, results: Any) -> None:
    """A forked "task": reserve a place (waiting like the operator), download once, record the end; per job."""
    try:
        hook_ = ZohoCRMHook(retry_attempts=1)
        ledger_ = hook_.download_ledger(margin=0.05)
        for job in jobs:
            request_id = operator(job, Path(out))._reserve(ledger_, attempt=1)
            try:
                with hook_.open_download(job["job_id"]) as response:
                    stream_to_file(response, out, f"{job['job_id']}.zip")
            finally:
                ledger_.finish(request_id)
        results.put("ok")
    except BaseException:
        results.put(traceback.format_exc())


def run_forked(target: Callable[..., None], args: list[tuple[Any, ...]], timeout: float) -> list[Any]:
    """Run ``target(*worker_args, results)`` in a forked process per entry of ``args``; what each put on
    ``results`` ("ok" or its traceback), in the order they finished.

    :param target: the worker; it puts one outcome on its last argument, a queue.
    :param args: each worker's arguments before the queue.
    :param timeout: how long to wait for each outcome, in seconds.
    """
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    workers = [ctx.Process(target=target, args=(*worker_args, results)) for worker_args in args]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=timeout) for _ in workers]
    for worker in workers:
        worker.join(30)
    return outcomes


def test_processes_without_a_pool_stay_within_the_connections_limit(
    sim: SimulatorProcess, hook: ZohoCRMHook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """The connection allows 4 downloads per window (the simulator 10): 4 processes, 5 downloads each."""
    limit, processes, jobs_each = 4, 4, 5
    jobs = [completed_job(hook) for _ in range(processes * jobs_each)]
    connection = json.loads(os.environ[CONN_ENV])
    connection["extra"]["download_limit"] = limit
    monkeypatch.setenv(CONN_ENV, json.dumps(connection))
    first = next_request_seq(sim)
    outcomes = run_forked(
        download_jobs, [(jobs[i::processes], str(tmp_path / f"out{i}")) for i in range(processes)], timeout=120
    )
    assert outcomes == ["ok"] * processes, outcomes
    ours, _ = download_log(sim, since=first)
    assert len(ours) == processes * jobs_each and {r["status"] for r in ours} == {200}
    assert assert_never_over_limit(ours, limit=limit, window=WINDOW) == limit, "the test never filled the window"
