"""Retention: what the pointers no longer name (replaced versions, abandoned staging, old manual exports) is removed
after its grace period, and nothing a reader may still use."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.export.support import (
    INTERVAL,
    export_run,
    extracted,
    files,
    final,
    read_export,
    staging,
    validated,
)
from zoho_crm.export.layout import Retention, run_key, version_time
from zoho_crm.export.steps import publish_export
from zoho_crm.export.storage import LocalExportStore


def test_retention_removes_replaced_versions_abandoned_staging_and_old_manual_exports(tmp_path: Path) -> None:
    keep = Retention(versions=timedelta(hours=24), staging=timedelta(days=7), manual=timedelta(days=30))
    store = LocalExportStore(tmp_path)
    first_run = export_run(tmp_path, INTERVAL, "scheduled__1")
    publish_export(first_run, [validated(first_run, 1, "1001")], retention=keep)
    first = {p.name for p in final(first_run).iterdir()} - {"manifest.json"}
    time.sleep(1.01)  # versions are stamped to the second
    second_run = export_run(tmp_path, INTERVAL, "backfill__2")
    publish_export(second_run, [validated(second_run, 1, "2001")], retention=keep)
    published_dir = final(second_run)
    manifest, listed = read_export(published_dir)
    current = manifest["version"]
    assert {p.name for p in published_dir.iterdir()} == {"manifest.json", current, *first}, \
        "kept for readers of the old one"
    published = version_time(current)
    assert published is not None

    manual_id = "manual__old"
    manual = export_run(tmp_path, run_key("manual", manual_id, None, None), manual_id)
    publish_export(manual, [validated(manual, 1, "3001")], retention=keep)
    abandoned = export_run(tmp_path, INTERVAL, "backfill__failed")
    extracted(abandoned, 1, "4001")
    old = time.time() - 8 * 86400
    for path in (*staging(abandoned).rglob("*"), staging(abandoned)):
        os.utime(path, (old, old))
    running = export_run(tmp_path, INTERVAL, "backfill__running")
    extracted(running, 1, "5001")

    removed = store.prune("Leads", keep, now=published + timedelta(hours=23))
    assert removed == [abandoned.staging], "only the staging nothing wrote to for 7 days"
    assert not staging(abandoned).exists()
    assert staging(running).exists() and len(list(published_dir.iterdir())) == 3
    store.prune("Leads", keep, now=published + timedelta(hours=25))
    assert files(published_dir) == listed, "the replaced version is gone a day after it was replaced"
    assert final(manual).exists()
    store.prune("Leads", keep, now=published + timedelta(days=31))
    assert not final(manual).exists(), "a manual export is removed after 30 days"
    assert files(published_dir) == listed, "an interval's export is kept as long as it is current"


def test_retention_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Retention.from_env() == Retention()
    monkeypatch.setenv("ZOHO_EXPORT_RETENTION_HOURS", "2")
    monkeypatch.setenv("ZOHO_EXPORT_STAGING_RETENTION_DAYS", "1.5")
    monkeypatch.setenv("ZOHO_EXPORT_MANUAL_RETENTION_DAYS", "0")
    assert Retention.from_env() == Retention(timedelta(hours=2), timedelta(days=1.5), None)
    monkeypatch.setenv("ZOHO_EXPORT_RETENTION_HOURS", "a day")
    with pytest.raises(ValueError, match="ZOHO_EXPORT_RETENTION_HOURS must be a number"):
        Retention.from_env()
