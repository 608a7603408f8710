"""The export DAG end to end under real Airflow: UI trigger with conf, a scheduled run, backfills and reruns.

Runs on LocalExecutor (embedded PostgreSQL) and on CeleryExecutor (2 workers) + PostgreSQL + Redis, against the simulator.
Each scenario checks the exported record ids against the ids the simulator holds for the same interval. The shipped
DAGs load into the deployment's warehouse, so an interval run exports everything while its DAG has no full load of
the module, and its interval widened by the look-back afterwards (what :func:`expected_ids` computes).
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pytest

from include.devtools.airflow_stack import AirflowStack, wait_until
from include.devtools.zoho_simulator.process import SimulatorProcess
from tests.deployments import CELERY, LOCAL, SIMULATOR_OPTIONS, WINDOW, Deployment
from tests.operators.download_checks import LIMIT, assert_never_over_limit, download_log, next_request_seq
from zoho_crm.export.load import DEFAULT_LOAD_LOOKBACK
from zoho_crm.export.records import time_range_criteria, zoho_datetime

MAIN_DAG = "zoho_crm_bulk_read"
SCHEDULED_DAG = "zoho_crm_leads_csv"
LEADS = SIMULATOR_OPTIONS["records"]["Leads"]
EVENTS = SIMULATOR_OPTIONS["records"]["Events"]


@pytest.fixture(
    scope="module",
    params=[pytest.param("local", marks=LOCAL), pytest.param("celery", marks=CELERY)],
)
def deployment(request: pytest.FixtureRequest) -> Deployment:
    """The session's LocalExecutor (embedded PostgreSQL) or CeleryExecutor + PostgreSQL + Redis deployment."""
    deployment = request.getfixturevalue(f"{request.param}_deployment")
    deployment.stack.wait_for_dag(MAIN_DAG)
    return deployment


def manifest_of(stack: AirflowStack, dag_id: str, run_id: str) -> dict:
    summary = stack.return_value(dag_id, run_id, "manifest")
    return json.loads(Path(summary["manifest"]).read_text())


def exported_ids(manifest_path: Path) -> list[str]:
    """Every record id in the exported CSV pages of a manifest, in page order."""
    manifest = json.loads(manifest_path.read_text())
    ids: list[str] = []
    for page in manifest["pages"]:
        with open(manifest_path.parent / page["file"], newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            id_column = "id" if "id" in (reader.fieldnames or []) else "Id"
            ids += [row[id_column] for row in reader]
    return ids


def interval_ids(sim: SimulatorProcess, start: datetime, end: datetime) -> set[str]:
    return set(sim.record_ids("Leads", time_range_criteria(zoho_datetime(start), zoho_datetime(end))))


def expected_ids(sim: SimulatorProcess, manifest: dict, start: datetime, end: datetime) -> set[str]:
    """The ids an interval run of a DAG with a warehouse exports: every record for its first load (the manifest
    says ``full_load``, no time range), else its interval with the look-back (exactly the manifest's time range)."""
    if manifest["full_load"]:
        assert manifest["time_range"] is None
        return set(sim.record_ids(manifest["module"]))
    assert manifest["time_range"] == [zoho_datetime(start - DEFAULT_LOAD_LOOKBACK), zoho_datetime(end)]
    return interval_ids(sim, start - DEFAULT_LOAD_LOOKBACK, end)


def assert_within_zoho_limits(sim: SimulatorProcess, since: int, min_downloads: int) -> None:
    """The scenario's traffic (requests from ``since`` on): the download limit and the token budget held."""
    downloads, _ = download_log(sim, since=since)
    assert len(downloads) >= min_downloads
    assert_never_over_limit(downloads, limit=LIMIT, window=WINDOW)
    assert not [r for r in downloads if r["status"] == 429]
    tokens = [r for r in sim.requests("token") if r["seq"] >= since]
    assert len(tokens) <= 1, f"{len(tokens)} token requests since request {since}: the cache must be shared"


def assert_run_ok(stack: AirflowStack, dag_id: str, run_id: str) -> None:
    state = stack.wait_for_run(dag_id, run_id, timeout=600)
    if state != "success":
        bad = [
            (t["task_id"], t["map_index"], t["state"])
            for t in stack.task_instances(dag_id, run_id)
            if t["state"] != "success"
        ]
        pytest.fail(f"{dag_id} run {run_id} ended {state}; tasks not successful: {bad}")


def test_ui_trigger_exports_every_page_of_leads_and_events(deployment: Deployment) -> None:
    stack, sim = deployment.stack, deployment.sim
    since = next_request_seq(sim)
    leads_run = stack.trigger(MAIN_DAG, conf={"module": "Leads", "file_type": "csv", "fields": []})
    events_run = stack.trigger(MAIN_DAG, conf={"module": "Events", "file_type": "ics"})
    assert_run_ok(stack, MAIN_DAG, leads_run)
    assert_run_ok(stack, MAIN_DAG, events_run)

    leads = manifest_of(stack, MAIN_DAG, leads_run)
    assert leads["page_count"] == 3 and [p["page"] for p in leads["pages"]] == [1, 2, 3]
    downloads = [ti for ti in stack.task_instances(MAIN_DAG, leads_run) if ti["task_id"] == "download"]
    assert sorted(ti["map_index"] for ti in downloads) == [0, 1, 2]
    manifest_path = deployment.export_dir / "Leads" / leads["run_key"] / "manifest.json"
    ids = exported_ids(manifest_path)
    assert len(ids) == len(set(ids)) == LEADS
    assert set(ids) == set(sim.record_ids("Leads"))
    events = manifest_of(stack, MAIN_DAG, events_run)
    assert events["file_type"] == "ics" and events["valid"] and events["record_count"] == EVENTS
    published = stack.api("GET", "/assets/events?limit=1000")["asset_events"]
    # Airflow normalises the URI with a trailing "/" (so does Asset("zoho-crm://Leads") in a downstream DAG).
    leads_events = [e for e in published if e["uri"].rstrip("/") == "zoho-crm://Leads"]
    assert any(str((e["extra"] or {}).get("manifest", "")).endswith(f"{leads['run_key']}/manifest.json") for e in leads_events)
    assert any(e["uri"].rstrip("/") == "zoho-crm://Events" for e in published), "each module's Asset is updated"
    assert_within_zoho_limits(sim, since, min_downloads=4)


def test_concurrent_runs_of_one_module_all_succeed_and_update_its_asset(deployment: Deployment) -> None:
    """Every module's Asset exists before its first export, so runs finishing together do not race to create it."""
    stack = deployment.stack
    declared = {asset["uri"].rstrip("/") for asset in stack.api("GET", "/assets?limit=1000")["assets"]}
    assert {"zoho-crm://Contacts", "zoho-crm://Price_Books", "zoho-crm://Shipments"} <= declared
    runs = [stack.trigger(MAIN_DAG, conf={"module": "Contacts"}) for _ in range(4)]
    for run in runs:
        assert_run_ok(stack, MAIN_DAG, run)
    events = stack.api("GET", "/assets/events?limit=1000")["asset_events"]
    updated_by = {e["source_run_id"] for e in events if e["uri"].rstrip("/") == "zoho-crm://Contacts"}
    assert set(runs) <= updated_by, "every run updated the module's Asset"


def test_scheduled_run_exports_its_data_interval(deployment: Deployment) -> None:
    """The DAG's first scheduled run, with a warehouse and no full load of Leads for it yet: the automatic first
    full load, every record, under the interval's run key."""
    stack, sim = deployment.stack, deployment.sim
    since = next_request_seq(sim)
    stack.wait_for_dag(SCHEDULED_DAG)  # unpausing lets the scheduler create the latest interval's run
    runs = _wait_for_runs(stack, SCHEDULED_DAG, "scheduled", 1)
    run = runs[0]
    assert_run_ok(stack, SCHEDULED_DAG, run["dag_run_id"])
    start, end = _interval(run)
    manifest = manifest_of(stack, SCHEDULED_DAG, run["dag_run_id"])
    ids = exported_ids(deployment.export_dir / "Leads" / manifest["run_key"] / "manifest.json")
    assert len(ids) == len(set(ids))
    assert manifest["full_load"] is True and manifest["time_range"] is None
    assert set(ids) == expected_ids(sim, manifest, start, end) == set(sim.record_ids("Leads"))
    assert manifest["run_key"] == f"{start:%Y%m%dT%H%M%SZ}--{end:%Y%m%dT%H%M%SZ}"
    loaded = stack.return_value(SCHEDULED_DAG, run["dag_run_id"], "load_table")
    assert loaded["full_load"] and loaded["table"] == "zoho_crm.leads" and loaded["records"] == len(ids)
    assert_within_zoho_limits(sim, since, min_downloads=1)


def test_backfill_exports_each_interval_and_a_second_backfill_replaces(deployment: Deployment) -> None:
    stack, sim = deployment.stack, deployment.sim
    since = next_request_seq(sim)
    stack.wait_for_dag(SCHEDULED_DAG)
    dates = (SCHEDULED_DAG, "2026-11-10", "2026-11-12")  # 3 daily intervals, as the UI's Backfill dialog sends
    stack.create_backfill(*dates)
    first = _wait_for_runs(stack, SCHEDULED_DAG, "backfill", 3)
    for run in first:
        assert_run_ok(stack, SCHEDULED_DAG, run["dag_run_id"])
    keys_before = {}
    for run in first:
        start, end = _interval(run)
        manifest = manifest_of(stack, SCHEDULED_DAG, run["dag_run_id"])
        ids = exported_ids(deployment.export_dir / "Leads" / manifest["run_key"] / "manifest.json")
        assert len(ids) == len(set(ids)) and set(ids) == expected_ids(sim, manifest, start, end)
        keys_before[manifest["run_key"]] = manifest["created_at"]
    assert len(keys_before) == 3

    wait_until(
        lambda: all(
            b["completed_at"] for b in stack.api("GET", f"/backfills?dag_id={SCHEDULED_DAG}")["backfills"]
        ),
        timeout=120,
        interval=1,
        what="the scheduler to mark the first backfill completed",
    )
    stack.create_backfill(*dates, reprocess_behavior="completed")

    def replaced() -> bool:
        manifests = [deployment.export_dir / "Leads" / key / "manifest.json" for key in keys_before]
        return all(
            p.exists() and json.loads(p.read_text())["created_at"] != keys_before[p.parent.name]
            for p in manifests
        )

    wait_until(replaced, timeout=600, interval=1, what="the second backfill to republish all 3 intervals")
    _wait_until_all_finished(stack, SCHEDULED_DAG)
    for key in keys_before:
        manifest_path = deployment.export_dir / "Leads" / key / "manifest.json"
        ids = exported_ids(manifest_path)
        assert len(ids) == len(set(ids)), "a rerun must replace the interval's output, not add to it"
    leads_dirs = {p.name for p in (deployment.export_dir / "Leads").iterdir()}
    assert set(keys_before) <= leads_dirs
    assert not [p for p in deployment.export_dir.rglob("*.part*")], "no partial file may stay behind"
    assert_within_zoho_limits(sim, since, min_downloads=6)


def _interval(run: dict) -> tuple[datetime, datetime]:
    parse = lambda value: datetime.fromisoformat(value.replace("Z", "+00:00"))  # noqa: E731
    return parse(run["data_interval_start"]), parse(run["data_interval_end"])


def _wait_for_runs(stack: AirflowStack, dag_id: str, run_type: str, count: int) -> list[dict]:
    def runs() -> list[dict] | None:
        found = [r for r in stack.dag_runs(dag_id) if r["run_type"] == run_type]
        return sorted(found, key=lambda r: r["data_interval_start"]) if len(found) >= count else None

    return wait_until(runs, timeout=180, interval=1, what=f"{count} {run_type} run(s) of {dag_id}")


def _wait_until_all_finished(stack: AirflowStack, dag_id: str) -> None:
    def finished() -> bool:
        runs = stack.dag_runs(dag_id)
        return bool(runs) and all(r["state"] in ("success", "failed") for r in runs)

    wait_until(finished, timeout=600, interval=1, what=f"every run of {dag_id} to finish")
    failed = [r["dag_run_id"] for r in stack.dag_runs(dag_id) if r["state"] != "success"]
    assert not failed, f"runs failed: {failed}"
