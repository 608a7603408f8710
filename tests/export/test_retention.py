"""Retention: what the pointers no longer name (replaced versions, abandoned staging, old manual exports) is removed
after its grace period, and nothing a reader may still use."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.export.support import INTERVAL, extracted, files, publish, read_export, validated
from zoho_crm.export.layout import Retention, final_dir, prune, run_key, staging_dir, version_time


def test_retention_removes_replaced_versions_abandoned_staging_and_old_manual_exports(tmp_path: Path) -> None:
    keep = Retention(versions=timedelta(hours=24), staging=timedelta(days=7), manual=timedelta(days=30))
    publish(tmp_path, INTERVAL, "scheduled__1",
            [validated(staging_dir("Leads", INTERVAL, "scheduled__1", tmp_path), 1, "1001")], retention=keep)
    first = {p.name for p in final_dir("Leads", INTERVAL, tmp_path).iterdir()} - {"manifest.json"}
    time.sleep(1.01)  # versions are stamped to the second
    publish(tmp_path, INTERVAL, "backfill__2",
            [validated(staging_dir("Leads", INTERVAL, "backfill__2", tmp_path), 1, "2001")], retention=keep)
    final = final_dir("Leads", INTERVAL, tmp_path)
    manifest, listed = read_export(final)
    current = manifest["version"]
    assert {p.name for p in final.iterdir()} == {"manifest.json", current, *first}, "kept for readers of the old one"
    published = version_time(current)
    assert published is not None

    manual_run = "manual__old"
    manual_key = run_key("manual", manual_run, None, None)
    publish(tmp_path, manual_key, manual_run,
            [validated(staging_dir("Leads", manual_key, manual_run, tmp_path), 1, "3001")], retention=keep)
    abandoned = staging_dir("Leads", INTERVAL, "backfill__failed", tmp_path)
    extracted(abandoned, 1, "4001")
    old = time.time() - 8 * 86400
    for path in (*abandoned.rglob("*"), abandoned):
        os.utime(path, (old, old))
    running = staging_dir("Leads", INTERVAL, "backfill__running", tmp_path)
    extracted(running, 1, "5001")

    removed = prune(tmp_path, "Leads", keep, now=published + timedelta(hours=23))
    assert removed == [abandoned], "only the staging nothing wrote to for 7 days"
    assert running.exists() and len(list(final.iterdir())) == 3
    prune(tmp_path, "Leads", keep, now=published + timedelta(hours=25))
    assert files(final) == listed, "the replaced version is gone a day after it was replaced"
    assert final_dir("Leads", manual_key, tmp_path).exists()
    prune(tmp_path, "Leads", keep, now=published + timedelta(days=31))
    assert not final_dir("Leads", manual_key, tmp_path).exists(), "a manual export is removed after 30 days"
    assert files(final) == listed, "an interval's export is kept as long as it is current"


def test_retention_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Retention.from_env() == Retention()
    monkeypatch.setenv("ZOHO_EXPORT_RETENTION_HOURS", "2")
    monkeypatch.setenv("ZOHO_EXPORT_STAGING_RETENTION_DAYS", "1.5")
    monkeypatch.setenv("ZOHO_EXPORT_MANUAL_RETENTION_DAYS", "0")
    assert Retention.from_env() == Retention(timedelta(hours=2), timedelta(days=1.5), None)
    monkeypatch.setenv("ZOHO_EXPORT_RETENTION_HOURS", "a day")
    with pytest.raises(ValueError, match="ZOHO_EXPORT_RETENTION_HOURS must be a number"):
        Retention.from_env()
