"""The deployment's export settings (include/config/zoho_crm_exports.json) and the per-DAG load settings."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from zoho_crm.export.config import CONFIG_ENV, load_export_config
from zoho_crm.export.load import check_deletion_mode, reconciles
from zoho_crm.export.records import ExportQuery

SHIPPED = Path(__file__).resolve().parents[2] / "include" / "config" / "zoho_crm_exports.json"


def write(tmp_path: Path, **changes) -> Path:
    settings = {**json.loads(SHIPPED.read_text()), **changes}
    path = tmp_path / "exports.json"
    path.write_text(json.dumps(settings))
    return path


def test_the_shipped_settings_load_into_the_warehouse_and_mark_deletions() -> None:
    config = load_export_config(SHIPPED)
    assert config["warehouse_conn_id"] == "zoho_crm_warehouse"
    assert config["load_lookback"] == timedelta(minutes=10)
    assert config["deletion_mode"] == "mark"


def test_the_environment_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(write(tmp_path, pool="other_pool", deletion_mode="remove")))
    config = load_export_config(tmp_path / "not-used.json")
    assert (config["pool"], config["deletion_mode"]) == ("other_pool", "remove")


def test_bad_settings_name_the_file_the_key_and_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=f"cannot be read .* set {CONFIG_ENV} to its path"):
        load_export_config(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="deletion_mode 'drop' is not one of mark, remove"):
        load_export_config(write(tmp_path, deletion_mode="drop"))
    with pytest.raises(ValueError, match="load_lookback_minutes must be a number of at least 0"):
        load_export_config(write(tmp_path, load_lookback_minutes=-1))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_export_config(broken)


def test_only_an_unfiltered_full_export_reconciles() -> None:
    assert check_deletion_mode("mark") == "mark"
    everything = ExportQuery("Leads")
    assert reconciles(everything, full_load=True)
    assert not reconciles(everything, full_load=False)
    for narrowed in (
        ExportQuery("Leads", fields=("Last_Name", "Modified_Time")),
        ExportQuery("Leads", cvid="111"),
        ExportQuery("Leads", criteria={"field": {"api_name": "Lead_Status"}, "comparator": "equal", "value": "x"}),
        ExportQuery("Leads", time_range=("2026-11-01T00:00:00+00:00", "2026-11-02T00:00:00+00:00")),
    ):
        assert not reconciles(narrowed, full_load=True), narrowed
