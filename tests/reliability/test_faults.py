"""Reliability and security proof (issue 7): faults, hostile inputs and secrets under the real scheduler.

One LocalExecutor stack (embedded PostgreSQL) for the module. The main DAG (``zoho_crm_bulk_read``) talks to the main
simulator, which the hostile Params must never reach; every scenario, the clean reference run included, runs the
same DAG factory as ``zoho_rel_<name>`` (tests/reliability/dags) on its own connection and simulator, all
triggered at once, so the scenarios run at the same time without disturbing each other, and each
simulator's request log counts only its scenario's calls. Every run either succeeds with output identical to the
clean reference run (sha256 of each extracted page, the record ids) or fails naming the cause and what to do,
and never leaves a partial file in the published tree.
"""

from __future__ import annotations

import csv
import json
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from include.devtools.airflow_stack import REPO_ROOT, AirflowStack
from include.devtools.metadata_db import MetadataDatabases
from include.devtools.zoho_simulator.process import SimulatorProcess
from tests.deployments import LOCAL
from tests.hooks.zoho_conn import CLIENT_SECRET, REFRESH_TOKEN
from tests.operators.download_checks import max_in_sliding_window
from tests.reliability.slow_proxy import slow_proxy
from tests.reliability.support import (
    DownloadStorm,
    ThrottleLift,
    WorkerKiller,
    files_under,
    partial_files,
    published_partials,
    run_dirs,
    run_path,
    task_instance,
    task_log,
    token_request_bound,
)
from tests.stack_support import airflow_stack

pytestmark = LOCAL

MAIN_DAG = "zoho_crm_bulk_read"
WINDOW = 10
LEADS = 1500
PER_PAGE = 500
PAGES = 3
MAX_DOWNLOAD_ATTEMPTS = 6  # ZohoBulkReadDownloadOperator's default
STUCK_TIMEOUT = 20
TOKEN_LIFETIME = 5
KILL_RECORDS = 20_000
KILL_BYTES_PER_SECOND = 400_000
PARALLELISM = 8  # running tasks at once: a 2-core machine
BAD_SECRET = "wrong-client-secret-4f1c9a"
HOSTILE_SCOPES = ["ZohoCRM.modules.ALL", "ZohoCRM.settings.fields.READ"]  # no ZohoCRM.bulk.read

BASE_SIM = {"records": {"Leads": LEADS}, "per_page_csv": PER_PAGE, "job_seconds": 1, "download_window": WINDOW}
ONE_PAGE = {"per_page_csv": 2 * LEADS}
SCENARIO_SIMS: dict[str, dict[str, Any]] = {
    "reference": {},
    "errors": {"error_rate": 0.2},
    "drop_once": {"drop_downloads": 1},
    "drop_all": {"drop_downloads": -1, **ONE_PAGE},
    "expiry": {"token_lifetime": TOKEN_LIFETIME, "token_limit": 100},
    "fail_jobs": {"fail_jobs": 1, **ONE_PAGE},
    "stuck": {"stuck_jobs": True, **ONE_PAGE},
    "storm": {},
    "throttle": {"token_limit": 0},
    "kill": {"records": {"Leads": KILL_RECORDS}, "per_page_csv": 200_000},
    "hostile": {"scopes": HOSTILE_SCOPES},
}
HOSTILE_CONNECTIONS = {
    "no_refresh": {"refresh_token": None},
    "bad_dc": {"data_center": "mars"},
    "bad_secret": {"password": BAD_SECRET},
    "no_scope": {},
}
DAG_OPTIONS = {name: {} for name in SCENARIO_SIMS if name != "hostile"} | {n: {} for n in HOSTILE_CONNECTIONS}
DAG_OPTIONS["stuck"] = {"sensor_timeout": STUCK_TIMEOUT}
LEADS_CONF = {"module": "Leads", "file_type": "csv", "fields": []}


def dag_of(name: str) -> str:
    return f"zoho_rel_{name}"


@dataclass
class Deployment:
    stack: AirflowStack
    export_dir: Path
    token_cache: Path
    main: SimulatorProcess
    sims: dict[str, SimulatorProcess]
    runs: dict[str, str] = field(default_factory=dict)
    drivers: dict[str, Any] = field(default_factory=dict)

    def sim_of(self, name: str) -> SimulatorProcess:
        return self.sims["hostile" if name in HOSTILE_CONNECTIONS else name]


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, embedded_databases: MetadataDatabases
) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("reliability")
    dags = root / "dags"
    dags.mkdir()
    (dags / f"{MAIN_DAG}.py").write_text((REPO_ROOT / "dags" / f"{MAIN_DAG}.py").read_text())
    scenario_dag = (Path(__file__).parent / "dags" / "zoho_reliability.py").read_text()
    for name in DAG_OPTIONS:
        (dags / f"{dag_of(name)}.py").write_text(scenario_dag)
    with ExitStack() as stack_of:
        main = stack_of.enter_context(SimulatorProcess(**BASE_SIM))
        sims = {name: stack_of.enter_context(SimulatorProcess(**{**BASE_SIM, **options}))
                for name, options in SCENARIO_SIMS.items()}
        kill_api = stack_of.enter_context(slow_proxy(sims["kill"].port, KILL_BYTES_PER_SECOND))
        env = {
            **dict([main.env_var(conn_type="http", window_seconds=WINDOW)]),
            "ZOHO_RELIABILITY_DAGS": json.dumps(DAG_OPTIONS),
            "ZOHO_EXPORT_DIR": str(root / "output"),
            "ZOHO_CRM_TOKEN_CACHE_DIR": str(root / "token-cache"),
            # The DAG files never change during the module: parse each once, not every 30 s (saves a core).
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
        }
        for name in DAG_OPTIONS:
            sim = sims["hostile" if name in HOSTILE_CONNECTIONS else name]
            api = kill_api if name == "kill" else sim.url
            env.update([sim.env_var(dag_of(name), conn_type="http", window_seconds=WINDOW, api_domain=api,
                                    **HOSTILE_CONNECTIONS.get(name, {}))])
        stack = stack_of.enter_context(
            airflow_stack(root / "airflow", dags_folder=dags, env=env, databases=embedded_databases,
                          parallelism=PARALLELISM)
        )
        for dag_id in (MAIN_DAG, *map(dag_of, DAG_OPTIONS)):
            stack.wait_for_dag(dag_id)
        deployment = Deployment(stack, root / "output", root / "token-cache", main, sims)
        yield deployment
        for driver in deployment.drivers.values():
            driver.stop_event.set()


@pytest.fixture(scope="module")
def fault_runs(deployment: Deployment) -> Deployment:
    """Trigger every scenario's run at once and start the threads that inject faults during them."""
    stack = deployment.stack
    for name in DAG_OPTIONS:
        deployment.runs[name] = stack.trigger(dag_of(name), conf=LEADS_CONF)
    storm = DownloadStorm(deployment.sims["storm"], stack, dag_of("storm"), deployment.runs["storm"], window=WINDOW,
                          windows=3)
    lift = ThrottleLift(deployment.sims["throttle"], stack, dag_of("throttle"), deployment.runs["throttle"])
    staging, _ = run_dirs(deployment.export_dir, deployment.runs["kill"])
    killer = WorkerKiller(deployment.export_dir, staging, min_bytes=64 * 1024)
    deployment.drivers = {"storm": storm, "throttle": lift, "kill": killer}
    for driver in deployment.drivers.values():
        driver.start()
    return deployment


@dataclass
class Reference:
    run_id: str
    manifest: dict
    page_sha256: list[str]
    ids: list[str]


@pytest.fixture(scope="module")
def reference(fault_runs: Deployment) -> Reference:
    """The clean run every fault run is compared with: Leads, CSV, 3 pages, on a simulator without faults.

    Triggered with the fault runs, as one of them, so no run is triggered while the others load the database.
    """
    dag_id, run_id = dag_of("reference"), fault_runs.runs["reference"]
    assert_succeeded(fault_runs, dag_id, run_id)
    manifest = manifest_of(fault_runs, dag_id, run_id)
    ids = exported_ids(fault_runs, manifest)
    return Reference(run_id, manifest, [page["sha256"] for page in manifest["pages"]], ids)


# -- checks ----------------------------------------------------------------------------------------------------


def wait_for(deployment: Deployment, dag_id: str, run_id: str) -> str:
    return deployment.stack.wait_for_run(dag_id, run_id, timeout=900)


def not_successful(deployment: Deployment, dag_id: str, run_id: str) -> list[tuple]:
    return [(t["task_id"], t["map_index"], t["state"], t["try_number"])
            for t in deployment.stack.task_instances(dag_id, run_id) if t["state"] != "success"]


def assert_succeeded(deployment: Deployment, dag_id: str, run_id: str) -> None:
    state = wait_for(deployment, dag_id, run_id)
    assert state == "success", f"{dag_id} {run_id} ended {state}: {not_successful(deployment, dag_id, run_id)}"


def manifest_of(deployment: Deployment, dag_id: str, run_id: str) -> dict:
    summary = deployment.stack.return_value(dag_id, run_id, "manifest")
    return json.loads(Path(summary["manifest"]).read_text())


def exported_ids(deployment: Deployment, manifest: dict) -> list[str]:
    folder = deployment.export_dir / manifest["module"] / manifest["run_key"]
    ids: list[str] = []
    for page in manifest["pages"]:
        with open(folder / page["file"], newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            column = "id" if "id" in (reader.fieldnames or []) else "Id"
            ids += [row[column] for row in reader]
    return ids


def assert_identical_to_reference(deployment: Deployment, name: str, reference: Reference) -> dict:
    """The scenario's run succeeded and published exactly the reference export; returns its manifest."""
    dag_id, run_id = dag_of(name), deployment.runs[name]
    assert_succeeded(deployment, dag_id, run_id)
    manifest = manifest_of(deployment, dag_id, run_id)
    assert manifest["valid"] and manifest["page_count"] == PAGES
    assert [page["sha256"] for page in manifest["pages"]] == reference.page_sha256
    ids = exported_ids(deployment, manifest)
    assert len(ids) == len(set(ids)) == LEADS, "no record lost or duplicated"
    assert ids == reference.ids
    staging, published = run_dirs(deployment.export_dir, run_id)
    assert not staging.exists(), "a published run leaves no staging behind"
    assert not partial_files(published) and not published_partials(deployment.export_dir)
    return manifest


def assert_failed_cleanly(
    deployment: Deployment, name: str, task_id: str, *expected: str, map_index: int = -1
) -> str:
    """The run failed in ``task_id`` whose log names the cause and the remedy; nothing published, no file left
    in staging (every failure here happens before a page is complete). Returns the task's log text."""
    dag_id, run_id = dag_of(name), deployment.runs[name]
    state = wait_for(deployment, dag_id, run_id)
    assert state == "failed", f"{dag_id} {run_id} ended {state}"
    ti = task_instance(deployment.stack, dag_id, run_id, task_id, map_index)
    assert ti["state"] == "failed", not_successful(deployment, dag_id, run_id)
    text = task_log(deployment.stack, dag_id, run_id, task_id, map_index)
    for phrase in expected:
        assert phrase in text, f"{task_id} log lacks {phrase!r}:\n{text[-3000:]}"
    staging, published = run_dirs(deployment.export_dir, run_id)
    assert not published.exists()
    assert files_under(staging) == [], "a run that failed before any page was complete leaves no file"
    assert not published_partials(deployment.export_dir)
    return text


def download_requests(sim: SimulatorProcess) -> list[dict]:
    return sim.requests("download")


# -- hostile Params and the clean reference ---------------------------------------------------------------------


SCHEMA_VIOLATIONS = {
    "empty module": {"module": ""},
    "criteria not JSON": {"module": "Leads", "criteria": "{Lead_Status = Contacted"},
    "unknown file type": {"module": "Leads", "file_type": "xlsx"},
    "unknown module": {"module": "NoSuchModule"},
    "malformed criteria": {"module": "Leads", "criteria": {"field": {"api_name": "Lead_Status"},
                                                           "comparator": "explodes", "value": "x"}},
}
REJECTED_BY_RESOLVE_QUERY = {
    "misspelt param": ({"module": "Leads", "modifed_from": "2026-11-01T00:00:00Z"}, "unknown parameter(s) 'modifed_from'"),
    "ICS with Leads": ({"module": "Leads", "file_type": "ics"}, "file_type 'ics' works only for module Events"),
    "fields with ICS": ({"module": "Events", "file_type": "ics", "fields": ["Subject"]},
                        "fields are not allowed with file_type 'ics': remove fields"),
}


def test_hostile_params_are_rejected_before_any_zoho_call(fault_runs: Deployment) -> None:
    deployment = fault_runs
    stack = deployment.stack
    for case, conf in SCHEMA_VIOLATIONS.items():
        answer = stack.api("POST", f"/dags/{MAIN_DAG}/dagRuns", {"logical_date": None, "conf": conf},
                           expect=(400,), retry=True)  # refused runs are never created: safe to send again
        assert answer, f"{case}: the REST API must say why it refused the run"
    runs = {case: stack.trigger(MAIN_DAG, conf=conf) for case, (conf, _) in REJECTED_BY_RESOLVE_QUERY.items()}
    for case, run_id in runs.items():
        assert wait_for(deployment, MAIN_DAG, run_id) == "failed", case
        states = {t["task_id"]: t["state"] for t in stack.task_instances(MAIN_DAG, run_id)}
        assert states["resolve_query"] == "failed" and states["create_job"] == "upstream_failed", (case, states)
        assert REJECTED_BY_RESOLVE_QUERY[case][1] in task_log(stack, MAIN_DAG, run_id, "resolve_query"), case
    assert deployment.main.requests() == [], "no Zoho call at all, not even a token request"


def test_clean_reference_run(fault_runs: Deployment, reference: Reference) -> None:
    manifest = reference.manifest
    sim = fault_runs.sims["reference"]
    assert manifest["valid"] and manifest["page_count"] == PAGES and manifest["record_count"] == LEADS
    assert len(reference.ids) == len(set(reference.ids)) == LEADS
    assert set(reference.ids) == set(sim.record_ids("Leads"))
    assert len(sim.requests("create")) == PAGES


# -- faults that a run survives ------------------------------------------------------------------------------------


def test_internal_errors_on_a_fifth_of_all_calls_are_retried(fault_runs: Deployment, reference: Reference) -> None:
    assert_identical_to_reference(fault_runs, "errors", reference)
    sim = fault_runs.sims["errors"]
    failed = [r for r in sim.requests() if r["status"] == 500]
    assert len(failed) >= 2, "the simulator answered 500 INTERNAL_ERROR to some calls"
    assert len(sim.jobs()) == PAGES, "a retried create never makes a duplicate job"


def test_a_dropped_download_is_retried(fault_runs: Deployment, reference: Reference) -> None:
    assert_identical_to_reference(fault_runs, "drop_once", reference)
    served = fault_runs.sims["drop_once"].downloads()
    assert [d["dropped"] for d in served].count(True) == 1 and len(served) == PAGES + 1
    logs = [task_log(fault_runs.stack, dag_of("drop_once"), fault_runs.runs["drop_once"], "download", i)
            for i in range(PAGES)]
    assert sum("INCOMPLETE_DOWNLOAD" in text for text in logs) == 1


def test_an_access_token_expiring_mid_run_is_refreshed(fault_runs: Deployment, reference: Reference) -> None:
    assert_identical_to_reference(fault_runs, "expiry", reference)
    sim = fault_runs.sims["expiry"]
    tokens = [r["t"] for r in sim.requests("token")]
    rejected = [r for r in sim.requests() if r["status"] == 401]
    assert len(sim.tokens()) >= 3, f"tokens living {TOKEN_LIFETIME}s were renewed during the run"
    assert len(tokens) <= token_request_bound(tokens, TOKEN_LIFETIME, len(rejected)), "the cache is shared"


def test_a_429_storm_over_several_windows_is_waited_out(fault_runs: Deployment, reference: Reference) -> None:
    assert_identical_to_reference(fault_runs, "storm", reference)
    storm: DownloadStorm = fault_runs.drivers["storm"]
    storm.finish()
    sim = fault_runs.sims["storm"]
    ours = download_requests(sim)
    assert storm.admitted >= 20, "the other client used the allowance in at least two windows"
    assert [r["status"] for r in ours].count(429) >= 2, "the run's downloads met the storm"
    admitted = [r["t"] for r in sim.requests() if r["kind"] in ("download", "foreign_download")
                and r["status"] != 429]
    assert max_in_sliding_window(admitted, WINDOW) <= 10
    assert max_in_sliding_window([r["t"] for r in ours], WINDOW) <= 10, "the run itself never hammers"
    per_job: dict[str, int] = {}
    for request in ours:
        per_job[request["path"]] = per_job.get(request["path"], 0) + 1
    assert max(per_job.values()) <= MAX_DOWNLOAD_ATTEMPTS


def test_token_endpoint_throttling_fails_clearly_then_recovers(fault_runs: Deployment, reference: Reference) -> None:
    deployment = fault_runs
    assert_identical_to_reference(deployment, "throttle", reference)
    lift: ThrottleLift = deployment.drivers["throttle"]
    lift.finish()
    assert lift.lifted
    first = task_log(deployment.stack, dag_of("throttle"), deployment.runs["throttle"], "create_job", attempt=1)
    assert "Access Denied" in first and "wait up to 10 minutes" in first and "token_cache_dir" in first
    tokens = deployment.sims["throttle"].requests("token")
    denied = [r for r in tokens if r["status"] == 400]
    assert 1 <= len(denied) <= 2, f"one token request per failed task attempt, not a storm: {len(denied)}"
    assert len(tokens) - len(denied) == 1, "after the throttle lifts, one token serves the whole run"


def test_a_worker_killed_mid_download_is_retried_without_partial_output(fault_runs: Deployment) -> None:
    deployment = fault_runs
    dag_id, run_id = dag_of("kill"), deployment.runs["kill"]
    killer: WorkerKiller = deployment.drivers["kill"]
    assert_succeeded(deployment, dag_id, run_id)
    killer.finish()
    assert killer.killed, "the download's process was killed"
    assert "airflow" in killer.killed["cmdline"]
    sim = deployment.sims["kill"]
    served = sim.downloads()
    assert len(served) == 2 and served[1]["complete"], "one request killed, one retry"
    assert 0 < killer.killed["part_bytes"] < served[1]["bytes"], "killed in the middle of the body"
    assert task_instance(deployment.stack, dag_id, run_id, "download", 0)["try_number"] >= 2
    manifest = manifest_of(deployment, dag_id, run_id)
    page = manifest["pages"][0]
    assert (page["zip_sha256"], page["sha256"]) == (served[1]["zip_sha256"], served[1]["member_sha256"])
    ids = exported_ids(deployment, manifest)
    assert len(ids) == len(set(ids)) == KILL_RECORDS and set(ids) == set(sim.record_ids("Leads"))
    assert killer.seen_published_partials == set(), "no partial file ever appeared in the published tree"
    assert not partial_files(deployment.export_dir / "Leads" / manifest["run_key"])
    staging, _ = run_dirs(deployment.export_dir, run_id)
    assert not staging.exists(), "the killed attempt's part file went with the staging directory"


# -- faults that fail a run, clearly -------------------------------------------------------------------------------


def test_a_download_dropping_every_time_fails_clearly(fault_runs: Deployment) -> None:
    assert_failed_cleanly(
        fault_runs, "drop_all", "download",
        f"failed {MAX_DOWNLOAD_ATTEMPTS} times in a row", "INCOMPLETE_DOWNLOAD", "clear this task", map_index=0,
    )
    assert len(download_requests(fault_runs.sims["drop_all"])) == MAX_DOWNLOAD_ATTEMPTS


def test_a_job_ending_in_failure_fails_the_run_clearly(fault_runs: Deployment) -> None:
    assert_failed_cleanly(
        fault_runs, "fail_jobs", "wait_for_job",
        "ended in FAILURE: INTERNAL_SERVER_ERROR", "Run the export again",
    )
    sim = fault_runs.sims["fail_jobs"]
    assert len(sim.requests("create")) == 1 and download_requests(sim) == []


def test_a_job_stuck_in_progress_times_out_clearly(fault_runs: Deployment) -> None:
    assert_failed_cleanly(
        fault_runs, "stuck", "wait_for_job", "did not finish", "last state seen IN PROGRESS", "Raise timeout",
    )
    sim = fault_runs.sims["stuck"]
    assert len(sim.requests("create")) == 1 and download_requests(sim) == []


HOSTILE_CONNECTION_ERRORS = {
    "no_refresh": ("extra refresh_token is missing", "A correct connection"),
    "bad_dc": ("extra data_center 'mars' is unknown", "A correct connection"),
    "bad_secret": ("invalid_client", "fix the connection's login, password or data_center"),
    "no_scope": ("OAUTH_SCOPE_MISMATCH", "Scopes needed: ZohoCRM.bulk.read"),
}


def test_hostile_connections_fail_clearly_without_retry_storm(fault_runs: Deployment) -> None:
    deployment = fault_runs
    for name, phrases in HOSTILE_CONNECTION_ERRORS.items():
        assert_failed_cleanly(deployment, name, "create_job", *phrases)
        tries = {t["task_id"]: t["try_number"] for t in
                 deployment.stack.task_instances(dag_of(name), deployment.runs[name])
                 if t["task_id"] in ("field_metadata", "create_job")}
        assert tries == {"field_metadata": 1, "create_job": 1}, f"{name}: not retried ({tries})"
    log = deployment.sims["hostile"].requests()
    invalid_client = [r for r in log if r["kind"] == "token" and not r.get("user")]
    granted = [r for r in log if r["kind"] == "token" and r.get("user")]
    assert 1 <= len(invalid_client) <= 2, "bad_secret: one token request per task, never retried"
    assert 1 <= len(granted) <= 2
    assert [r["status"] for r in log if r["kind"] == "create"] == [401], "no_scope: one create, refused"
    assert [r for r in log if r["kind"] in ("download", "details")] == []


# -- secrets ---------------------------------------------------------------------------------------------------


def _xcom_and_rendered_texts(stack: AirflowStack, dag_id: str, run_id: str) -> list[str]:
    base = run_path(dag_id, run_id)
    texts = []
    for ti in stack.task_instances(dag_id, run_id):  # the list leaves rendered_fields out: read each instance
        mapped = f"/{ti['map_index']}" if ti["map_index"] >= 0 else ""
        detail = stack.api("GET", f"{base}/taskInstances/{ti['task_id']}{mapped}")
        texts.append("rendered:" + json.dumps(detail.get("rendered_fields") or {}))
    entries: list[dict] = []
    while True:
        page = stack.api("GET", f"{base}/taskInstances/~/xcomEntries?limit=100&offset={len(entries)}")
        entries += page["xcom_entries"]
        if not page["xcom_entries"] or len(entries) >= page["total_entries"]:
            break
    for entry in entries:
        key = urllib.parse.quote(entry["key"], safe="")
        value = stack.api("GET", f"{base}/taskInstances/{entry['task_id']}/xcomEntries/{key}"
                                 f"?map_index={entry['map_index']}")
        texts.append(json.dumps(value))
    return texts


def test_no_secret_in_logs_xcom_rendered_templates_or_files(fault_runs: Deployment) -> None:
    """Runs last: every secret of the module (client secrets, refresh token, every access token issued)."""
    deployment = fault_runs
    for driver in deployment.drivers.values():
        driver.finish()
    stack = deployment.stack
    tokens = [t["access_token"] for sim in (deployment.main, *deployment.sims.values()) for t in sim.tokens()]
    assert len(tokens) >= len(deployment.sims), "every scenario's simulator issued tokens"
    secrets = [CLIENT_SECRET, BAD_SECRET, REFRESH_TOKEN, *tokens]
    files = [p for folder in (stack.home / "logs", stack.logs_dir, deployment.export_dir, deployment.token_cache)
             for p in folder.rglob("*") if p.is_file()]
    assert any(p.suffix == ".log" for p in files)
    hits = [(str(p), s[:8]) for p in files for s in secrets if s.encode() in p.read_bytes()]
    runs = [(dag_id, run["dag_run_id"]) for dag_id in (MAIN_DAG, *map(dag_of, DAG_OPTIONS))
            for run in stack.dag_runs(dag_id)]
    texts = [text for dag_id, run_id in runs for text in _xcom_and_rendered_texts(stack, dag_id, run_id)]
    assert len(texts) > len(runs)
    assert any(text.startswith("rendered:") and "job_id" in text for text in texts), "rendered templates were read"
    hits += [("xcom/rendered", s[:8]) for text in texts for s in secrets if s in text]
    assert hits == [], f"secrets found (first 8 characters shown): {hits[:20]}"
