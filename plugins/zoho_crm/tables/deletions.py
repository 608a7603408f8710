"""Zoho's deletions applied to a module's table, inside the load's transaction (see :func:`~zoho_crm.tables.warehouse.
load_export`).

- :func:`parse_deletions` checks the Deleted Records API's entries (``ZohoCRMHook.get_deleted_records``);
- :class:`DeletionSteps` runs the SQL: restore rows that an export shows live again, mark (``_zoho_deleted_at``,
  ``_zoho_deleted_by``) or remove deleted rows, and reconcile a full export (every live row it lacks is deleted).

A deletion only applies to a row whose ``Modified_Time`` is not after it: a version written after the deletion
(the record was restored and edited) stays live. A marked row whose record reappears in an export with a
``Modified_Time`` after its deletion is live again (its marks cleared). Every step is idempotent: applying the
same deletions twice changes nothing the second time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from zoho_crm.tables.names import (
    DELETED_AT,
    DELETED_BY,
    ID,
    MAX_IDENTIFIER_BYTES,
    MODIFIED_TIME,
    RUN_KEY,
    SYNCED_AT,
)

MARK, REMOVE = "mark", "remove"
DELETION_MODES = (MARK, REMOVE)
DELETIONS_STAGE = "_zoho_deletions"


@dataclass(frozen=True)
class Deletion:
    """One deleted record: its id, when, and by whom (a Zoho user id; None when unknown)."""

    id: int
    deleted_at: datetime
    deleted_by: int | None


def parse_deletions(entries: Iterable[dict[str, Any]]) -> list[Deletion]:
    """The deletions of the API's entries, one per record id (its latest deletion).

    :param entries: ``data`` entries of ``GET /crm/{v}/{module}/deleted`` (``id``, ``deleted_time``, ``deleted_by``).
    :raises ValueError: an entry without a numeric id or an ISO 8601 ``deleted_time`` with offset (naming it).
    """
    latest: dict[int, Deletion] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not str(entry.get("id", "")).isdigit():
            raise ValueError(f"deletion #{index} ({entry!r:.200}) has no numeric id: pass the entries of "
                             "ZohoCRMHook.get_deleted_records as they are")
        try:
            at = datetime.fromisoformat(str(entry.get("deleted_time")))
        except ValueError:
            at = None
        if at is None or at.utcoffset() is None:
            raise ValueError(f"deletion #{index} (id {entry['id']}) has no deleted_time in ISO 8601 with an offset "
                             f"(got {entry.get('deleted_time')!r})")
        by = entry.get("deleted_by")
        by_id = by.get("id") if isinstance(by, dict) else None
        deletion = Deletion(int(entry["id"]), at, int(by_id) if str(by_id).isdigit() else None)
        known = latest.get(deletion.id)
        if known is None or known.deleted_at < deletion.deleted_at:
            latest[deletion.id] = deletion
    return list(latest.values())


def deleted_index_name(table: str) -> str:
    """The partial index of a table's marked rows (within PostgreSQL's 63 bytes, distinct from the table)."""
    name = f"{table}_deleted"
    if len(name) <= MAX_IDENTIFIER_BYTES:
        return name
    return f"{table[:44]}_{hashlib.sha256(table.encode()).hexdigest()[:10]}_deleted"


@dataclass
class DeletionCounts:
    """Rows restored (marks cleared), marked deleted, and removed by one load."""

    restored: int = 0
    marked: int = 0
    removed: int = 0


class DeletionSteps:
    """The deletion steps of one load on ``target`` (schema-qualified), staged rows in ``stage``."""

    def __init__(self, cur: psycopg.Cursor, target: sql.Composable, stage: str, run_key: str) -> None:
        self.cur, self.target, self.stage, self.run_key = cur, target, sql.Identifier(stage), run_key
        self.counts = DeletionCounts()

    def _sql(self, text: str, **extra: sql.Composable) -> sql.Composed:
        ident = sql.Identifier
        return sql.SQL(text).format(t=self.target, s=self.stage, d=ident(DELETIONS_STAGE), id=ident(ID),
                                    mt=ident(MODIFIED_TIME), at=ident(DELETED_AT), by=ident(DELETED_BY),
                                    synced=ident(SYNCED_AT), run=ident(RUN_KEY), **extra)

    def restore(self) -> None:
        """Clear the marks of rows whose record the staged export has with a Modified_Time after the deletion."""
        # the partial index of marked rows answers at once, but a table without statistics yet (a new one) looks
        # to the planner as if most rows were marked, and it would scan the whole table
        self.cur.execute("SET LOCAL enable_seqscan = off")
        self.cur.execute(self._sql("SELECT EXISTS (SELECT FROM {t} WHERE {at} IS NOT NULL)"))
        marked = self.cur.fetchone()[0]
        self.cur.execute("SET LOCAL enable_seqscan TO DEFAULT")
        if not marked:
            return  # nothing marked: no join of the whole export
        self.cur.execute(self._sql(
            "UPDATE {t} AS t SET {at} = NULL, {by} = NULL FROM {s} AS s "
            "WHERE t.{at} IS NOT NULL AND s.{id} = t.{id} AND s.{mt} > t.{at}"))
        self.counts.restored += self.cur.rowcount

    def apply(self, deletions: list[Deletion], mode: str) -> None:
        """Mark or remove the rows of ``deletions`` (rows not modified after their deletion)."""
        if not deletions:
            return
        self.cur.execute(self._sql("CREATE TEMPORARY TABLE {d} ({id} bigint PRIMARY KEY, {at} timestamptz NOT NULL, "
                                   "{by} bigint) ON COMMIT DROP"))
        with self.cur.copy(self._sql("COPY {d} ({id}, {at}, {by}) FROM STDIN")) as copy:
            for deletion in deletions:
                copy.write_row((deletion.id, deletion.deleted_at, deletion.deleted_by))
        applies = "t.{id} = d.{id} AND (t.{mt} IS NULL OR t.{mt} <= d.{at})"
        if mode == REMOVE:
            self.cur.execute(self._sql("DELETE FROM {t} AS t USING {d} AS d WHERE " + applies))
            self.counts.removed += self.cur.rowcount
            return
        marks = "SET {at} = d.{at}, {by} = d.{by}, {synced} = now(), {run} = %s FROM {d} AS d WHERE "
        self.cur.execute(self._sql("UPDATE {t} AS t " + marks + applies + " AND t.{at} IS NULL"), [self.run_key])
        self.counts.marked += self.cur.rowcount
        # a row already marked (e.g. by a full export's reconcile) takes the API's time and user
        self.cur.execute(self._sql("UPDATE {t} AS t " + marks + applies + " AND t.{at} IS NOT NULL AND "
                                   "(t.{at}, t.{by}) IS DISTINCT FROM (d.{at}, d.{by})"), [self.run_key])

    def reconcile(self, mode: str, cutoff: datetime | None) -> None:
        """Mark (or remove) every live row the staged full export lacks, unless modified after ``cutoff`` (the
        export's moment; None: now), which only a later export can have written."""
        moment = sql.Literal(cutoff) if cutoff is not None else sql.SQL("now()")
        missing = ("t.{at} IS NULL AND (t.{mt} IS NULL OR t.{mt} <= {moment}) "
                   "AND NOT EXISTS (SELECT FROM {s} AS s WHERE s.{id} = t.{id})")
        if mode == REMOVE:
            self.cur.execute(self._sql("DELETE FROM {t} AS t WHERE " + missing, moment=moment))
            self.counts.removed += self.cur.rowcount
        else:
            self.cur.execute(self._sql("UPDATE {t} AS t SET {at} = {moment}, {by} = NULL, {synced} = now(), "
                                       "{run} = %s WHERE " + missing, moment=moment), [self.run_key])
            self.counts.marked += self.cur.rowcount
