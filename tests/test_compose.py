"""docker-compose.yaml, Dockerfile and .dockerignore, checked by parsing them (Docker cannot run here).

Services, shared Airflow settings, mounts, health-gated start order, the init script (run for real where it can
be: bash syntax and its password writer), the Airflow version of the image against requirements.txt, and the
default Zoho connection against the simulator service, include/config/pools.json and the DAG config, and every timing
setting of the deployment against Zoho's 60-second download window (retry delays, slot holds, Airflow timings).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from zoho_crm.airflow_compat import MIN_DEFERRAL_SECONDS
from zoho_crm.operators.download import MIN_RETRY_DELAY
from zoho_crm.rate_limit.window import (
    DEFAULT_DOWNLOAD_WINDOW_SECONDS,
    HOLD_MARGIN_SECONDS,
)

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
)
LONG_RUNNING = tuple(name for name in AIRFLOW_SERVICES if name != "airflow-init")
SIMULATOR = "zoho-simulator"
POOL = "zoho_crm_downloads"
# Compose's ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}; "$$" is a literal "$".
COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<default>[^}]*))?\}")
TIMING_SETTING = re.compile(r"(?:^|_)(?:TIMEOUT|INTERVAL|DELAY|SECS?|SECONDS|PERIOD|THRESHOLD|HEARTBEAT|TTL|TIME|WAIT)(?:_|$)")
"""Names of Airflow settings that are durations: each one in the compose file must have a check below."""
CELERY_VISIBILITY_TIMEOUT = "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"
CELERY_DEFAULT_VISIBILITY_TIMEOUT = 86400.0
"""What the Celery provider sets for a Redis broker when the compose file sets nothing."""


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def common(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["x-airflow-common"]


def _compose_default(template: str) -> str:
    """The default of a value that is exactly ``${NAME:-default}``."""
    match = COMPOSE_VARIABLE.fullmatch(template)
    assert match and match["op"] == ":-", f"{template!r} is not ${{NAME:-default}}"
    return match["default"]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path or volume name, from short-syntax volumes."""
    mounts = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = source
    return mounts


def _init_script(services: dict[str, Any]) -> str:
    init = services["airflow-init"]
    assert init["entrypoint"] == "/bin/bash" and init["command"][0] == "-c"
    return init["command"][1]


def _simulator_args(services: dict[str, Any]) -> argparse.Namespace:
    from include.devtools.zoho_simulator.config import build_parser

    command = services[SIMULATOR]["command"]
    assert command[:3] == ["python", "-m", "include.devtools.zoho_simulator"]
    return build_parser().parse_args(command[3:])


def _zoho_connection(common: dict[str, Any]) -> tuple[Any, Any]:
    """The default zoho_crm_default connection, parsed as the task runner and triggerer parse it."""
    from airflow.sdk import Connection

    from zoho_crm.hooks.connection import ZohoConnectionConfig

    template = common["environment"]["AIRFLOW_CONN_ZOHO_CRM_DEFAULT"]
    assert template.startswith("${ZOHO_CRM_CONNECTION:-"), "ZOHO_CRM_CONNECTION must override the connection"
    conn = Connection.from_uri(_compose_default(template), conn_id="zoho_crm_default")
    return conn, ZohoConnectionConfig.from_connection(conn)


def test_all_services_exist(services: dict[str, Any]) -> None:
    missing = {"postgres", "redis", SIMULATOR, *AIRFLOW_SERVICES} - services.keys()
    assert not missing, f"services missing from docker-compose.yaml: {sorted(missing)}"


def test_airflow_services_share_the_common_image_settings_and_mounts(
    services: dict[str, Any], common: dict[str, Any]
) -> None:
    assert common["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    for name in AIRFLOW_SERVICES:
        service = services[name]
        for key in ("image", "build", "volumes"):
            assert service[key] == common[key], f"{name}: {key} differs from x-airflow-common"
        for key, value in common["environment"].items():
            assert service["environment"].get(key) == value, f"{name}: environment {key} differs"
    assert services["airflow-init"]["user"] == "0:0", "airflow-init needs root for its chown"
    for name in LONG_RUNNING:
        assert services[name]["user"] == common["user"]


def test_common_environment_is_celery_on_postgres_and_redis(
    services: dict[str, Any], common: dict[str, Any]
) -> None:
    env = common["environment"]
    db = services["postgres"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for key, scheme in (
        ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql+psycopg2"),
        ("AIRFLOW__CELERY__RESULT_BACKEND", "db+postgresql"),
    ):
        url = urlsplit(env[key])
        assert (url.scheme, url.hostname, url.username, url.password, url.path) == (
            scheme, "postgres", db["POSTGRES_USER"], db["POSTGRES_PASSWORD"], "/" + db["POSTGRES_DB"]
        ), key
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379)
    api = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert (api.hostname, api.port, api.path) == ("airflow-apiserver", 8080, "/execution/")
    assert {"/opt/airflow/plugins", "/opt/airflow"} <= set(env["PYTHONPATH"].split(":"))


def test_common_mounts_code_logs_output_and_a_shared_token_cache(
    compose: dict[str, Any], common: dict[str, Any]
) -> None:
    mounts = _mounts(common)
    for folder in ("dags", "plugins", "include", "logs", "output"):
        assert mounts.get(f"/opt/airflow/{folder}") == f"./{folder}", f"./{folder} is not mounted"
    for folder in ("dags", "plugins", "include"):
        assert (ROOT / folder).is_dir()
    env = common["environment"]
    assert env["ZOHO_EXPORT_DIR"] == "/opt/airflow/output"
    token_volume = mounts.get(env["ZOHO_CRM_TOKEN_CACHE_DIR"])
    assert env["ZOHO_CRM_TOKEN_CACHE_DIR"] == "/opt/airflow/zoho_token_cache"
    assert token_volume in compose["volumes"], "the token cache must be a named volume shared by every service"


def test_start_order_is_gated_by_healthchecks(services: dict[str, Any]) -> None:
    for name in ("postgres", "redis", SIMULATOR, *LONG_RUNNING):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"] == depends["redis"] == {"condition": "service_healthy"}, name
        assert SIMULATOR not in depends, f"{name} must not need the simulator (real Zoho orgs scale it to 0)"
    for name in LONG_RUNNING:
        assert services[name]["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}'s missing healthcheck"


def test_services_run_their_airflow_components(services: dict[str, Any]) -> None:
    commands = {name: services[name]["command"] for name in LONG_RUNNING}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
        "airflow-worker": "celery worker",
    }


def test_init_migrates_and_imports_the_pool_file(services: dict[str, Any], common: dict[str, Any]) -> None:
    script = _init_script(services)
    lines = [line.strip() for line in script.splitlines()]
    assert "/entrypoint airflow db migrate" in lines
    import_line = next(line for line in lines if "airflow pools import" in line)
    pool_file = shlex.split(import_line)[-1]
    assert pool_file == "/opt/airflow/include/config/pools.json"
    mount = next(target for target in _mounts(common) if pool_file.startswith(target + "/"))
    assert (ROOT / _mounts(common)[mount] / Path(pool_file).relative_to(mount)).is_file()
    assert lines.index("/entrypoint airflow db migrate") < lines.index(import_line), "migrate before the import"


def test_init_script_is_valid_bash_with_every_dollar_escaped_for_compose(services: dict[str, Any]) -> None:
    script = _init_script(services)
    assert "$" not in script.replace("$$", ""), "a single $ in the init script is interpolated by Compose"
    result = subprocess.run(["bash", "-n"], input=script.replace("$$", "$"), text=True, capture_output=True)
    assert result.returncode == 0, result.stderr


def test_init_writes_the_admin_password_file_the_api_server_reads(
    compose: dict[str, Any], services: dict[str, Any], common: dict[str, Any], tmp_path: Path
) -> None:
    script = _init_script(services).replace("$$", "$")
    writer = re.search(r"<<'PY'\n(?P<code>.*?)\nPY\n", script, re.S)
    assert writer, "the init script has no python password writer"
    env = services["airflow-init"]["environment"]
    username = _compose_default(env["_AIRFLOW_WWW_USER_USERNAME"])
    assert common["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == (
        env["_AIRFLOW_WWW_USER_USERNAME"] + ":admin"
    )
    password_file = common["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    volume = _mounts(common).get(str(Path(password_file).parent))
    assert volume in compose["volumes"], "the password file must be on a named volume shared with the api-server"

    target = tmp_path / "passwords.json"
    result = subprocess.run(
        [sys.executable, "-c", writer["code"]],
        env={
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(target),
            "_AIRFLOW_WWW_USER_USERNAME": username,
            "_AIRFLOW_WWW_USER_PASSWORD": "s3cret-pw",
        },
        text=True, capture_output=True, check=True,
    )
    assert json.loads(target.read_text()) == {username: "s3cret-pw"}
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == [target], "no temporary file left behind"


def _warehouse_uri(common: dict[str, Any]) -> str:
    template = common["environment"]["AIRFLOW_CONN_ZOHO_CRM_WAREHOUSE"]
    assert template.startswith("${ZOHO_CRM_WAREHOUSE_CONNECTION:-"), "ZOHO_CRM_WAREHOUSE_CONNECTION must override it"
    return _compose_default(template)


def test_the_warehouse_connection_is_a_database_of_its_own_on_the_postgres_service(
    services: dict[str, Any], common: dict[str, Any]
) -> None:
    from airflow.sdk import Connection

    dag_config = json.loads((ROOT / "include" / "config" / "zoho_crm_exports.json").read_text())
    conn_id = dag_config["warehouse_conn_id"]
    assert f"AIRFLOW_CONN_{conn_id.upper()}" == "AIRFLOW_CONN_ZOHO_CRM_WAREHOUSE", "the shipped DAGs' connection"
    conn = Connection.from_uri(_warehouse_uri(common), conn_id=conn_id)
    postgres = services["postgres"]["environment"]
    metadata = urlsplit(common["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert conn.conn_type == "postgres" and (conn.host, conn.port) == ("postgres", 5432)
    assert (conn.login, conn.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
    assert conn.schema == "zoho_crm_warehouse" != metadata.path.lstrip("/") == postgres["POSTGRES_DB"]


def test_init_creates_the_warehouse_database_once(services: dict[str, Any]) -> None:
    """The init step's code, run for real against the local PostgreSQL service (skipped without it)."""
    import uuid

    import psycopg

    script = _init_script(services).replace("$$", "$")
    lines = [line.strip() for line in script.splitlines()]
    creator = re.search(r"/entrypoint python - <<'WAREHOUSE'\n(?P<code>.*?)\nWAREHOUSE\n", script, re.S)
    assert creator, "the init script has no warehouse database step"
    assert lines.index("/entrypoint airflow db migrate") < lines.index("/entrypoint python - <<'WAREHOUSE'")
    try:
        admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5",
                                autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432 ({exc.__class__.__name__})")
    name = f"zoho_compose_warehouse_{uuid.uuid4().hex[:8]}"
    env = {"AIRFLOW_CONN_ZOHO_CRM_WAREHOUSE": f"postgres://postgres@127.0.0.1:5432/{name}"}
    with admin:
        try:
            outputs = [subprocess.run([sys.executable, "-c", creator["code"]], env=env, text=True,
                                      capture_output=True, check=True).stdout for _ in range(2)]
            assert outputs == [f"Warehouse database {name} created\n", f"Warehouse database {name} exists\n"]
            assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_dockerfile_airflow_version_matches_requirements() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+apache/airflow:(?P<airflow>\d+\.\d+\.\d+)-python(?P<python>\d+\.\d+)\s*$",
                     dockerfile, re.M)
    assert base, "Dockerfile must start FROM apache/airflow:<version>-python<version>"
    pin = re.search(r"^apache-airflow(?:\[[^\]]*\])?==(?P<version>\S+)", (ROOT / "requirements.txt").read_text(),
                    re.M)
    assert pin, "requirements.txt must pin apache-airflow==<version>"
    assert base["airflow"] == pin["version"]
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["target-version"]
    assert "py" + base["python"].replace(".", "") == target


def test_dockerfile_installs_the_pinned_requirements_from_the_build_context() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copy = shlex.split(re.search(r"^COPY\s+(.+)$", dockerfile, re.M)[1])
    sources, dest = copy[:-1], copy[-1]
    assert sources == ["requirements.txt", "constraints.txt"]
    assert f"pip install --no-cache-dir -r {dest}requirements.txt -c {dest}constraints.txt" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for source in sources:
        assert f"!{source}" in ignored or "*" not in ignored, f".dockerignore leaves {source} out of the context"


def test_the_image_installs_the_provider_editable_where_compose_mounts_its_code(common: dict[str, Any]) -> None:
    """The provider is installed the way `make` installs it (pip install --no-deps -e <project>), from a project
    directory whose plugins/ is the one compose mounts, so the installed provider runs the mounted code; and the
    connection form's Test button is enabled as in the default install."""
    from include.devtools.local_setup import DEFAULT_INSTALL_SETTINGS

    dockerfile = (ROOT / "Dockerfile").read_text()
    install = re.search(r"^RUN pip install --no-cache-dir --no-deps -e (?P<project>/\S+) ", dockerfile, re.M)
    assert install, "the Dockerfile must install the provider with pip install --no-deps -e <dir>"
    project = install["project"].rstrip("/")
    copied = {}  # build-context path -> image path
    for line in re.findall(r"^COPY\s+(.+)$", dockerfile, re.M):
        *sources, dest = [word for word in shlex.split(line) if not word.startswith("--")]
        for source in sources:
            copied[source] = dest + source if dest.endswith("/") else dest
    assert copied.get("pyproject.toml") == f"{project}/pyproject.toml"
    assert copied.get("plugins/zoho_crm") == f"{project}/plugins/zoho_crm"
    assert dockerfile.index("-r /opt/requirements/requirements.txt") < install.start(), "requirements first"
    assert "$(BIN)/python -m pip install --quiet --no-deps -e ." in (ROOT / "Makefile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["packages"]["find"]["where"] == ["plugins"]
    assert pyproject["project"]["entry-points"]["apache_airflow_provider"]["provider_info"] == (
        "zoho_crm.get_provider_info:get_provider_info"
    )
    assert _mounts(common)[f"{project}/plugins"] == "./plugins", "the mounted plugins/ is the installed code"
    assert f"{project}/plugins" in common["environment"]["PYTHONPATH"].split(":")
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {"!pyproject.toml", "!plugins/zoho_crm"} <= set(ignored), ".dockerignore leaves the provider out"
    assert DEFAULT_INSTALL_SETTINGS == {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    for key, value in DEFAULT_INSTALL_SETTINGS.items():
        assert common["environment"].get(key) == value, f"{key} must be {value} as in the default install"


def test_compose_defaults_contain_no_braces() -> None:
    """Compose ends ${NAME:-default} at the first "}", so a default holding JSON would corrupt overrides."""
    text = COMPOSE_FILE.read_text()
    variables = list(COMPOSE_VARIABLE.finditer(text))
    assert any(match["name"] == "ZOHO_CRM_CONNECTION" for match in variables)
    for match in variables:
        assert "{" not in (match["default"] or ""), f"${{{match['name']}}} has a default with braces"


def test_simulator_service_runs_the_project_simulator_in_the_same_image(
    services: dict[str, Any], common: dict[str, Any]
) -> None:
    simulator = services[SIMULATOR]
    assert (simulator["image"], simulator["build"]) == (common["image"], common["build"])
    assert simulator["working_dir"] == "/opt/airflow"
    assert _mounts(simulator)["/opt/airflow/include"] == "./include"
    args = _simulator_args(services)
    assert args.host == "0.0.0.0"
    assert f"localhost:{args.port}/" in " ".join(simulator["healthcheck"]["test"])
    assert args.api_domain == f"http://{SIMULATOR}:{args.port}"


def test_default_connection_points_at_the_simulator_with_its_limits(
    services: dict[str, Any], common: dict[str, Any]
) -> None:
    conn, config = _zoho_connection(common)
    args = _simulator_args(services)
    simulator_url = f"http://{SIMULATOR}:{args.port}"
    assert conn.conn_type == "http"
    assert (conn.host, conn.port) == (SIMULATOR, args.port)
    assert (config.api_base(), config.accounts_url) == (simulator_url, simulator_url)
    assert (config.client_id, config.client_secret, config.refresh_token) == (
        args.client_id, args.client_secret, args.refresh_token
    ) == ("1000.SIMULATOR", "simulator-secret", "1000.simulator.refresh")
    # The simulator's --download-window / --download-limit (its defaults when not given) are Zoho's real limits.
    assert config.download_window_seconds == args.download_window == DEFAULT_DOWNLOAD_WINDOW_SECONDS == 60
    assert config.download_limit == args.download_limit == 10


def test_pool_slots_equal_the_connection_download_limit(services: dict[str, Any], common: dict[str, Any]) -> None:
    pools = json.loads((ROOT / "include" / "config" / "pools.json").read_text())
    dag_config = json.loads((ROOT / "include" / "config" / "zoho_crm_exports.json").read_text())
    assert dag_config["pool"] == POOL
    pool = pools[POOL]
    # Deferred downloads hold their slots for the window after their request: the pool must count them.
    assert pool["description"] and pool["include_deferred"] is True
    _, config = _zoho_connection(common)
    assert pool["slots"] == config.download_limit == _simulator_args(services).download_limit


def test_download_slot_holds_and_retries_outlast_the_connection_window(common: dict[str, Any]) -> None:
    """What the shipped DAGs' download tasks get: a slot held window + margin after each request, and a retry
    delay of at least the window although the DAG factory's default_args say 30 s."""
    from zoho_crm.export.config import load_export_config
    from zoho_crm.export.dag import build_export_dag

    _, config = _zoho_connection(common)
    window = config.download_window_seconds
    # Each request's slot is held window + margin (not lengthened to the deferral floor, which is shorter).
    assert HOLD_MARGIN_SECONDS > 0 and window >= MIN_DEFERRAL_SECONDS
    assert MIN_RETRY_DELAY.total_seconds() > window, (
        f"download tasks are retried after {MIN_RETRY_DELAY}: a {window:g} s window fails them (retry_delay check)"
    )
    dag_config = load_export_config(ROOT / "include" / "config" / "zoho_crm_exports.json")
    dag = build_export_dag("compose_timing_check", pool=dag_config["pool"], zoho_conn_id=dag_config["zoho_conn_id"],
                           custom_modules=dag_config["custom_modules"], schedule=None)
    download = dag.get_task("download")
    assert download.partial_kwargs["pool"] == POOL
    assert dag.default_args["retry_delay"].total_seconds() < window, "the case this guards: a shorter DAG default"
    assert download.partial_kwargs["retries"] >= 1
    assert download.partial_kwargs["retry_delay"] >= MIN_RETRY_DELAY
    cap = download.partial_kwargs.get("max_retry_delay")
    assert cap is None or cap >= MIN_RETRY_DELAY, "an exponential backoff's cap must not undercut the window"


def _timing_checks(window: float) -> dict[str, tuple[Callable[[float], bool], str]]:
    """Airflow duration settings that interact with the download window: setting name -> (check, why)."""
    retry = MIN_RETRY_DELAY.total_seconds()
    return {
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": (
            lambda seconds: seconds >= retry,
            f"a retry must not start inside the {window:g} s window of the failed try's request",
        ),
        CELERY_VISIBILITY_TIMEOUT: (
            lambda seconds: seconds >= retry,
            "Redis redelivers a task still running after the visibility timeout: the copy's request must fall "
            f"outside the {window:g} s window of the first one (the provider's default is 86400 s)",
        ),
    }


def test_airflow_timing_settings_are_coherent_with_the_download_window(
    services: dict[str, Any], common: dict[str, Any]
) -> None:
    """Every AIRFLOW__ duration the compose file sets (any service) is checked against Zoho's window; a new one
    without a check here fails, so it gets looked at. The Celery visibility timeout counts at its default too."""
    _, config = _zoho_connection(common)
    window = config.download_window_seconds
    checks = _timing_checks(window)
    settings: dict[str, str] = {}
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if key.startswith("AIRFLOW__") and TIMING_SETTING.search(key.split("__", 2)[-1]):
                value = str(value)
                if COMPOSE_VARIABLE.fullmatch(value):
                    value = _compose_default(value)
                assert settings.setdefault(key, value) == value, f"{key} differs between services ({name})"
    unchecked = sorted(settings.keys() - checks.keys())
    assert not unchecked, f"duration settings without a check against the download window: {unchecked}"
    for key, value in settings.items():
        check, why = checks[key]
        assert check(float(value)), f"{key}={value}: {why}"
    visibility = float(settings.get(CELERY_VISIBILITY_TIMEOUT, str(CELERY_DEFAULT_VISIBILITY_TIMEOUT)))
    assert checks[CELERY_VISIBILITY_TIMEOUT][0](visibility)
    assert common["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "airflow-triggerer" in services, "slot holds are deferred: they end in the triggerer"
