"""An export on CeleryExecutor whose two workers share no directory at all, published to a bucket (issue 16).

Each worker is a host of its own: its own AIRFLOW_HOME, scratch space (``TMPDIR``), logs, copy of the DAG file,
token cache directory and host name (``hostname_callable``, so every task instance records where it ran). What
they share is what several real hosts share: the bucket (moto's S3 server, started here, through an ``aws``
connection with ``endpoint_url``), Redis (the Zoho connection's ``shared_state: redis``: token cache and download
ledger) and the Airflow services. Worker queues make the hand-over deterministic: host A runs the downloads,
host B unzips and validates every page (and publishes), so a local path handed from one to the other would fail.
The simulator runs on the compressed clock of the other Celery tests.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from include.devtools.airflow_stack import HOSTNAME_CALLABLE, HOSTNAME_ENV, AirflowStack
from include.devtools.metadata_db import MetadataDatabases
from include.devtools.zoho_simulator.process import SimulatorProcess
from tests.deployments import CELERY, SIMULATOR_OPTIONS, WINDOW
from tests.export.s3_server import BUCKET, CONN_ID, S3Server, s3_server
from tests.operators.download_checks import download_results
from tests.stack_support import airflow_stack, redis_database

pytestmark = CELERY

DAG_ID = "zoho_test_object_storage"
PREFIX = "e2e-exports"
REDIS_CONN_ID = "zoho_shared_state"
LEADS, PER_PAGE = 2000, 400
PAGES = LEADS // PER_PAGE
DOWNLOAD_HOST, PAGE_HOST = "host-a", "host-b"
PAGE_QUEUE = "pages"
ON_PAGE_HOST = ("unzip", "validate", "manifest")
"""The tasks on host B's queue; every other task (the downloads, the Parquet step) runs on host A."""
DAG_FILE = f'''"""An airflow dag: the export with its page steps split across two hosts by queue (test_object_storage.py)."""
from zoho_crm.export.dag import build_export_dag

dag = build_export_dag({DAG_ID!r}, module="Leads", schedule=None, poll_interval=1)
for task_id in {ON_PAGE_HOST!r}:
    dag.get_task(task_id).queue = {PAGE_QUEUE!r}
'''


@dataclass
class Host:
    """A Celery worker's own machine: every directory it uses, its name and the queue it serves."""

    name: str
    root: Path
    queue: str

    @property
    def scratch(self) -> Path:
        return self.root / "tmp"

    def env(self) -> dict[str, str]:
        """The worker's environment: nothing in it names a directory of the other host or of the stack."""
        home, dags = self.root / "airflow", self.root / "dags"
        for folder in (home, dags, self.scratch):
            folder.mkdir(parents=True, exist_ok=True)
        (dags / f"{DAG_ID}.py").write_text(DAG_FILE)
        return {
            "AIRFLOW_HOME": str(home), "TMPDIR": str(self.scratch), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "ZOHO_CRM_TOKEN_CACHE_DIR": str(home / "token-cache"),  # never used with the Redis shared state
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE, HOSTNAME_ENV: self.name,
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,  # the queue the worker serves
        }


@dataclass
class BucketDeployment:
    stack: AirflowStack
    sim: SimulatorProcess
    s3: S3Server
    hosts: list[Host]
    redis_url: str


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, system_databases: MetadataDatabases
               ) -> Iterator[BucketDeployment]:
    root = tmp_path_factory.mktemp("object-storage")
    hosts = [Host(DOWNLOAD_HOST, root / DOWNLOAD_HOST, "default"), Host(PAGE_HOST, root / PAGE_HOST, PAGE_QUEUE)]
    services = root / "services"
    services.mkdir()
    (services / "dags").mkdir()
    (services / "dags" / f"{DAG_ID}.py").write_text(DAG_FILE)
    with ExitStack() as stack:
        s3 = stack.enter_context(s3_server(services))
        redis_url = stack.enter_context(redis_database())  # the shared state's own database (not the broker's)
        sim = stack.enter_context(SimulatorProcess(**{**SIMULATOR_OPTIONS, "records": {"Leads": LEADS},
                                                      "per_page_csv": PER_PAGE}))
        env = {
            **dict([sim.env_var(conn_type="http", window_seconds=WINDOW, shared_state="redis",
                                redis_conn_id=REDIS_CONN_ID)]),
            f"AIRFLOW_CONN_{REDIS_CONN_ID.upper()}": redis_url,
            **s3.conn_env,
            "ZOHO_EXPORT_DIR": f"s3://{CONN_ID}@{BUCKET}/{PREFIX}",
        }
        airflow = stack.enter_context(airflow_stack(
            services / "airflow", dags_folder=services / "dags", env=env, executor="celery",
            databases=system_databases, worker_env=[host.env() for host in hosts],
        ))
        airflow.wait_for_dag(DAG_ID)
        yield BucketDeployment(airflow, sim, s3, hosts, redis_url)


def read_pointer(s3: S3Server, manifest_url: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest the pointer holds and every file it lists, read from the bucket with a plain S3 client; each
    file's sha256 checked against the manifest."""
    client = s3.client()
    bucket, _, key = manifest_url.removeprefix("s3://").partition("/")
    assert bucket == BUCKET
    manifest = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    run_key = key.rsplit("/", 1)[0]
    files = {}
    for page in manifest["pages"]:
        for kind, stored in page["files"].items():
            data = client.get_object(Bucket=bucket, Key=f"{run_key}/{stored['path']}")["Body"].read()
            assert hashlib.sha256(data).hexdigest() == stored["sha256"], (page["page"], kind)
            files[stored["path"]] = data
    return manifest, files


def test_page_steps_on_two_hosts_without_a_shared_directory_publish_to_the_bucket(
    deployment: BucketDeployment,
) -> None:
    stack, sim, s3 = deployment.stack, deployment.sim, deployment.s3
    run_id = stack.trigger(DAG_ID, conf={"module": "Leads"})
    state = stack.wait_for_run(DAG_ID, run_id, timeout=200)
    instances = stack.task_instances(DAG_ID, run_id)
    assert state == "success", [(ti["task_id"], ti["map_index"], ti["state"], ti["hostname"]) for ti in instances]

    # Published to the bucket, readable by its pointer, every sha256 intact; the staging area removed.
    summary = stack.return_value(DAG_ID, run_id, "manifest")
    assert summary["manifest"].startswith(f"s3://{BUCKET}/{PREFIX}/Leads/") and summary["page_count"] == PAGES
    manifest, files = read_pointer(s3, summary["manifest"])
    assert manifest["record_count"] == LEADS and manifest["valid"] and len(manifest["pages"]) == PAGES
    ids = []
    for page in manifest["pages"]:
        rows = list(csv.DictReader(io.StringIO(files[page["file"]].decode("utf-8-sig"))))
        assert json.loads(files[page["report"]])["valid"] and len(rows) == page["records"]
        ids += [row.get("id") or row["Id"] for row in rows]
    assert sorted(ids) == sorted(sim.record_ids("Leads"))
    assert s3.keys(f"{PREFIX}/.staging/") == []

    # The downloads handed their zips over through the bucket: a key and the sha256 Zoho served, no local path.
    served = {download["job_id"]: download["zip_sha256"] for download in sim.downloads()}
    downloads = download_results(stack, [run_id], DAG_ID)
    assert len(downloads) == PAGES
    for download in downloads:
        assert "path" not in download and download["key"] == f"{download['job_id']}/{download['job_id']}.zip"
        assert download["sha256"] == served[download["job_id"]]

    # Every page downloaded on host A, unzipped and validated on host B.
    hosts: dict[str, dict[int, str]] = {}
    for ti in instances:
        hosts.setdefault(ti["task_id"], {})[ti["map_index"]] = ti["hostname"]
    assert set(hosts["download"].values()) == {DOWNLOAD_HOST}, hosts
    assert set(hosts["unzip"].values()) == set(hosts["validate"].values()) == {PAGE_HOST}, hosts
    assert len(hosts["validate"]) == PAGES and hosts["manifest"] == {-1: PAGE_HOST}

    # One token request for the whole deployment (the token cache on Redis); no scratch file left on any host.
    assert len([r for r in sim.requests() if r["path"] == "/oauth/v2/token"]) == 1
    for host in deployment.hosts:
        assert not list(host.scratch.glob("zoho-*")), host.name  # the store's scratch folders, removed after use
        assert not (host.root / "airflow" / "token-cache").exists(), host.name
