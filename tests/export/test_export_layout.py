"""Output layout: run keys (one per interval, a unique bounded one per manual run), staging, version names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from zoho_crm.export.layout import final_key, new_version_name, run_key, staging_key, version_time
from zoho_crm.export.storage import LocalExportStore


def test_interval_runs_share_a_key_and_manual_runs_get_their_own() -> None:
    start, end = datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC)
    assert run_key("scheduled", "scheduled__x", start, end) == run_key("backfill", "backfill__y", start, end)
    assert run_key("manual", "manual__2026-11-29T04:00:00+00:00", start, end).startswith("manual--manual__")
    assert run_key("manual", "a", None, None) != run_key("manual", "b", None, None)


def test_staging_is_per_run_and_outside_the_published_tree(tmp_path: Path) -> None:
    store = LocalExportStore(tmp_path)
    one = store.local_path(staging_key("Leads", "k", "run-1"))
    assert one != store.local_path(staging_key("Leads", "k", "run-2"))
    assert one == store.local_path(staging_key("Leads", "k", "run-1")), "retries of one run reuse its staging dir"
    assert not one.is_relative_to(store.local_path(final_key("Leads", "k")))


def test_manual_run_keys_are_unique_and_fit_a_file_name(tmp_path: Path) -> None:
    keys = {run_id: run_key("manual", run_id, None, None) for run_id in ("a/b", "a:b", "a-b", "a b", "a--b", "")}
    assert len(set(keys.values())) == len(keys), keys
    long_ids = ["manual__" + "x" * 300 + tail for tail in ("1", "2")]
    long_keys = [run_key("manual", run_id, None, None) for run_id in long_ids]
    assert long_keys[0] != long_keys[1]
    store = LocalExportStore(tmp_path)
    for run_id, key in zip(long_ids, long_keys, strict=True):
        assert key.startswith("manual--manual__xxx") and len(key.encode()) <= 120
        store.local_path(staging_key("Leads", key, run_id)).mkdir(parents=True)  # a name the file system accepts
        store.local_path(final_key("Leads", key)).mkdir(parents=True)


def test_a_version_name_carries_its_time() -> None:
    moment = datetime(2026, 12, 1, 10, 15, 0, tzinfo=UTC)
    name = new_version_name(moment)
    assert name.startswith("v20261201T101500Z-") and version_time(name) == moment
    assert new_version_name(moment) != name
    assert version_time("page_0001") is None and version_time("manifest.json") is None
