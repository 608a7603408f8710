"""Run real Airflow components (api-server, scheduler, dag-processor, triggerer, Celery workers) as processes.

Used by the demo and by the tests that must exercise the real scheduler, triggerer and pools. Nothing here is
mocked: every component is the ``airflow`` command of the project's virtualenv, configured through environment
variables only, with its own ``AIRFLOW_HOME`` so nothing touches ``~/airflow``.

Example::

    with AirflowStack(tmp_path / "airflow", dags_folder=Path("dags"), database_url=url, env=conn_env) as stack:
        stack.wait_for_dag("zoho_crm_bulk_read")
        run_id = stack.trigger("zoho_crm_bulk_read", conf={"module": "Leads"})
        assert stack.wait_for_run("zoho_crm_bulk_read", run_id) == "success"

The metadata database is PostgreSQL (``database_url``: the embedded server or any other, see
``include/devtools/metadata_db.py``). Executors: ``LocalExecutor`` (default), or ``CeleryExecutor`` with ``broker_url``
(Redis) and ``celery_workers``, each with its own ``worker_env`` when given (a host of its own: its AIRFLOW_HOME,
scratch space, host name through :data:`HOSTNAME_CALLABLE`, queue).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from include.devtools.polling import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_BIN = str(Path(sys.executable).parent / "airflow")
FINISHED_RUN_STATES = {"success", "failed"}
ADMIN_USER = "admin"
BACKGROUND_COMPONENTS = ("scheduler", "dag-processor", "triggerer")
HOSTNAME_ENV = "AIRFLOW_STACK_HOSTNAME"
"""A component's own host name for :func:`stack_hostname` (e.g. each Celery worker its own)."""
HOSTNAME_CALLABLE = "include.devtools.airflow_stack.stack_hostname"
"""``[core] hostname_callable`` for components that set :data:`HOSTNAME_ENV`."""


def stack_hostname() -> str:
    """The host name a component reports (task instances record it): ``$AIRFLOW_STACK_HOSTNAME``, else the FQDN."""
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_reachable(host: str, port: int) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


class AirflowStack:
    """A running Airflow deployment made of real component processes (a context manager)."""

    def __init__(
        self,
        home: Path,
        *,
        dags_folder: Path,
        database_url: str,
        executor: str = "LocalExecutor",
        broker_url: str | None = None,
        celery_workers: int = 0,
        worker_env: Sequence[Mapping[str, str]] = (),
        env: Mapping[str, str] | None = None,
        pools_file: Path | None = REPO_ROOT / "include" / "config" / "pools.json",
        parallelism: int = 16,
        migrate: bool = True,
    ) -> None:
        self.home = Path(home).resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs_dir = self.home / "component-logs"
        self.logs_dir.mkdir(exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.executor = executor
        self.celery_workers = celery_workers
        self.worker_env = [dict(extra) for extra in worker_env]
        self.pools_file = pools_file
        self.migrate = migrate
        self._processes: dict[str, subprocess.Popen] = {}
        self._token: str | None = None
        self._password = self._admin_password()
        self.database_url = database_url
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "plugins"), str(REPO_ROOT)]),
            "AIRFLOW__CORE__DAGS_FOLDER": str(Path(dags_folder).resolve()),
            # DAG files copied out of the project (the harness's test DAG folders) find its export settings.
            "ZOHO_CRM_EXPORTS_CONFIG": str(REPO_ROOT / "include" / "config" / "zoho_crm_exports.json"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__SECRET_KEY": self._stable_secret("api_secret_key"),
            "AIRFLOW__API_AUTH__JWT_SECRET": self._stable_secret("jwt_secret"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # DAG files do not change while a stack runs: parse each rarely, and slowly rather than time out on
            # a busy 2-core machine (idle deployments of a test session must leave the CPU to the busy one).
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
        }
        if broker_url:
            self.env["AIRFLOW__CELERY__BROKER_URL"] = broker_url
            self.env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + database_url.replace("+psycopg2", "")
        self.env.update(env or {})

    def _stable_secret(self, name: str) -> str:
        """A secret kept in AIRFLOW_HOME so every component (and a second run of the demo) agrees on it."""
        path = self.home / f".{name}"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def _admin_password(self) -> str:
        path = self.home / "passwords.json"
        if not path.exists():
            path.write_text(json.dumps({ADMIN_USER: "admin"}))
        return json.loads(path.read_text())[ADMIN_USER]

    # -- lifecycle -------------------------------------------------------------------------------------

    def __enter__(self) -> AirflowStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Migrate the database (unless it is a copy of a migrated one), import the pools and start every
        component; wait until the API answers."""
        if self.migrate:
            self.cli("db", "migrate")
        if self.pools_file:
            self.cli("pools", "import", str(self.pools_file))
        self._spawn("api-server", "api-server", "--port", str(self.port), "--host", "127.0.0.1")
        for name in BACKGROUND_COMPONENTS:
            self._spawn(name, name)
        for index in range(self.celery_workers):
            extra = {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                     **(self.worker_env[index] if index < len(self.worker_env) else {})}
            home = Path(extra.get("AIRFLOW_HOME", self.home))
            self._spawn(
                f"celery-worker-{index}",
                "celery", "worker", "--concurrency", "16",
                "--celery-hostname", f"worker{index}@%h", "--pid", str(home / f"worker{index}.pid"),
                extra_env=extra,
            )
        wait_until(self._api_healthy, timeout=120, what="the Airflow API server to answer")

    def _spawn(self, name: str, *args: str, extra_env: Mapping[str, str] | None = None) -> None:
        log = open(self.logs_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self._processes[name] = subprocess.Popen(
            [AIRFLOW_BIN, *args],
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO_ROOT,
        )
        log.close()

    def stop(self, timeout: float = 30) -> None:
        """Stop every component and everything it started (each runs in its own process group)."""
        procs = list(self._processes.values())
        self._processes.clear()
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc, signal.SIGKILL)
            proc.wait()

    def check_alive(self) -> None:
        """Raise if a component died; name it and show the end of its log."""
        for name, proc in self._processes.items():
            if proc.poll() is not None:
                tail = (self.logs_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"Airflow component {name} exited with {proc.returncode}:\n{tail}")

    # -- CLI and REST API ------------------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run ``airflow ARGS`` with this stack's configuration."""
        result = subprocess.run(
            [AIRFLOW_BIN, *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return result

    def create_backfill(
        self, dag_id: str, from_date: str, to_date: str, reprocess_behavior: str = "none", max_active_runs: int = 10
    ) -> dict:
        """Create a backfill of ``dag_id`` over ``[from_date, to_date]`` (dates, UTC midnight) as the UI's Backfill
        dialog does (``POST /api/v2/backfills`` while every component runs); return the backfill."""
        body = {
            "dag_id": dag_id, "from_date": f"{from_date}T00:00:00Z", "to_date": f"{to_date}T00:00:00Z",
            "reprocess_behavior": reprocess_behavior, "max_active_runs": max_active_runs,
        }
        return self.api("POST", "/backfills", body)

    def _api_healthy(self) -> bool:
        self.check_alive()
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def token(self) -> str:
        """A JWT for the admin user, obtained the way a UI login does."""
        if self._token is None:
            body = json.dumps({"username": ADMIN_USER, "password": self._password}).encode()
            request = urllib.request.Request(
                f"{self.url}/auth/token", data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                self._token = json.load(response)["access_token"]
        return self._token

    def api(
        self, method: str, path: str, body: Any = None, *, expect: tuple[int, ...] = (200,), retry: bool | None = None
    ) -> Any:
        """Call the public REST API (``/api/v2`` + path) and return the decoded JSON answer.

        ``retry`` (default: for GET only, as the call must be idempotent): an answer >= 500 or no answer within
        the timeout is tried again (a busy 2-core machine can make the API server slow to answer).
        """
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/api/v2{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"},
        )
        if retry is None:
            retry = method == "GET"
        attempts = 5 if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                with urllib.request.urlopen(request, timeout=90) as response:
                    status, payload = response.status, response.read()
            except urllib.error.HTTPError as err:
                status, payload = err.code, err.read()
            except (TimeoutError, urllib.error.URLError) as err:
                if attempt == attempts:
                    raise RuntimeError(f"{method} /api/v2{path}: no answer ({err}) after {attempts} attempt(s)") from err
                continue
            if status < 500 or attempt == attempts:
                break
            time.sleep(attempt)
        if status not in expect:
            raise RuntimeError(f"{method} /api/v2{path} answered {status}: {payload[:2000]!r}")
        return json.loads(payload) if payload else None

    def wait_for_dag(self, dag_id: str, timeout: float = 180, unpause: bool = True) -> dict:
        """Wait until the dag processor has parsed ``dag_id`` (failing fast on import errors), then unpause it."""

        def parsed() -> dict | None:
            self.check_alive()
            errors = self.api("GET", "/importErrors")["import_errors"]
            if errors:
                raise RuntimeError(f"DAG import errors: {json.dumps(errors, indent=1)[:4000]}")
            found = self.api("GET", f"/dags/{dag_id}", expect=(200, 404))
            return found if found and found.get("dag_id") == dag_id else None

        dag = wait_until(parsed, timeout=timeout, interval=1, what=f"DAG {dag_id} to be parsed")
        if unpause:
            self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        return dag

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, **fields: Any) -> str:
        """Trigger a run through the REST API as the UI's trigger form does; return its run id.

        The run id is chosen here, so a POST that got no answer can be sent again: a run that was created
        anyway answers 409, and is the same run.
        """
        run_id = fields.pop("dag_run_id", None) or f"manual__{time.strftime('%Y%m%dT%H%M%S')}_{secrets.token_hex(4)}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": dict(conf or {}), **fields}
        self.api("POST", f"/dags/{dag_id}/dagRuns", body, expect=(200, 409), retry=True)
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str:
        quoted = urllib.parse.quote(run_id, safe="")
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{quoted}")["state"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        """Wait until the run finishes; return its final state ("success" or "failed")."""

        def finished() -> str | None:
            self.check_alive()
            state = self.run_state(dag_id, run_id)
            return state if state in FINISHED_RUN_STATES else None

        return wait_until(finished, timeout=timeout, interval=1, what=f"run {run_id} of {dag_id} to finish")

    def return_value(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """The XCom ``return_value`` of an (unmapped) task instance of a run."""
        quoted = urllib.parse.quote(run_id, safe="")
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/xcomEntries/return_value")[
            "value"
        ]

    def dag_runs(self, dag_id: str) -> list[dict]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns?limit=1000")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """Every task instance of a run, mapped ones included."""
        quoted = urllib.parse.quote(run_id, safe="")
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=1000")["task_instances"]


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
