"""Merge one export's validated CSV pages into ``zoho_crm.<module>`` of a PostgreSQL database (psycopg 3).

One transaction per export, serialised per table with ``pg_advisory_xact_lock``:

1. the table is created (primary key ``id``) or evolved: a new column is added, a safe widening applied
   (:meth:`~zoho_crm.tables.schema.ColumnType.widens_to`), any other type change fails naming the column;
2. a table this load created has nothing to merge: the pages are copied (``COPY``) straight into it (when an id
   is on two pages, that is undone and the staged merge below keeps its newest version);
3. otherwise every page is copied into a temporary staging table typed like the table, and one ``MERGE`` joins
   it to the table by ``id``: a row is only replaced by a version with a ``Modified_Time`` at least as new and
   different content, so reruns, backfills and runs finishing out of order never overwrite newer data and the
   same interval loaded twice leaves the same table. An all-fields export sets the table's columns it no longer
   exports (fields removed in Zoho) to null; a field-subset export only writes its own columns. (``MERGE``, not
   ``INSERT ... ON CONFLICT``: that one locks every conflicting row, a WAL record each, before it can skip or
   update it; the set-wise join makes the load of a 200,000-row page about 15% faster, see
   ``bench/bench_tables.py``);
4. deletions (:mod:`zoho_crm.tables.deletions`): rows of records the export has with a ``Modified_Time`` after
   their deletion are live again; the Deleted Records API's entries mark rows (``_zoho_deleted_at``,
   ``_zoho_deleted_by``) or remove them; an unfiltered full export can reconcile (every live row it lacks is deleted);
5. the export's sync state (``zoho_crm._sync_state``) is updated, with the deletion watermark (``deleted_since``).

Anything failing rolls the whole transaction back: the table is as it was before the export.
Use the connection of ``PostgresHook(postgres_conn_id).get_conn()`` (psycopg 3 with SQLAlchemy 2), on
PostgreSQL 15 or later (``MERGE``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from zoho_crm.tables.deletions import (
    DELETION_MODES,
    MARK,
    Deletion,
    DeletionSteps,
    deleted_index_name,
    parse_deletions,
)
from zoho_crm.tables.names import (
    BOOKKEEPING,
    DELETED_AT,
    DELETED_BY,
    ID,
    MODIFIED_TIME,
    RUN_KEY,
    SCHEMA,
    SYNC_STATE_TABLE,
    SYNCED_AT,
    column_name,
    table_name,
)
from zoho_crm.tables.parquet import csv_columns
from zoho_crm.tables.schema import Column, ColumnType, TableSchema, table_schema

STAGE = "_zoho_stage"
COPY_CHUNK_BYTES = 1 << 20
MIN_SERVER_VERSION = 150000
"""PostgreSQL 15, the first with ``MERGE``."""
MERGE_WORK_MEM = "128MB"
"""``work_mem`` of the load's transaction: the merge's hash of the table's ids (about 60 bytes a row, and
PostgreSQL lets a hash take ``hash_mem_multiplier`` (2) times it) stays in memory up to about 4 million rows; the
default 4 MB would spill a 200,000-row table to disk and make the merge about 20% slower."""
TABLE_FILLFACTOR = 50
"""Half of each page of a new table is left free, so that a merge rewriting every row (a full export after the
first) updates in place (HOT: no index entries, ~20% faster) at the cost of about twice the disk space."""


class WarehouseLoadError(RuntimeError):
    """The database refused the load (its message, the column and the page where known); nothing was changed."""


class SchemaChangeError(WarehouseLoadError):
    """A column's type changed in a way the table cannot take without losing values."""


@dataclass(frozen=True)
class LoadResult:
    """What one export did to its table.

    ``records``: records in the pages; ``staged``: distinct record ids among them; ``inserted``: new rows;
    ``updated``: rows replaced by a version at least as new and different; ``skipped``: rows left as they were,
    because the table holds this very version or a newer one (an older interval loaded again).
    """

    table: str
    pages: int
    records: int
    staged: int
    inserted: int
    updated: int
    skipped: int
    added_columns: tuple[str, ...] = ()
    widened_columns: tuple[tuple[str, str, str], ...] = ()
    """(column, old type, new type) of every column widened by this load."""
    nulled_columns: tuple[str, ...] = field(default=())
    """Columns of the table this all-fields export no longer has: null in every row it wrote."""
    marked_deleted: int = 0
    """Rows marked deleted (``_zoho_deleted_at`` set) by the deletions given or the reconcile."""
    removed: int = 0
    """Rows removed (``deletion_mode="remove"``) by the deletions given or the reconcile."""
    restored: int = 0
    """Rows marked deleted that this export has with a newer ``Modified_Time``: live again."""
    deleted_since: datetime | None = None
    """The latest ``deleted_time`` of the deletions given (the sync state keeps the latest of all loads)."""


@dataclass(frozen=True)
class SyncState:
    """The sync state of one module and target (e.g. the DAG exporting it)."""

    module: str
    target: str
    last_interval_end: datetime | None
    full_load_done_at: datetime | None
    last_run_key: str
    updated_at: datetime
    deleted_since: datetime | None = None
    """The latest deletion applied (pass it as ``since`` to ``ZohoCRMHook.get_deleted_records``); None: none yet."""


def ensure_warehouse_schema(conn: psycopg.Connection) -> None:
    """Create schema ``zoho_crm`` and its sync-state table if missing (own transaction, serialised)."""
    _check_connection(conn)
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [SCHEMA])
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (module text NOT NULL, target text NOT NULL, "
            "last_interval_end timestamptz, full_load_done_at timestamptz, last_run_key text NOT NULL, "
            "updated_at timestamptz NOT NULL, PRIMARY KEY (module, target))"
        ).format(sql.Identifier(SCHEMA, SYNC_STATE_TABLE)))
        cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS deleted_since timestamptz").format(
            sql.Identifier(SCHEMA, SYNC_STATE_TABLE)))


def read_sync_state(conn: psycopg.Connection, module: str, target: str) -> SyncState | None:
    """The sync state of ``module`` for ``target``; None when nothing was loaded yet (no state, or no schema).

    :param conn: a psycopg 3 connection to the warehouse database.
    :param module: the Zoho module API name.
    :param target: what feeds the table, as given to :func:`load_export`.
    """
    table_name(module)
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT to_regclass(%s), (SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                    "AND attname = 'deleted_since' AND NOT attisdropped)", [f"{SCHEMA}.{SYNC_STATE_TABLE}"] * 2)
        table, has_watermark = cur.fetchone()
        if table is None:
            return None
        if not has_watermark:  # a state table of an older version, before its first load by this one
            ensure_warehouse_schema(conn)
        cur.execute(sql.SQL(
            "SELECT module, target, last_interval_end, full_load_done_at, last_run_key, updated_at, "
            "deleted_since FROM {} "
            "WHERE module = %s AND target = %s"
        ).format(sql.Identifier(SCHEMA, SYNC_STATE_TABLE)), [module, target])
        row = cur.fetchone()
    return SyncState(*row) if row else None


def load_export(
    conn: psycopg.Connection,
    pages: Sequence[str | Path],
    field_metadata: list[dict] | dict | None,
    *,
    module: str,
    run_key: str,
    target: str,
    field_subset: bool,
    interval_end: datetime | None = None,
    full_load: bool = False,
    deletions: list[dict] | None = None,
    deletion_mode: str = MARK,
    reconcile: bool = False,
) -> LoadResult:
    """Merge the validated CSV ``pages`` of one export into ``zoho_crm.<module lower>`` in one transaction.

    :param conn: a psycopg 3 connection with no transaction in progress (e.g. ``PostgresHook.get_conn()``).
    :param pages: the export's CSV page files (same header; they must include ``Modified_Time``).
    :param field_metadata: the module's ``settings/fields`` answer or list; None: new columns are text.
    :param module: the Zoho module API name.
    :param run_key: this run's key, stored in ``_zoho_run_key`` of every row written and in the sync state.
    :param target: what feeds the table (e.g. the DAG id): the sync state is kept per module and target.
    :param field_subset: the export holds only some fields: columns it lacks are left as they are.
    :param interval_end: the end of the interval this export covers (the sync state keeps the latest).
    :param full_load: this export is a full export (sets the sync state's ``full_load_done_at``).
    :param deletions: the Deleted Records API's entries since the sync state's ``deleted_since``
        (``ZohoCRMHook.get_deleted_records``), applied in the same transaction; None: no deletions step.
    :param deletion_mode: ``mark`` (set ``_zoho_deleted_at`` / ``_zoho_deleted_by``) or ``remove`` (delete the rows;
        a later load of an interval before the deletion can then bring an old version back).
    :param reconcile: this is an unfiltered full export (no criteria, no custom view, all fields, no time range;
        the caller decides): every live row it lacks, not modified after ``interval_end``, is deleted.
    :raises SchemaChangeError: a column's type changed unsafely (the message says which and what to do).
    :raises WarehouseLoadError: the database refused something (its message, the column and page where known).
    """
    table = table_name(module)
    if deletion_mode not in DELETION_MODES:
        raise ValueError(f"deletion_mode {deletion_mode!r} is not one of {', '.join(DELETION_MODES)}")
    if reconcile and field_subset:
        raise ValueError("reconcile needs an unfiltered export of all fields: a field subset lacks nothing it could "
                         "tell deleted; load it with reconcile=False")
    parsed = None if deletions is None else parse_deletions(deletions)
    pages = [Path(p) for p in pages]
    if not pages:
        raise ValueError(f"no pages to load into {SCHEMA}.{table}")
    header = _common_header(pages)
    schema = table_schema(field_metadata, header)
    names = [column_name(n) for n in header]
    if len(set(names)) != len(names) or ID not in names:
        raise ValueError(f"{pages[0]}: the header needs one id column and distinct names (it has {', '.join(header)})")
    if MODIFIED_TIME not in names:
        raise ValueError(f"{pages[0]}: no {MODIFIED_TIME} column; it is needed for order-safe merges: add it to "
                         "the export's fields")
    _check_connection(conn)
    if conn.info.server_version < MIN_SERVER_VERSION:
        raise WarehouseLoadError(f"the warehouse database runs PostgreSQL {conn.info.server_version // 10000}; loads "
                                 f"need PostgreSQL {MIN_SERVER_VERSION // 10000} or later (MERGE): point the "
                                 "warehouse connection at a newer server; nothing was loaded")
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise ValueError("the connection has a transaction in progress: commit or roll it back first (the load "
                         "must be its own transaction)")
    ensure_warehouse_schema(conn)
    loader = _Loader(conn, table, schema, header, names)
    try:
        with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            loader.cur = cur
            result = loader.run(pages, run_key, field_subset, parsed, deletion_mode,
                                reconcile_before=interval_end if reconcile else None, reconcile=reconcile)
            _save_sync_state(cur, module, target, run_key, interval_end, full_load, result.deleted_since)
    except WarehouseLoadError:
        raise
    except psycopg.Error as exc:
        raise loader.error(exc) from exc
    return result


def _check_connection(conn: psycopg.Connection) -> None:
    if not isinstance(conn, psycopg.Connection):
        raise TypeError(f"expected a psycopg 3 connection, got {type(conn).__name__}: use "
                        "PostgresHook(...).get_conn() with psycopg 3 installed, or psycopg.connect(...)")


def _common_header(pages: list[Path]) -> list[str]:
    header = csv_columns(pages[0])
    for page in pages[1:]:
        other = csv_columns(page)
        if other != header:
            raise ValueError(f"{page}: its header differs from {pages[0]}'s; the pages of one export share one")
    return header


class _Loader:
    """The steps of one load inside its transaction; remembers where it is for error messages."""

    def __init__(self, conn: psycopg.Connection, table: str, schema: TableSchema, header: list[str],
                 names: list[str]) -> None:
        self.conn, self.table, self.schema, self.header, self.names = conn, table, schema, header, names
        self.cur: psycopg.Cursor | None = None
        self.step = "preparing the table"
        self.page: Path | None = None
        self.column: str | None = None
        self.target = sql.Identifier(SCHEMA, table)
        self.regclass = f'{SCHEMA}."{table}"'
        """The table as text for ``regclass`` lookups, its name quoted as it was created."""

    def run(self, pages: list[Path], run_key: str, field_subset: bool, deletions: list[Deletion] | None = None,
            deletion_mode: str = MARK, *, reconcile_before: datetime | None = None,
            reconcile: bool = False) -> LoadResult:
        cur = self.cur
        cur.execute("SET LOCAL TimeZone = 'UTC'")
        cur.execute("SET LOCAL DateStyle = 'ISO, YMD'")
        cur.execute(sql.SQL("SET LOCAL work_mem = {}").format(sql.Literal(MERGE_WORK_MEM)))
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"{SCHEMA}.{self.table}"])
        existing = self._existing_columns()
        steps = DeletionSteps(cur, self.target, STAGE, run_key)
        filled = None if existing else self._fill_new_table(pages, run_key)
        if filled is not None:  # nothing to merge, restore or reconcile: every row is the export's
            records, added = filled
            staged, inserted, updated, widened, nulled = records, records, 0, [], ()
        else:
            types, added, widened = self._evolve(existing)
            self._deletion_columns(existing)
            nulled = () if field_subset else tuple(n for n in existing if n not in types and n not in BOOKKEEPING)
            self._stage(types)
            records = sum(self._copy(page, staging=True) for page in pages)
            self.page, self.step = None, "restoring rows the export has again"
            steps.restore()
            self.step = "merging the staged rows"
            staged = self._distinct_staged() if len(pages) > 1 else records
            inserted, updated = self._merge(types, nulled, {n: existing[n] for n in nulled}, run_key,
                                            dedupe=staged < records)
            if reconcile:
                self.step = "reconciling the full export (rows it lacks are deleted)"
                steps.reconcile(deletion_mode, reconcile_before)
        if deletions is not None:
            self.step = "applying the deletions"
            steps.apply(deletions, deletion_mode)
        counts = steps.counts
        return LoadResult(f"{SCHEMA}.{self.table}", len(pages), records, staged, inserted, updated,
                          staged - inserted - updated, tuple(added), tuple(widened), nulled, counts.marked,
                          counts.removed, counts.restored,
                          max((d.deleted_at for d in deletions), default=None) if deletions else None)

    def _fill_new_table(self, pages: list[Path], run_key: str) -> tuple[int, list[str]] | None:
        """Create the table and COPY the pages straight into it, frozen (no later freeze or hint-bit pass; it is
        new in this transaction, so nobody sees the rows early): (records, columns), or None when an id is on two
        pages: then the table and its rows are undone (a savepoint) and the staged merge keeps the newest."""
        ident = sql.Identifier
        try:
            with self.conn.transaction():  # a savepoint: COPY FREEZE needs the table created inside it
                _, added, _ = self._evolve({})
                self._deletion_columns({})
                self.cur.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT now(), "
                                         "ALTER COLUMN {} SET DEFAULT {}").format(
                    self.target, ident(SYNCED_AT), ident(RUN_KEY), sql.Literal(run_key)))
                records = sum(self._copy(page, staging=False) for page in pages)
                self.cur.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT, ALTER COLUMN {} DROP DEFAULT")
                                 .format(self.target, ident(SYNCED_AT), ident(RUN_KEY)))
        except psycopg.errors.UniqueViolation:
            records = None
        self.page = None
        return None if records is None else (records, added)

    def _deletion_columns(self, existing: dict[str, str]) -> None:
        """The deletion marks and the partial index of marked rows (added to a table created before them)."""
        self.step = "adding the deletion columns"
        if existing and not all(n in existing for n in (DELETED_AT, DELETED_BY)):
            self.cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} timestamptz, "
                                     "ADD COLUMN IF NOT EXISTS {} bigint").format(
                self.target, sql.Identifier(DELETED_AT), sql.Identifier(DELETED_BY)))
        self.cur.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({}) WHERE {} IS NOT NULL").format(
            sql.Identifier(deleted_index_name(self.table)), self.target, sql.Identifier(ID),
            sql.Identifier(DELETED_AT)))
        self.step = "preparing the table"

    def _existing_columns(self) -> dict[str, str]:
        """The table's columns and their ``format_type`` (empty when there is no table yet)."""
        self.cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            [self.regclass],
        )
        return dict(self.cur.fetchall())

    def _evolve(self, existing: dict[str, str]) -> tuple[dict[str, str], list[str], list[tuple[str, str, str]]]:
        """Create the table or add and widen its columns; return each exported column's type in the table."""
        wanted = {name: self.schema.get(csv_name) for name, csv_name in zip(self.names, self.header, strict=True)}
        if not existing:
            columns = [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(c.type.postgres)) for n, c in wanted.items()
                       if n != ID]
            self.cur.execute(sql.SQL("CREATE TABLE {} ({} bigint PRIMARY KEY, {}, {} timestamptz, {} bigint, "
                                     "{} timestamptz NOT NULL, {} text NOT NULL) WITH (fillfactor = {})").format(
                self.target, sql.Identifier(ID), sql.SQL(", ").join(columns), sql.Identifier(DELETED_AT),
                sql.Identifier(DELETED_BY), sql.Identifier(SYNCED_AT), sql.Identifier(RUN_KEY),
                sql.Literal(TABLE_FILLFACTOR)))
            return {n: c.type.postgres for n, c in wanted.items()}, [n for n in wanted if n != ID], []
        types, added, widened = {}, [], []
        for name, column in wanted.items():
            self.column = name
            current = existing.get(name)
            if current is None:
                self.cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                    self.target, sql.Identifier(name), sql.SQL(column.type.postgres)))
                types[name] = column.type.postgres
                added.append(name)
            elif self._widen(name, current, column):
                types[name] = column.type.postgres
                widened.append((name, current, column.type.postgres))
            else:
                types[name] = current
        self.column = None
        return types, added, widened

    def _widen(self, name: str, current: str, column: Column) -> bool:
        """Whether the column must become ``column.type`` (altered here); False keeps its type."""
        old = ColumnType.from_postgres(current)
        new = column.type
        if old is None or old == new or self.schema.text_only or new.widens_to(old):
            return False  # unknown (altered by hand), same, no metadata, or the table is already wider
        if not old.widens_to(new):
            raise SchemaChangeError(
                f"column {name} of {SCHEMA}.{self.table} is {current}, but the field metadata now makes it "
                f"{new} (data_type {column.data_type!r}), which cannot hold every {current} value; nothing was "
                f"loaded. To accept the change, convert the column yourself (ALTER TABLE {SCHEMA}.{self.table} "
                f'ALTER COLUMN "{name}" TYPE {new} USING ...) or drop it (it is refilled by the next full '
                "export), then rerun"
            )
        self.cur.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{}").format(
            self.target, sql.Identifier(name), sql.SQL(new.postgres), sql.Identifier(name), sql.SQL(new.postgres)))
        return True

    def _stage(self, types: dict[str, str]) -> None:
        self.cur.execute(sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(
            sql.Identifier(STAGE),
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(types[n])) for n in self.names)))

    def _copy(self, page: Path, *, staging: bool) -> int:
        """COPY one page into the staging table, or else the table (the header skipped, empty cells null, trailing
        blank lines dropped: the validation tolerates them); returns its record count."""
        self.page, self.step = page, f"copying the page into the {'staging table' if staging else 'table'}"
        columns = sql.SQL(", ").join(sql.Identifier(n) for n in self.names)
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true, FORCE_NULL ({}){})").format(
            sql.Identifier(STAGE) if staging else self.target, columns, columns,
            sql.SQL("" if staging else ", FREEZE true"))
        with self.cur.copy(statement) as copy, open(page, "rb") as handle:
            tail = b""
            while chunk := handle.read(COPY_CHUNK_BYTES):
                data = tail + chunk
                body = data.rstrip(b"\r\n")
                tail = data[len(body):]
                copy.write(body)
            copy.write(tail[:2] if tail.startswith(b"\r\n") else tail[:1])  # one end of line, as the file's
        return self.cur.rowcount

    def _distinct_staged(self) -> int:
        """Distinct record ids staged (only asked when several pages could repeat an id)."""
        self.cur.execute(sql.SQL("SELECT count(DISTINCT {}) FROM {}").format(sql.Identifier(ID), sql.Identifier(STAGE)))
        return self.cur.fetchone()[0]

    def _merge(self, types: dict[str, str], nulled: tuple[str, ...], nulled_types: dict[str, str], run_key: str,
               *, dedupe: bool) -> tuple[int, int]:
        """One MERGE of the staged rows (the newest of each id when ``dedupe``): (inserted, updated)."""
        ident = sql.Identifier
        source = ident(STAGE)
        if dedupe:
            source = sql.SQL("(SELECT DISTINCT ON ({id}) * FROM {stage} ORDER BY {id}, {mt} DESC NULLS LAST)").format(
                id=ident(ID), stage=ident(STAGE), mt=ident(MODIFIED_TIME))
        # Modified_Time first: a newer version differs there and the comparison stops at once
        written = [MODIFIED_TIME, *(n for n in self.names if n not in (ID, MODIFIED_TIME))]
        sets = [sql.SQL("{} = s.{}").format(ident(n), ident(n)) for n in written]
        sets += [sql.SQL("{} = NULL").format(ident(n)) for n in nulled]
        sets += [sql.SQL("{} = now()").format(ident(SYNCED_AT)), sql.SQL("{} = %(run)s").format(ident(RUN_KEY))]
        old = [sql.SQL("t.{}").format(ident(n)) for n in (*written, *nulled)]
        new = [sql.SQL("s.{}").format(ident(n)) for n in written]
        new += [sql.SQL("NULL::{}").format(sql.SQL(nulled_types[n])) for n in nulled]
        statement = sql.SQL(
            "MERGE INTO {target} AS t USING {source} AS s ON t.{id} = s.{id} "
            "WHEN MATCHED AND (s.{mt} >= t.{mt} OR t.{mt} IS NULL) AND ROW({old}) IS DISTINCT FROM ROW({new}) "
            "THEN UPDATE SET {sets} "
            "WHEN NOT MATCHED THEN INSERT ({columns}, {synced}, {run}) VALUES ({values}, now(), %(run)s)"
        ).format(target=self.target, source=source, id=ident(ID), mt=ident(MODIFIED_TIME),
                 old=sql.SQL(", ").join(old), new=sql.SQL(", ").join(new), sets=sql.SQL(", ").join(sets),
                 columns=sql.SQL(", ").join(ident(n) for n in self.names), synced=ident(SYNCED_AT),
                 run=ident(RUN_KEY), values=sql.SQL(", ").join(sql.SQL("s.{}").format(ident(n)) for n in self.names))
        counted = self._tracks_counts()
        if counted:
            before = self._inserted_so_far()
        else:  # no statistics to read the inserts from: count the new ids first
            self.cur.execute(sql.SQL("SELECT count(*) FROM {} AS s WHERE NOT EXISTS (SELECT FROM {} AS t "
                                     "WHERE t.{} = s.{})").format(source, self.target, ident(ID), ident(ID)))
            inserted = self.cur.fetchone()[0]
        self.cur.execute(statement, {"run": run_key})
        written_rows = self.cur.rowcount
        if counted:
            inserted = self._inserted_so_far() - before
        return inserted, written_rows - inserted

    def _tracks_counts(self) -> bool:
        self.cur.execute("SELECT current_setting('track_counts')::boolean")
        return self.cur.fetchone()[0]

    def _inserted_so_far(self) -> int:
        """Rows this transaction inserted into the table so far (its statistics, kept when ``track_counts`` is on)."""
        self.cur.execute("SELECT pg_stat_get_xact_tuples_inserted(%s::regclass)", [self.regclass])
        return self.cur.fetchone()[0]

    def error(self, exc: psycopg.Error) -> WarehouseLoadError:
        """The database's message with the table, the step, the column and the page where known."""
        diag = exc.diag
        message = diag.message_primary or str(exc).strip()
        column = diag.column_name or self.column
        if column is None and diag.context:
            match = re.search(r"column (\S+?):", diag.context)
            column = match[1] if match else None
        parts = [f"loading {SCHEMA}.{self.table} failed while {self.step}: {message}"]
        if diag.message_detail:
            parts.append(f"detail: {diag.message_detail}")
        if column:
            parts.append(f"column {column}")
        if self.page is not None:
            parts.append(f"page {self.page}")
        if diag.context:
            parts.append(f"where: {diag.context.strip()}")
        return WarehouseLoadError("; ".join(parts) + "; the table is unchanged (the transaction was rolled back)")


def _save_sync_state(cur: psycopg.Cursor, module: str, target: str, run_key: str, interval_end: datetime | None,
                     full_load: bool, deleted_since: datetime | None) -> None:
    cur.execute(sql.SQL(
        "INSERT INTO {state} AS s (module, target, last_interval_end, full_load_done_at, last_run_key, updated_at, "
        "deleted_since) VALUES (%(module)s, %(target)s, %(end)s, CASE WHEN %(full)s THEN now() END, %(run)s, now(), "
        "%(deleted)s) "
        "ON CONFLICT (module, target) DO UPDATE SET "
        "last_interval_end = GREATEST(s.last_interval_end, excluded.last_interval_end), "
        "full_load_done_at = COALESCE(excluded.full_load_done_at, s.full_load_done_at), "
        "last_run_key = excluded.last_run_key, updated_at = excluded.updated_at, "
        "deleted_since = GREATEST(s.deleted_since, excluded.deleted_since)"
    ).format(state=sql.Identifier(SCHEMA, SYNC_STATE_TABLE)),
        {"module": module, "target": target, "end": interval_end, "full": full_load, "run": run_key,
         "deleted": deleted_since})
