"""The download ledger on the real Redis: download "runs" on hosts that share no directory stay within the limit.

The simulator and the connection run on a compressed 5-second window (Zoho's is 60 s): 30 downloads at 10 per
window then take about 11 s instead of over 2 minutes, while the window stays long against everything else a
request costs here (fork, Redis round trips, a page of a few hundred KB: tens of milliseconds on a loaded machine),
so the ledger, not slowness, is what spaces the requests. The simulator's request log is the judge: an 11th
request within any 5 s would show in the sliding-window count (and the simulator would answer it 429).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.devtools.zoho_simulator.process import SimulatorProcess
from tests.hooks import redis_fixtures
from tests.hooks.redis_fixtures import RedisState
from tests.hooks.token_worker import settle_on
from tests.operators.download_checks import assert_never_over_limit, download_log, next_request_seq
from tests.operators.test_download_operator import completed_job
from tests.rate_limit.test_ledger import download_jobs, run_forked
from tests.simulator_fixtures import start_simulator
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.rate_limit.redis_ledger import RedisDownloadLedger

redis_db, redis_state = redis_fixtures.redis_db, redis_fixtures.redis_state  # the fixtures

WINDOW = 5.0
LIMIT = 10


@pytest.fixture(scope="module")
def window_sim() -> Iterator[SimulatorProcess]:
    with start_simulator(download_window=WINDOW, download_limit=LIMIT, job_seconds=0.2) as sim:
        yield sim


@pytest.fixture
def redis_hook(
    window_sim: SimulatorProcess, redis_state: RedisState, monkeypatch: pytest.MonkeyPatch
) -> ZohoCRMHook:
    """``zoho_crm_default`` on the 5 s simulator (download_limit 10 per 5 s), its shared state on Redis."""
    window_sim.reset()
    monkeypatch.setenv(*window_sim.env_var(conn_type="http", window_seconds=WINDOW, **redis_state.extras))
    return ZohoCRMHook(retry_attempts=1)


def download_run(host: Path, jobs: list[dict[str, Any]], results: Any) -> None:
    """A forked download "run" on its own host: its own directories, only Redis shared with the others."""
    settle_on(host)
    download_jobs(jobs, str(host / "out"), results)


def test_three_runs_on_hosts_sharing_no_directory_never_exceed_ten_per_window(
    window_sim: SimulatorProcess, redis_hook: ZohoCRMHook, redis_state: RedisState, tmp_path: Path
) -> None:
    """30 downloads from 3 runs, no pool at all: the Redis ledger alone keeps them to 10 per 5 s window."""
    runs, jobs_each = 3, 10
    jobs = [completed_job(redis_hook) for _ in range(runs * jobs_each)]
    first = next_request_seq(window_sim)
    hosts = [tmp_path / f"host-{i}" for i in range(runs)]
    outcomes = run_forked(download_run, [(hosts[i], jobs[i::runs]) for i in range(runs)], timeout=180)
    assert outcomes == ["ok"] * runs, outcomes
    ours, _ = download_log(window_sim, since=first)
    assert len(ours) == runs * jobs_each and {r["status"] for r in ours} == {200}
    assert assert_never_over_limit(ours, limit=LIMIT, window=WINDOW) == LIMIT, "the test never filled the window"
    assert len(window_sim.requests("token")) == 1, "the runs shared the token through Redis"
    for host in hosts:
        assert not (host / "token-cache").exists() and not (host / "airflow").exists(), "state written to a disk"
    [key] = [key for key in redis_state.keys() if key.endswith(":downloads")]
    members = redis_state.client.zrange(key, 0, -1, withscores=True)
    assert len(members) == LIMIT and all(len(member) == 16 for member, _ in members), "request ids and times only"


def reserve_and_hang(placed: Any) -> None:
    """A forked worker that reserves a place, then hangs (mid-request) until it is killed."""
    try:
        placed.put(ZohoCRMHook(retry_attempts=1).download_ledger(margin=0.05).reserve().request_id)
        threading.Event().wait()
    except BaseException:
        placed.put(traceback.format_exc())


def test_the_entry_of_a_killed_worker_keeps_counting(
    redis_hook: ZohoCRMHook, redis_state: RedisState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed mid-request never finishes its entry: it counts for window + margin + the request timeout,
    and Redis keeps the ledger at least that long."""
    connection = json.loads(os.environ["AIRFLOW_CONN_ZOHO_CRM_DEFAULT"])
    connection["extra"]["download_limit"] = 1
    monkeypatch.setenv("AIRFLOW_CONN_ZOHO_CRM_DEFAULT", json.dumps(connection))
    ctx = multiprocessing.get_context("fork")
    placed = ctx.Queue()
    worker = ctx.Process(target=reserve_and_hang, args=(placed,))
    worker.start()
    request_id = placed.get(timeout=60)
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(30)
    assert isinstance(request_id, str) and len(request_id) == 16, request_id
    ledger = ZohoCRMHook(retry_attempts=1, timeout=60).download_ledger(margin=0.05)
    assert isinstance(ledger, RedisDownloadLedger)
    full = ledger.reserve()
    assert full.request_id is None and full.in_window == 1
    assert WINDOW + 60 - 5 < full.wait_seconds <= WINDOW + 0.05 + 60, "unfinished: counts with the request timeout"
    assert redis_state.client.pttl(ledger.key) >= full.wait_seconds * 1000, "Redis keeps it as long as it counts"
