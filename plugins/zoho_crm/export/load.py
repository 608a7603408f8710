"""The table load of an export: the plan a run carries (warehouse, target, full or incremental) and the load of a
published export into ``zoho_crm.<module>`` (:func:`zoho_crm.tables.warehouse.load_export`).

Plain code (no Airflow): :mod:`zoho_crm.export.tasks` decides the plan in ``resolve_query`` and runs the load in
``load_table``. A DAG with a warehouse connection loads every CSV export it publishes, one transaction per run:

- the first interval run of a module for a target (the DAG id) with no full load in the sync state exports
  everything instead of its interval (:attr:`LoadPlan.full_load`), so the table is complete from day one;
- later interval runs export their interval widened by the look-back (:data:`DEFAULT_LOAD_LOOKBACK`) at its
  start, catching records Zoho makes visible late; the order-safe merge keeps the overlap free of duplicates;
- each load applies Zoho's deletions in the same transaction: one pass of the Deleted Records API per sync
  (:func:`fetch_deletions`, since the sync state's watermark minus :data:`DELETIONS_OVERLAP`), rows marked
  deleted (or removed: the DAG's ``deletion_mode``), and an unfiltered full export reconciles (:func:`reconciles`);
- the load's counts are published beside the export's pointer (:data:`LOAD_SUMMARY_NAME`, :func:`publish_load`);
- ICS exports (Events) are not loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from zoho_crm.export.records import TIME_FIELD, ExportQuery, ExportRun, ExportStepError
from zoho_crm.export.storage import open_store
from zoho_crm.files.digest import file_sha256

log = logging.getLogger(__name__)

LOAD_KEY = "table_load"
"""Where the plan travels in the run's XCom (beside :meth:`ExportRun.to_xcom`'s keys)."""
DEFAULT_LOAD_LOOKBACK = timedelta(minutes=10)
"""How far before its data interval an incremental run of a DAG with a warehouse starts exporting."""
ICS_NOT_LOADED = "Events ICS exports are not loaded into a table (only CSV exports are): nothing to do"
DELETIONS_OVERLAP = timedelta(minutes=10)
"""How far before the deletion watermark each sync's Deleted Records pass starts (deletions Zoho lists late, clock
skew); deletions already applied apply again as no-ops."""
DEFAULT_DELETION_MODE = "mark"
"""What a DAG's load does to the rows of deleted records: ``mark`` (``_zoho_deleted_at``/``_zoho_deleted_by``)."""
LOAD_SUMMARY_NAME = "load.json"
"""The file beside a run key's pointer (``manifest.json``) that the load writes its counts to, atomically."""
LOAD_COUNTS = ("inserted", "updated", "skipped", "marked_deleted", "restored", "removed")
"""The counts of a load that its log line, XCom, Asset event and :data:`LOAD_SUMMARY_NAME` give."""


def table_asset_uri(conn_id: str, module: str) -> str:
    """The Asset of a module's table in the warehouse of ``conn_id``, updated when a load commits.

    :param conn_id: the warehouse connection.
    :param module: the module's API name.
    """
    from zoho_crm.tables.names import qualified_table_name

    return f"zoho-crm-table://{conn_id}/{qualified_table_name(module)}"


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
        from zoho_crm.tables.names import qualified_table_name

        return {"table": qualified_table_name(module), "conn_id": self.conn_id, "target": self.target,
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


def check_deletion_mode(mode: str) -> str:
    """The DAG's ``deletion_mode``, checked.

    :param mode: ``mark`` or ``remove``.
    :raises ValueError: another value.
    """
    from zoho_crm.tables.deletions import DELETION_MODES

    if mode not in DELETION_MODES:
        raise ValueError(f"deletion_mode {mode!r} is not one of {', '.join(DELETION_MODES)}: mark keeps the rows of "
                         "deleted records with _zoho_deleted_at/_zoho_deleted_by set, remove deletes them")
    return mode


def reconciles(query: ExportQuery, full_load: bool) -> bool:
    """True for an unfiltered full export (no criteria, no custom view, all fields, no time range): only such an
    export may mark deleted every live row it lacks.

    :param query: the export's query.
    :param full_load: the export is its DAG's full load.
    """
    return full_load and query.time_range is None and not query.criteria and not query.cvid and not query.fields


def fetch_deletions(
    conn: Any, module: str, target: str, get_deleted: Callable[..., list[dict]]
) -> tuple[datetime | None, list[dict]]:
    """One Deleted Records pass for a sync: ``(since, entries)``, since the sync state's watermark minus
    :data:`DELETIONS_OVERLAP` (None, every deletion Zoho lists, before the first deletion applied).

    :param conn: a psycopg 3 connection to the warehouse (left with no transaction in progress).
    :param module: the module's API name.
    :param target: the DAG id.
    :param get_deleted: ``ZohoCRMHook.get_deleted_records`` (one paged pass: these calls cost API credits).
    """
    from zoho_crm.tables.warehouse import read_sync_state

    state = read_sync_state(conn, module, target)
    conn.commit()
    since = state.deleted_since - DELETIONS_OVERLAP if state and state.deleted_since else None
    return since, get_deleted(module, since=since)


def load_published(
    conn: Any, run: ExportRun, plan: LoadPlan, field_metadata: list[dict] | dict | None,
    *, get_deleted: Callable[..., list[dict]] | None = None, deletion_mode: str = DEFAULT_DELETION_MODE,
) -> dict[str, Any]:
    """Merge the run's published export into its module's table in one transaction, with the module's deletions
    since the watermark (and the reconcile of an unfiltered full export); return the counts.

    :param conn: a psycopg 3 connection to the warehouse (``PostgresHook(plan.conn_id).get_conn()``).
    :param run: the export run.
    :param plan: the run's load plan.
    :param field_metadata: the module's field metadata (None: new columns are text).
    :param get_deleted: ``ZohoCRMHook.get_deleted_records``; None: no deletions step (and no reconcile).
    :param deletion_mode: ``mark`` or ``remove`` (:func:`check_deletion_mode`).
    """
    from zoho_crm.tables.warehouse import load_export

    check_deletion_mode(deletion_mode)
    interval_end = datetime.fromisoformat(plan.interval_end) if plan.interval_end else None
    since, deletions = (None, None)
    if get_deleted is not None:
        since, deletions = fetch_deletions(conn, run.query.module, plan.target, get_deleted)
    with published_pages(run) as (manifest, paths):
        full_load = bool(manifest.get("full_load", plan.full_load))
        reconcile = get_deleted is not None and reconciles(run.query, full_load)
        result = load_export(
            conn, paths, field_metadata, module=run.query.module, run_key=run.run_key, target=plan.target,
            field_subset=bool(manifest.get("fields")), interval_end=interval_end, full_load=full_load,
            deletions=deletions, deletion_mode=deletion_mode, reconcile=reconcile,
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
        "marked_deleted": result.marked_deleted,
        "restored": result.restored,
        "removed": result.removed,
        "deletion_mode": deletion_mode,
        "deletions_since": since.isoformat() if since else None,
        "deletions_listed": None if deletions is None else len(deletions),
        "reconciled": reconcile,
        "deleted_since": result.deleted_since.isoformat() if result.deleted_since else None,
    }


def publish_load(run: ExportRun, counts: Mapping[str, Any]) -> str:
    """Write the load's counts to :data:`LOAD_SUMMARY_NAME` beside the run key's pointer, atomically through the
    store (readers see the previous load's file or this one); return its address.

    :param run: the export run.
    :param counts: what :func:`load_published` returned.
    """
    store = open_store(run.store)
    key = f"{run.final}/{LOAD_SUMMARY_NAME}"
    store.write_json(key, {**counts, "run_id": run.run_id, "loaded_at": datetime.now(UTC).isoformat()})
    return store.address(key)
