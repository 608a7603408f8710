"""Output layout: run keys, staging, and publishing that replaces an interval's output instead of adding to it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from zoho_crm.export_layout import final_dir, publish, run_key, staging_dir


def test_interval_runs_share_a_key_and_manual_runs_get_their_own() -> None:
    start, end = datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC)
    assert run_key("scheduled", "scheduled__x", start, end) == run_key("backfill", "backfill__y", start, end)
    assert run_key("manual", "manual__2026-11-29T04:00:00+00:00", start, end).startswith("manual--manual__")
    assert run_key("manual", "a", None, None) != run_key("manual", "b", None, None)


def test_staging_is_per_run_and_outside_the_published_tree(tmp_path: Path) -> None:
    one = staging_dir("Leads", "k", "run-1", tmp_path)
    assert one != staging_dir("Leads", "k", "run-2", tmp_path)
    assert one == staging_dir("Leads", "k", "run-1", tmp_path), "retries of one run reuse its staging dir"
    assert not one.is_relative_to(final_dir("Leads", "k", tmp_path))


def test_publish_replaces_the_previous_export_whole(tmp_path: Path) -> None:
    final = final_dir("Leads", "k", tmp_path)
    for content, extra in (("first", "old-only.csv"), ("second", None)):
        staging = staging_dir("Leads", "k", content, tmp_path)
        (staging / "page_0001").mkdir(parents=True)
        (staging / "page_0001" / "data.csv").write_text(content)
        if extra:
            (staging / extra).write_text("x")
        publish(staging, final)
        assert not staging.exists()
    assert (final / "page_0001" / "data.csv").read_text() == "second"
    assert not (final / "old-only.csv").exists(), "nothing of the replaced export survives"
    assert [p.name for p in final.parent.iterdir()] == ["k"]
    assert not [p for p in tmp_path.rglob(".retired-*")]
