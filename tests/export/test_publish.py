"""Publishing an export: exactly what the manifest lists, and one atomic switch from the previous complete export to
the new one, whatever step a crash interrupts; the next attempt recovers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from tests.validation.builders import FIELDS, good_csv
from zoho_crm.export.layout import run_key
from zoho_crm.export.steps import ExportStepError, publish_export, validate_page


class Crash(BaseException):
    """The process dying at this point (not an error the code under test could handle)."""


class CrashBefore:
    """Counts the file system steps (renames, links, copies, tree removals) and dies before the ``step``-th."""

    STEPS = ((os, "replace"), (os, "rename"), (os, "link"), (shutil, "copyfile"), (shutil, "rmtree"))

    def __init__(self, step: int, monkeypatch: pytest.MonkeyPatch) -> None:
        self.step, self.calls = step, 0
        for owner, name in self.STEPS:
            monkeypatch.setattr(owner, name, self._counted(getattr(owner, name)))

    def _counted(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == self.step:
                raise Crash
            return real(*args, **kwargs)
        return step


def test_a_cleared_run_publishes_only_what_its_manifest_lists(tmp_path: Path) -> None:
    run_id = "manual__2026-12-01T10:00:00+00:00"
    run = export_run(tmp_path, run_key("manual", run_id, None, None), run_id)
    # First attempt: three pages extracted, the third invalid (its file and report are kept in staging).
    validated(run, 1, "1001")
    validated(run, 2, "1002")
    with pytest.raises(ExportStepError, match="is invalid"):
        validate_page(extracted(run, 3, "1003", good_csv(3), count=5), run, field_metadata=FIELDS)
    # The run is cleared: new jobs, two pages, in the same staging directory.
    pages = [validated(run, 1, "2001"), validated(run, 2, "2002")]
    summary = publish_export(run, pages)
    published = Path(summary["path"])
    assert published == final(run)
    manifest, listed = read_export(published)
    assert manifest["job_ids"] == ["2001", "2002"]
    assert files(published) == listed, "the export holds exactly the files its manifest lists"
    assert not staging(run).exists()


def test_a_crash_at_any_step_of_a_republish_leaves_a_complete_export_and_the_next_attempt_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crash before each file system step of replacing an export; readers always see the old or the new export."""
    monkeypatch.setenv("ZOHO_EXPORT_RETENTION_HOURS", "0")  # the recovery's retention removes what was replaced
    crashes = 0
    for crash_at in range(1, 50):
        root = tmp_path / str(crash_at)
        first = export_run(root, INTERVAL, "scheduled__1")
        publish_export(first, [validated(first, 1, "1001")])
        run = export_run(root, INTERVAL, "backfill__2")
        pages = [validated(run, 1, "2001"), validated(run, 2, "2002")]
        with monkeypatch.context() as patched:
            CrashBefore(crash_at, patched)
            try:
                publish_export(run, pages)
            except Crash:
                crashes += 1
            else:
                break  # the publish has fewer steps than crash_at: a crash before each one was tried
        manifest, _ = read_export(final(run))  # after the crash: a complete export, the old one or the new one
        assert manifest["job_ids"] in (["1001"], ["2001", "2002"]), crash_at
        publish_export(run, pages)  # the next attempt (a retry of the manifest task)
        manifest, listed = read_export(final(run))
        assert manifest["job_ids"] == ["2001", "2002"]
        assert files(final(run)) == listed, f"crash before step {crash_at}: nothing stale left in the export"
        assert not staging(run).exists()
    assert crashes >= 5, "a crash before each placed file, the pointer write and each clean-up was tried"
