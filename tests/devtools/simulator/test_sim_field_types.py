"""Every column of every module's all-fields CSV has the format BULK_READ_FACTS.md gives for its metadata type."""

from __future__ import annotations

import csv
import io
import re
import zipfile

import pytest

from include.devtools.zoho_simulator.data import MODULES
from tests.devtools.simulator.sim_client import create_ok, download, http, module_query, wait_state

INTEGER = r"-?\d+"
FORMATS = {
    "bigint": INTEGER, "integer": INTEGER, "boolean": "true|false", "date": r"\d{4}-\d{2}-\d{2}",
    "datetime": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}", "lookup": r"\d{19}", "ownerlookup": r"\d{19}",
}
DECIMAL_TYPES = ("currency", "double", "percent")


def all_fields_page(sim, token, module: str) -> tuple[list[str], list[list[str]]]:
    job_id = create_ok(sim, token, module_query(module))
    assert wait_state(sim, token, job_id)["state"] == "COMPLETED"
    with zipfile.ZipFile(io.BytesIO(download(sim, token, job_id).body)) as zf:
        rows = list(csv.reader(io.StringIO(zf.read(f"{job_id}.csv").decode(), newline="")))
    return rows[0], rows[1:]


def value_pattern(meta: dict) -> str | None:
    data_type = meta["data_type"]
    if data_type in DECIMAL_TYPES:
        assert isinstance(meta["decimal_place"], int), meta
        return rf"-?\d+(\.\d{{1,{meta['decimal_place']}}})?"
    if data_type == "autonumber":
        auto = meta["auto_number"]
        return re.escape(auto["prefix"] or "") + r"\d+" + re.escape(auto["suffix"] or "")
    if data_type == "multiselectpicklist":
        choice = "|".join(re.escape(v["actual_value"]) for v in meta["pick_list_values"])
        return rf"(?:{choice})(?:;(?:{choice}))*"
    return FORMATS.get(data_type)


@pytest.mark.parametrize("module", list(MODULES))
def test_every_typed_column_matches_its_metadata(sim, token, module: str) -> None:
    metadata = {f["api_name"]: f for f in http(f"{sim.url}/crm/v8/settings/fields?module={module}",
                                                token=token).json["fields"]}
    header, rows = all_fields_page(sim, token, module)
    assert set(header) == set(metadata) and len(rows) == 300
    checked = 0
    for j, name in enumerate(header):
        pattern = value_pattern(metadata[name])
        if pattern is None:
            continue
        values = {row[j] for row in rows} - {""}
        bad = sorted(v for v in values if not re.fullmatch(pattern, v))
        assert not bad, f"{module}.{name} ({metadata[name]['data_type']}): {bad[:5]}"
        checked += 1
    assert checked >= 6, f"{module}: only {checked} typed columns"


def test_types_the_tables_need_exist_with_their_metadata(sim, token) -> None:
    def meta(module: str) -> dict[str, dict]:
        answer = http(f"{sim.url}/crm/v8/settings/fields?module={module}", token=token)
        return {f["api_name"]: f for f in answer.json["fields"]}

    cases, shipments, products, campaigns = meta("Cases"), meta("Shipments"), meta("Products"), meta("Campaigns")
    assert cases["Case_Number"]["data_type"] == "autonumber" and cases["Case_Number"]["auto_number"]["prefix"] is None
    assert shipments["Name"]["auto_number"]["prefix"] == "SHP-"
    assert products["Tax"]["data_type"] == "multiselectpicklist" and products["Tax"]["json_type"] == "jsonarray"
    assert campaigns["Expected_Response_Rate"]["data_type"] == "percent"
    assert (products["Unit_Price"]["decimal_place"], products["Qty_in_Stock"]["decimal_place"]) == (2, 3)
    assert cases["Subject"]["decimal_place"] is None
    header, rows = all_fields_page(sim, token, "Cases")
    numbers = [int(row[header.index("Case_Number")]) for row in rows]
    assert numbers == list(range(1001, 1301)), "autonumbers are sequential from start_number"
    header, rows = all_fields_page(sim, token, "Products")
    taxes = {row[header.index("Tax")] for row in rows}
    assert "" in taxes and any(";" in t for t in taxes), "empty, single and multiple choices"
