"""The table load of an export: the plan a run carries (warehouse, target, full or incremental) and the load of a
published export into ``zoho_crm.<module>`` (:func:`zoho_crm.tables.warehouse.load_export`).

Plain code (no Airflow): :mod:`zoho_crm.export.tasks` decides the plan in ``resolve_query`` and runs the load in
``load_table``. A DAG with a warehouse connection loads every CSV export it publishes, one transaction per run:

- the first interval run of a module for a target (the DAG id) with no full load in the sync state exports
  everything instead of its interval (:attr:`LoadPlan.full_load`), so the table is complete from day one;
- later interval runs export their interval widened by the look-back (:data:`DEFAULT_LOAD_LOOKBACK`) at its
  start, catching records Zoho makes visible late; the order-safe merge keeps the overlap free of duplicates;
- ICS exports (Events) are not loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from zoho_crm.export.records import TIME_FIELD, ExportRun, ExportStepError
from zoho_crm.export.storage import open_store
from zoho_crm.files.digest import file_sha256

log = logging.getLogger(__name__)

LOAD_KEY = "table_load"
"""Where the plan travels in the run's XCom (beside :meth:`ExportRun.to_xcom`'s keys)."""
DEFAULT_LOAD_LOOKBACK = timedelta(minutes=10)
"""How far before its data interval an incremental run of a DAG with a warehouse starts exporting."""
ICS_NOT_LOADED = "Events ICS exports are not loaded into a table (only CSV exports are): nothing to do"


def table_asset_uri(conn_id: str, module: str) -> str:
    """The Asset of a module's table in the warehouse of ``conn_id``, updated when a load commits.

    :param conn_id: the warehouse connection.
    :param module: the module's API name.
    """
    from zoho_crm.tables.names import SCHEMA, table_name

    return f"zoho-crm-table://{conn_id}/{SCHEMA}.{table_name(module)}"


@dataclass(frozen=True)
class LoadPlan:
    """How a run's export is loaded.

    :param conn_id: the warehouse's Airflow connection (a Postgres connection).
    :param target: what feeds the table, for the sync state (the DAG id).
    :param full_load: the export has no time range: every record the DAG's query selects (the first load, or a
        manual run without a time range).
    :param interval_end: the data interval end an interval run covers (the sync state keeps the latest), ISO 8601.
    :param lookback_seconds: the look-back applied to the interval's start (0 for full and manual exports).
    """

    conn_id: str
    target: str
    full_load: bool
    interval_end: str | None = None
    lookback_seconds: float = 0.0

    def to_xcom(self) -> dict[str, Any]:
        """The plan as JSON."""
        return {"conn_id": self.conn_id, "target": self.target, "full_load": self.full_load,
                "interval_end": self.interval_end, "lookback_seconds": self.lookback_seconds}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> LoadPlan:
        """The plan from :meth:`to_xcom`'s dict.

        :param data: the JSON dict.
        """
        return cls(conn_id=str(data["conn_id"]), target=str(data["target"]), full_load=bool(data["full_load"]),
                   interval_end=data.get("interval_end"), lookback_seconds=float(data.get("lookback_seconds") or 0))

    def manifest_entry(self, module: str) -> dict[str, Any]:
        """What the manifest says of the load: the table, the connection, the target, full or incremental."""
        from zoho_crm.tables.names import SCHEMA, table_name

        return {"table": f"{SCHEMA}.{table_name(module)}", "conn_id": self.conn_id, "target": self.target,
                "full_load": self.full_load, "lookback_seconds": self.lookback_seconds}


def check_lookback(lookback: timedelta) -> float:
    """The look-back in seconds; a negative one is refused.

    :param lookback: the DAG's ``load_lookback``.
    """
    seconds = lookback.total_seconds()
    if seconds < 0:
        raise ValueError(f"load_lookback {lookback} is negative: give 0 or a small positive timedelta")
    return seconds


def check_loadable_fields(fields: tuple[str, ...]) -> None:
    """A field subset loaded into a table must include ``Modified_Time`` (the order-safe merge compares it).

    :param fields: the export's fields (empty: all fields).
    :raises ValueError: the subset lacks it.
    """
    if fields and TIME_FIELD not in fields:
        raise ValueError(
            f"fields {', '.join(fields)} lack {TIME_FIELD}: this DAG loads its exports into a table, whose "
            f"order-safe merge needs {TIME_FIELD}; add it to the fields"
        )


def needs_full_load(conn: Any, module: str, target: str) -> bool:
    """True when ``target`` has no full load of ``module`` in the warehouse's sync state yet.

    :param conn: a psycopg 3 connection to the warehouse.
    :param module: the module's API name.
    :param target: the DAG id.
    """
    from zoho_crm.tables.warehouse import read_sync_state

    state = read_sync_state(conn, module, target)
    conn.commit()
    return state is None or state.full_load_done_at is None


@contextmanager
def published_pages(run: ExportRun) -> Iterator[tuple[dict[str, Any], list[Path]]]:
    """The manifest the run key's pointer names (read through the store) and local copies of its data files for
    the ``with`` block (on disk the store's own files), each checked against the manifest's sha256.

    :param run: the export run.
    :raises ExportStepError: no published export, or a file that is not the published one.
    """
    store = open_store(run.store)
    manifest = store.current_manifest(run.final)
    if not manifest or "pages" not in manifest:
        raise ExportStepError(f"{run.query.module} {run.run_key}: no published export at "
                              f"{store.address(run.final)}: run the manifest task first")
    if manifest.get("run_id") != run.run_id:
        log.info("The export of %s was published again by run %s since: loading that one (the newest)",
                 run.run_key, manifest.get("run_id"))
    with ExitStack() as local:
        paths = []
        for page in manifest["pages"]:
            key = f"{run.final}/{page['file']}"
            try:
                path = local.enter_context(store.read_local(key))
            except FileNotFoundError:
                path = None
            actual = file_sha256(path) if path is not None else "(missing)"
            if actual != page["sha256"]:
                raise ExportStepError(f"page {page['page']} of {store.address(run.final)}: {store.address(key)} has "
                                      f"sha256 {actual}, the manifest says {page['sha256']}: publish the export "
                                      "again (clear the run)")
            paths.append(path)
        yield manifest, paths


def load_published(
    conn: Any, run: ExportRun, plan: LoadPlan, field_metadata: list[dict] | dict | None
) -> dict[str, Any]:
    """Merge the run's published export into its module's table in one transaction; return the counts.

    :param conn: a psycopg 3 connection to the warehouse (``PostgresHook(plan.conn_id).get_conn()``).
    :param run: the export run.
    :param plan: the run's load plan.
    :param field_metadata: the module's field metadata (None: new columns are text).
    """
    from zoho_crm.tables.warehouse import load_export

    interval_end = datetime.fromisoformat(plan.interval_end) if plan.interval_end else None
    with published_pages(run) as (manifest, paths):
        full_load = bool(manifest.get("full_load", plan.full_load))
        result = load_export(
            conn, paths, field_metadata, module=run.query.module, run_key=run.run_key, target=plan.target,
            field_subset=bool(manifest.get("fields")), interval_end=interval_end, full_load=full_load,
        )
    return {
        "table": result.table,
        "module": run.query.module,
        "run_key": run.run_key,
        "version": manifest.get("version"),
        "full_load": full_load,
        "pages": result.pages,
        "records": result.records,
        "staged": result.staged,
        "inserted": result.inserted,
        "updated": result.updated,
        "skipped": result.skipped,
        "added_columns": list(result.added_columns),
        "widened_columns": [list(change) for change in result.widened_columns],
        "nulled_columns": list(result.nulled_columns),
    }
