"""What users run, at Zoho's real settings: the shipped dags/ untouched, the README's connection, 10 downloads per
60 s, on the default install (LocalExecutor on the embedded PostgreSQL server) and on CeleryExecutor + PostgreSQL
+ Redis.

Real windows are slow by nature, so every scenario's runs start at once (one module fixture) and each test then
checks its own:

- two concurrent manual runs (Leads 7 pages + Contacts 5 pages: 12 downloads, so a second window is needed);
- a backfill of 3 daily intervals created as the UI's Backfill dialog does (``POST /api/v2/backfills`` while the
  scheduler runs);
- a worker killed in the middle of a (slow) download: the retry waits a full window.

And for everything together: at most 10 download requests start in any sliding 60-second window (the simulator's
log), zero 429s, one token request.
"""

from __future__ import annotations

import signal
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psutil
import pytest

from include.devtools.airflow_stack import AirflowStack
from include.devtools.polling import wait_until
from tests.deployments import CELERY, DEFAULT_INSTALL_RECORDS, LOCAL, Deployment
from tests.e2e.test_export_dag import assert_run_ok, expected_ids, exported_ids, manifest_of
from tests.operators.download_checks import LIMIT, assert_never_over_limit, download_log, next_request_seq
from zoho_crm.operators.download import MIN_RETRY_DELAY
from zoho_crm.rate_limit.window import DEFAULT_DOWNLOAD_WINDOW_SECONDS

pytestmark = pytest.mark.timeout(1800)

MAIN_DAG = "zoho_crm_bulk_read"
SCHEDULED_DAG = "zoho_crm_leads_csv"
WINDOW = DEFAULT_DOWNLOAD_WINDOW_SECONDS
CONCURRENT = {"Leads": 7, "Contacts": 5}
"""Module -> pages of a full export (200 records a page): 12 downloads from two concurrent runs."""
BACKFILL = ("2026-11-10", "2026-11-12")
KILLED_MODULE = "Deals"


@dataclass
class Scenarios:
    """The runs started together on one deployment."""

    deployment: Deployment
    since: int = 0
    """The simulator's first request sequence number of these scenarios (other tests share the deployment)."""
    manual: dict[str, str] = field(default_factory=dict)
    killed_run: str = ""
    killed: dict[str, Any] = field(default_factory=dict)
    backfill_runs: list[dict] = field(default_factory=list)


def _writer_of_a_part_file(deployment: Deployment) -> psutil.Process | None:
    """The airflow task process holding a download's ``.part`` file open, if any."""
    staging = deployment.export_dir
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "airflow" not in " ".join(proc.info["cmdline"] or []):
                continue
            if any(".part-" in f.path and f.path.startswith(str(staging)) for f in proc.open_files()):
                return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return None


def _kill_mid_download(deployment: Deployment) -> dict[str, Any]:
    """SIGKILL the task process of the slow module's first download while its body is still arriving."""
    sim = deployment.sim

    def in_flight() -> psutil.Process | None:
        started = [d for d in sim.downloads() if not d["complete"]]
        return _writer_of_a_part_file(deployment) if started else None

    proc = wait_until(in_flight, timeout=900, interval=0.2, what=f"a {KILLED_MODULE} download in flight")
    killed = {"pid": proc.pid, "at": time.time(), "cmdline": " ".join(proc.cmdline())}
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    return killed


@pytest.fixture(
    scope="module",
    params=[pytest.param("default_install", marks=LOCAL), pytest.param("default_install_celery", marks=CELERY)],
)
def scenarios(request: pytest.FixtureRequest) -> Scenarios:
    deployment: Deployment = request.getfixturevalue(request.param)
    stack, sim = deployment.stack, deployment.sim
    sim.set_faults(slow_download_modules=[KILLED_MODULE], slow_download_rate=2048)
    stack.wait_for_dag(MAIN_DAG)
    stack.wait_for_dag(SCHEDULED_DAG)  # unpaused, as a backfill needs (README)
    result = Scenarios(deployment, since=next_request_seq(sim))
    result.killed_run = stack.trigger(MAIN_DAG, conf={"module": KILLED_MODULE})
    result.killed = _kill_mid_download(deployment)
    sim.set_faults(slow_download_modules=[])
    result.manual = {module: stack.trigger(MAIN_DAG, conf={"module": module}) for module in CONCURRENT}
    stack.create_backfill(SCHEDULED_DAG, *BACKFILL)
    result.backfill_runs = wait_until(
        lambda: len(runs := [r for r in stack.dag_runs(SCHEDULED_DAG) if r["run_type"] == "backfill"]) == 3 and runs,
        timeout=300, interval=1, what="the backfill's 3 runs to be created",
    )
    for run_id in [result.killed_run, *result.manual.values()]:
        assert_run_ok(stack, MAIN_DAG, run_id)
    for run in result.backfill_runs:
        assert_run_ok(stack, SCHEDULED_DAG, run["dag_run_id"])
    return result


def test_concurrent_runs_of_the_shipped_dag_export_every_record(scenarios: Scenarios) -> None:
    stack, sim = scenarios.deployment.stack, scenarios.deployment.sim
    for module, run_id in scenarios.manual.items():
        manifest = manifest_of(stack, MAIN_DAG, run_id)
        assert manifest["page_count"] == CONCURRENT[module]
        assert manifest["record_count"] == DEFAULT_INSTALL_RECORDS[module] == len(sim.record_ids(module))
        assert manifest["valid"]


def test_a_ui_backfill_exports_each_interval_exactly(scenarios: Scenarios) -> None:
    """``POST /api/v2/backfills`` on the running default install (the UI's Backfill dialog): 3 daily intervals.

    The DAG loads into the warehouse and has no full load of Leads yet: a run that starts before another's load
    committed exports every record (its first load), a later one its interval with the look-back."""
    deployment = scenarios.deployment
    stack, sim = deployment.stack, deployment.sim
    runs = sorted(scenarios.backfill_runs, key=lambda run: run["data_interval_start"])
    assert [run["data_interval_start"][:10] for run in runs] == ["2026-11-10", "2026-11-11", "2026-11-12"]
    for run in runs:
        manifest = manifest_of(stack, SCHEDULED_DAG, run["dag_run_id"])
        ids = exported_ids(deployment.export_dir / "Leads" / manifest["run_key"] / "manifest.json")
        start = _moment(run["data_interval_start"])
        end = _moment(run["data_interval_end"])
        expected = expected_ids(sim, manifest, start, end)
        assert expected, "each interval holds records"
        assert len(ids) == len(set(ids)) and set(ids) == expected


def test_a_worker_killed_mid_download_is_retried_after_a_full_window(scenarios: Scenarios) -> None:
    """The shipped DAG's default_args say retry_delay 30 s; the retry still waits Zoho's window + margin."""
    deployment = scenarios.deployment
    stack, sim = deployment.stack, deployment.sim
    run_id = scenarios.killed_run
    manifest = manifest_of(stack, MAIN_DAG, run_id)
    retried = {page["page"] - 1: _tries(stack, MAIN_DAG, run_id, "download", page["page"] - 1)
               for page in manifest["pages"]}
    retried = {index: tries for index, tries in retried.items() if len(tries) > 1}
    assert len(retried) == 1, f"exactly one download was killed and retried: {sorted(retried)}"
    (index, tries), = retried.items()
    first, retry = tries[0], tries[1]
    assert tries[-1]["state"] == "success"
    gap = (_moment(retry["start_date"]) - _moment(first["end_date"])).total_seconds()
    assert gap >= MIN_RETRY_DELAY.total_seconds() - 1, f"retry started {gap:.0f} s after the killed try ended"
    job_id = manifest["pages"][index]["job_id"]
    downloads, _ = download_log(sim, since=scenarios.since)
    times = [request["t"] for request in downloads if request["path"].split("/")[-2] == job_id]
    assert len(times) == 2, "one killed request, one retry"
    assert times[1] - times[0] >= WINDOW, "the retry's request is outside the killed request's window"
    manifest = manifest_of(stack, MAIN_DAG, run_id)
    assert manifest["record_count"] == DEFAULT_INSTALL_RECORDS[KILLED_MODULE] and manifest["valid"]


def test_zohos_real_limits_held_across_every_run(scenarios: Scenarios) -> None:
    sim = scenarios.deployment.sim
    downloads, _ = download_log(sim, since=scenarios.since)
    assert len(downloads) >= sum(CONCURRENT.values()) + 3 + 1
    assert_never_over_limit(downloads, limit=LIMIT, window=WINDOW)
    assert [r for r in downloads if r["status"] == 429] == []
    tokens = [r for r in sim.requests("token") if r["seq"] >= scenarios.since]
    assert len(tokens) <= 1, "one token for every process of the deployment"


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _tries(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[dict]:
    quoted = urllib.parse.quote(run_id, safe="")
    path = f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/{map_index}/tries"
    return sorted(stack.api("GET", path)["task_instances"], key=lambda t: t["try_number"])
