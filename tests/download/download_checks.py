"""Shared pieces of the download tests and the bench: connection, stack runs and the rate-limit checks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from include.airflow_stack import AirflowStack, postgres_database, service_reachable
from include.zoho_simulator.process import SimulatorProcess
from zoho_crm.rate_limit import max_in_sliding_window

REPO_ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = REPO_ROOT / "tests" / "dags" / "zoho_test_downloads.py"
DAG_ID = "zoho_test_downloads"
POOL = "zoho_crm_downloads"
LIMIT = 10
MODULES = ("Leads", "Contacts", "Accounts", "Deals", "Tasks")


def connection_json(sim: SimulatorProcess, *, window: float, limit: int = LIMIT, cache_dir: Path) -> str:
    """AIRFLOW_CONN_ZOHO_CRM_DEFAULT for the simulator (its default client, secret and refresh token)."""
    return json.dumps(
        {
            "conn_type": "http",
            "login": "1000.SIMULATOR",
            "password": "simulator-secret",
            "extra": {
                "refresh_token": "1000.simulator.refresh",
                "api_domain": sim.url,
                "accounts_url": sim.url,
                "download_limit": limit,
                "download_window_seconds": window,
                "token_cache_dir": str(cache_dir),
            },
        }
    )


def isolated_dags_folder(tmp_path: Path) -> Path:
    """A dags folder holding only the download test DAG (other DAGs' import errors cannot interfere)."""
    folder = tmp_path / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DAG_FILE, folder / DAG_FILE.name)
    return folder


def require_celery_services() -> None:
    """Skip (fail under CI=true) when PostgreSQL or Redis is not reachable on localhost."""
    missing = [name for name, port in (("PostgreSQL", 5432), ("Redis", 6379)) if not service_reachable("127.0.0.1", port)]
    if missing:
        reason = f"{' and '.join(missing)} not reachable on 127.0.0.1 (needed for the CeleryExecutor stack)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " -- mandatory under CI=true")
        pytest.skip(reason)


@contextmanager
def airflow_stack(tmp_path: Path, conn: str, *, celery: bool = False) -> Iterator[AirflowStack]:
    """LocalExecutor + SQLite, or CeleryExecutor with two workers on a throw-away PostgreSQL DB + Redis."""
    env = {
        "AIRFLOW_CONN_ZOHO_CRM_DEFAULT": conn,
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
        # A few CPUs shared with 30+ task processes: parse slowly rather than time out, start fewer at once.
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
        "AIRFLOW__CORE__PARALLELISM": "16",
    }
    dags = isolated_dags_folder(tmp_path)
    if not celery:
        with AirflowStack(tmp_path / "airflow", dags_folder=dags, env=env) as stack:
            yield stack
        return
    with postgres_database() as database_url:
        redis_db = int.from_bytes(os.urandom(1), "big") % 14 + 1
        with AirflowStack(
            tmp_path / "airflow",
            dags_folder=dags,
            env=env,
            executor="CeleryExecutor",
            database_url=database_url,
            broker_url=f"redis://127.0.0.1:6379/{redis_db}",
            celery_workers=2,
        ) as stack:
            yield stack


def run_download_dags(
    stack: AirflowStack,
    output_dir: Path,
    *,
    runs: int,
    jobs_per_run: int,
    during: Callable[[], None] = lambda: None,
    timeout: float = 600,
) -> tuple[list[str], dict[str, int]]:
    """Trigger ``runs`` concurrent runs and wait for them; return run ids and the peak pool occupancy seen.

    ``during`` is called on every poll while the runs are going (e.g. to inject foreign downloads).
    """
    stack.wait_for_dag(DAG_ID)
    conf = {"modules": [MODULES[i % len(MODULES)] for i in range(jobs_per_run)], "output_dir": str(output_dir)}
    run_ids = [stack.trigger(DAG_ID, conf=conf) for _ in range(runs)]
    peak = {"occupied_slots": 0, "deferred_slots": 0}
    deadline = time.monotonic() + timeout
    pending = set(run_ids)
    while pending:
        stack.check_alive()
        during()
        try:
            pool = stack.api("GET", f"/pools/{POOL}")
            pending = {run for run in pending if stack.run_state(DAG_ID, run) not in ("success", "failed")}
        except RuntimeError as err:  # SQLite "database is locked" under load answers 500: poll again
            if " answered 5" not in str(err):
                raise
        else:
            for key in peak:
                peak[key] = max(peak[key], pool[key])
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs {sorted(pending)} of {DAG_ID} did not finish within {timeout:.0f} s")
        time.sleep(0.3)
    failed = {run: stack.run_state(DAG_ID, run) for run in run_ids if stack.run_state(DAG_ID, run) != "success"}
    assert not failed, f"runs did not succeed: {failed}; task states: {failed_tasks(stack, list(failed))}"
    return run_ids, peak


def failed_tasks(stack: AirflowStack, run_ids: list[str]) -> list[tuple[str, int, str]]:
    return [
        (ti["task_id"], ti["map_index"], ti["state"])
        for run in run_ids
        for ti in stack.task_instances(DAG_ID, run)
        if ti["state"] != "success"
    ]


def download_results(stack: AirflowStack, run_ids: list[str]) -> list[dict[str, Any]]:
    """The XCom result of every mapped download task instance of the runs."""
    results = []
    for run in run_ids:
        quoted = urllib.parse.quote(run, safe="")
        for ti in stack.task_instances(DAG_ID, run):
            if ti["task_id"] != "download":
                continue
            entry = stack.api(
                "GET",
                f"/dags/{DAG_ID}/dagRuns/{quoted}/taskInstances/download/xcomEntries/return_value"
                f"?map_index={ti['map_index']}&deserialize=true",
            )
            results.append(entry["value"])
    return results


def assert_files_intact(sim: SimulatorProcess, results: list[dict[str, Any]], expected: int) -> None:
    """Every result's file exists, hashes to its XCom sha256 and to the simulator's zip_sha256 for the job."""
    served = {d["job_id"]: d["zip_sha256"] for d in sim.downloads()}
    assert len(results) == expected
    assert len({r["job_id"] for r in results}) == expected
    for result in results:
        data = Path(result["path"]).read_bytes()
        assert len(data) == result["size"]
        assert hashlib.sha256(data).hexdigest() == result["sha256"] == served[result["job_id"]]
        assert result["file_name"] == f"{result['job_id']}.zip"
        assert not any(name.startswith(".") for name in os.listdir(Path(result["path"]).parent)), "leftover .part"
        assert "token" not in json.dumps(result).lower().replace("next_page_token", "")


def download_log(sim: SimulatorProcess) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(our download requests, foreign downloads) from the simulator's request log."""
    return sim.requests("download"), sim.requests("foreign_download")


def assert_never_over_limit(ours: list[dict[str, Any]], *, limit: int, window: float) -> int:
    """At most ``limit`` of our download requests (any status) in every sliding window; return the peak."""
    peak = max_in_sliding_window([r["t"] for r in ours], window)
    assert peak <= limit, f"{peak} download requests started within one {window} s window (limit {limit})"
    return peak

