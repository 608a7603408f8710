"""Deletions applied by load_export on a real PostgreSQL database: marks, removal, restores, the full export's
reconcile, the watermark in the sync state, and a load killed between its merge and its watermark update."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from include.devtools.zoho_simulator.data import MODULES
from tests.tables.pages import NEWER, metadata, write_page
from zoho_crm.tables.warehouse import load_export, read_sync_state

TARGET = "test_dag"
USER = "5725767000000411003"
ROOT = Path(__file__).resolve().parents[2]


def lead_id(index: int) -> str:
    return MODULES["Leads"].record_id(index)


def entry(index: int, at: datetime, kind: str = "recycle") -> dict:
    """A Deleted Records API entry, as ZohoCRMHook.get_deleted_records returns it."""
    return {"deleted_by": {"name": "Patricia Boyle", "id": USER}, "id": lead_id(index), "display_name": "x",
            "type": kind, "created_by": {"name": "Patricia Boyle", "id": USER}, "deleted_time": at.isoformat()}


def load(conn, pages, *, run_key="run", **kwargs):
    return load_export(conn, [pages] if isinstance(pages, Path) else pages, metadata("Leads"), module="Leads",
                       run_key=run_key, target=TARGET, field_subset=kwargs.pop("subset", False), **kwargs)


def marks(conn) -> dict[int, tuple]:
    """id -> (_zoho_deleted_at, _zoho_deleted_by) of every row."""
    with conn.transaction():
        return {r[0]: r[1:] for r in conn.execute(
            'SELECT id, _zoho_deleted_at, _zoho_deleted_by FROM zoho_crm.leads ORDER BY id').fetchall()}


def table(conn) -> list[tuple]:
    with conn.transaction():
        return conn.execute("SELECT * FROM zoho_crm.leads ORDER BY id").fetchall()


def modified_range(conn) -> tuple[datetime, datetime]:
    with conn.transaction():
        return conn.execute('SELECT min("Modified_Time"), max("Modified_Time") FROM zoho_crm.leads').fetchone()


@pytest.fixture
def old_page(tmp_path: Path) -> Path:
    return write_page(tmp_path, "Leads", 50)


@pytest.fixture
def between(conn, old_page: Path, tmp_path: Path) -> datetime:
    """A moment after every Modified_Time of ``old_page`` and before every one of its newer versions."""
    load(conn, write_page(tmp_path / "probe", "Leads", 50, start=NEWER))
    newest_first = modified_range(conn)[0]
    conn.execute("DROP SCHEMA zoho_crm CASCADE")
    conn.commit()
    load(conn, old_page, run_key="probe")
    oldest_last = modified_range(conn)[1]
    conn.execute("DROP SCHEMA zoho_crm CASCADE")
    conn.commit()
    assert oldest_last < newest_first
    return oldest_last + (newest_first - oldest_last) / 2


def test_deletions_mark_rows_once_and_advance_the_watermark(conn, old_page: Path, between: datetime):
    load(conn, old_page, run_key="first")
    deletions = [entry(i, between - timedelta(minutes=i)) for i in range(10)]
    result = load(conn, old_page, run_key="deletions", deletions=deletions)
    assert (result.marked_deleted, result.removed, result.restored, result.updated) == (10, 0, 0, 0)
    assert result.deleted_since == between
    got = marks(conn)
    assert {i: got[int(lead_id(i))] for i in range(10)} == {i: (between - timedelta(minutes=i), int(USER))
                                                           for i in range(10)}
    assert all(v == (None, None) for k, v in got.items() if k > int(lead_id(9)))
    assert read_sync_state(conn, "Leads", TARGET).deleted_since == between
    before = table(conn)
    again = load(conn, old_page, run_key="again", deletions=deletions)
    assert (again.marked_deleted, again.restored) == (0, 0)
    assert table(conn) == before, "applying the same deletions again changes nothing"
    older = load(conn, old_page, run_key="older", deletions=[entry(20, between - timedelta(days=1))])
    assert older.deleted_since == between - timedelta(days=1)
    assert read_sync_state(conn, "Leads", TARGET).deleted_since == between, "the watermark never moves back"


def test_a_deletion_before_the_rows_version_does_not_apply(conn, old_page: Path, between: datetime, tmp_path: Path):
    load(conn, write_page(tmp_path, "Leads", 50, start=NEWER))
    result = load(conn, old_page, deletions=[entry(0, between), entry(1, between)])
    assert result.marked_deleted == 0 and set(marks(conn).values()) == {(None, None)}


def test_a_record_exported_again_after_its_deletion_is_live_again(conn, old_page: Path, between: datetime,
                                                                  tmp_path: Path):
    load(conn, old_page, deletions=[entry(i, between) for i in range(6)])
    assert sum(v[0] is not None for v in marks(conn).values()) == 6
    restored = write_page(tmp_path, "Leads", 3, start=NEWER)  # records 0..2, modified after the deletion
    result = load(conn, restored, run_key="restored")
    assert (result.restored, result.updated, result.marked_deleted) == (3, 3, 0)
    got = marks(conn)
    assert [got[int(lead_id(i))] for i in range(6)] == [(None, None)] * 3 + [(between, int(USER))] * 3
    # the deletions listed again (an overlapping watermark) do not delete the newer versions
    again = load(conn, restored, run_key="overlap", deletions=[entry(i, between) for i in range(6)])
    assert (again.marked_deleted, again.restored) == (0, 0) and marks(conn) == got


def test_remove_mode_deletes_the_rows(conn, old_page: Path, between: datetime):
    result = load(conn, old_page, deletions=[entry(i, between) for i in range(4)] + [entry(999, between)],
                  deletion_mode="remove")
    assert (result.inserted, result.removed, result.marked_deleted) == (50, 4, 0)
    ids = set(marks(conn))
    assert len(ids) == 46 and not ids & {int(lead_id(i)) for i in range(4)}
    before = table(conn)
    again = load(conn, old_page, deletions=[entry(i, between) for i in range(4)], deletion_mode="remove")
    assert table(conn) == before, "the same export and deletions again leave the same table"
    assert (again.inserted, again.removed) == (4, 4), "the export still has them: merged, then removed again"


def test_a_full_export_reconciles_and_a_filtered_one_never(conn, old_page: Path, between: datetime, tmp_path: Path):
    load(conn, old_page, run_key="first")
    fewer = write_page(tmp_path, "Leads", 40)  # records 0..39: 40..49 were deleted long ago
    newer_elsewhere = write_page(tmp_path, "Leads", 1, first=60, start=NEWER)
    load(conn, newer_elsewhere, run_key="later")  # written by a later export than the full one
    filtered = load(conn, fewer, run_key="filtered")
    assert filtered.marked_deleted == 0 and set(marks(conn).values()) == {(None, None)}
    full = load(conn, fewer, run_key="full", reconcile=True, full_load=True, interval_end=between)
    assert (full.marked_deleted, full.inserted, full.updated) == (10, 0, 0)
    got = marks(conn)
    assert {k for k, v in got.items() if v[0] is not None} == {int(lead_id(i)) for i in range(40, 50)}
    assert {v for v in got.values() if v[0] is not None} == {(between, None)}
    assert got[int(lead_id(60))] == (None, None), "a row modified after the full export is not deleted"
    assert load(conn, fewer, run_key="full2", reconcile=True, interval_end=between).marked_deleted == 0
    # the API's entry for a reconciled row replaces the reconcile's time and unknown user, not counted again
    api = load(conn, fewer, run_key="api", deletions=[entry(45, between - timedelta(days=2))])
    assert api.marked_deleted == 0 and marks(conn)[int(lead_id(45))] == (between - timedelta(days=2), int(USER))


def test_bad_arguments_are_refused_before_the_database(conn, old_page: Path, between: datetime):
    with pytest.raises(ValueError, match="reconcile needs an unfiltered export of all fields"):
        load(conn, old_page, subset=True, reconcile=True)
    with pytest.raises(ValueError, match="deletion_mode 'drop' is not one of mark, remove"):
        load(conn, old_page, deletion_mode="drop")
    with pytest.raises(ValueError, match="deletion #1 .* has no numeric id"):
        load(conn, old_page, deletions=[entry(0, between), {"id": "abc", "deleted_time": between.isoformat()}])
    with pytest.raises(ValueError, match=r"deletion #0 \(id \d+\) has no deleted_time in ISO 8601 with an offset"):
        load(conn, old_page, deletions=[{"id": lead_id(0), "deleted_time": "2026-11-21T09:15:00"}])
    assert read_sync_state(conn, "Leads", TARGET) is None


CHILD = """
import json, sys
from pathlib import Path
from datetime import datetime
import psycopg
from tests.tables.pages import metadata
from zoho_crm.tables.warehouse import load_export
dsn, page, deletions = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
with psycopg.connect(dsn, application_name="killed_load") as conn:
    load_export(conn, [page], metadata("Leads"), module="Leads", run_key="killed", target="test_dag",
                field_subset=False, deletions=deletions)
"""


def wait_until(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_load_killed_between_merge_and_watermark_is_retried_applying_each_deletion_once(
        warehouse_dsn: str, conn, old_page: Path, between: datetime, tmp_path: Path):
    load(conn, old_page, run_key="first", deletions=[entry(0, between - timedelta(days=3))])
    before, state = table(conn), read_sync_state(conn, "Leads", TARGET)
    newer = write_page(tmp_path, "Leads", 20, start=NEWER, first=40)  # updates 40..49, inserts 50..59
    deletions = [entry(i, between) for i in range(1, 8)]
    with psycopg.connect(warehouse_dsn, autocommit=True) as watcher, psycopg.connect(warehouse_dsn) as blocker:
        # hold the module's sync state row: the load blocks there, after its merge and deletions
        blocker.execute("SELECT 1 FROM zoho_crm._sync_state WHERE module = 'Leads' FOR UPDATE")
        child = subprocess.Popen([sys.executable, "-c", CHILD, warehouse_dsn, str(newer), json.dumps(deletions)],
                                 cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{ROOT / 'plugins'}:{ROOT}"})
        try:
            backend = wait_until(lambda: watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'killed_load' AND wait_event_type = "
                "'Lock' AND query LIKE %s", ["%_sync_state%"]).fetchone(), "the load to wait on the sync state")[0]
            assert watcher.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                                   "pid = %s", [backend]).fetchone()[0] == 1, "it holds the table's lock"
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
        blocker.rollback()
        wait_until(lambda: watcher.execute("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = %s",
                                           [backend]).fetchone()[0], "the killed load's session to end")
    assert table(conn) == before and read_sync_state(conn, "Leads", TARGET) == state, "nothing of it committed"
    retry = load(conn, newer, run_key="retry", deletions=deletions)
    assert (retry.inserted, retry.updated, retry.marked_deleted) == (10, 10, 7)
    got = marks(conn)
    assert [got[int(lead_id(i))] for i in range(8)] == [(between - timedelta(days=3), int(USER))] + [
        (between, int(USER))] * 7
    assert read_sync_state(conn, "Leads", TARGET).deleted_since == between
    after = table(conn)
    assert load(conn, newer, run_key="again", deletions=deletions).marked_deleted == 0
    assert [r[:-2] for r in table(conn)] == [r[:-2] for r in after]
