"""build_bulk_read_body: every input check, and the bodies it builds."""

from __future__ import annotations

import pytest

from zoho_crm.api.modules import NON_EXPORTABLE_MODULES, api_name, required_scopes
from zoho_crm.api.query import (
    API_VERSIONS,
    InvalidBulkReadQuery,
    build_bulk_read_body,
    data_file_name,
    parse_criteria,
    uses_page_token,
)

DAY = {
    "group_operator": "and",
    "group": [
        {"field": {"api_name": "Modified_Time"}, "comparator": "greater_equal", "value": "2026-11-01T00:00:00+00:00"},
        {"field": {"api_name": "Modified_Time"}, "comparator": "less_than", "value": "2026-11-02T00:00:00+00:00"},
    ],
}


def test_full_body_like_the_facts_file():
    body = build_bulk_read_body(
        "leads", fields=["Last_Name", "Owner"], criteria=DAY, cvid="5725767000000087501",
        callback_url="https://example.com/cb",
    )
    assert body == {
        "query": {"module": {"api_name": "Leads"}, "cvid": "5725767000000087501", "fields": ["Last_Name", "Owner"],
                  "criteria": DAY, "page": 1},
        "file_type": "csv",
        "callback": {"url": "https://example.com/cb", "method": "post"},
    }


def test_page_token_and_page_numbers():
    assert build_bulk_read_body("Leads", page_token="abc")["query"]["page_token"] == "abc"
    assert "page" not in build_bulk_read_body("Leads", page_token="abc")["query"]
    assert build_bulk_read_body("Leads", page=3, api_version="v2")["query"]["page"] == 3
    assert build_bulk_read_body("Events", file_type="ics")["file_type"] == "ics"
    assert build_bulk_read_body("Leads", criteria='{"field": {"api_name": "City"}, "comparator": "equal", '
                                "\"value\": \"Paris\"}")["query"]["criteria"]["value"] == "Paris"


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"module": "Notes"}, "cannot be exported"),
        ({"module": "attachments"}, "cannot be exported"),
        ({"module": "Emails"}, "cannot be exported"),
        ({"module": ""}, "module is required"),
        ({"module": "Leads", "file_type": "ics"}, "only for module Events"),
        ({"module": "Events", "file_type": "ics", "fields": ["Subject"]}, "fields are not allowed"),
        ({"module": "Leads", "file_type": "xlsx"}, "'csv' or 'ics'"),
        ({"module": "Leads", "page": 0}, "page must be an integer >= 1"),
        ({"module": "Leads", "page": "x"}, "page must be an integer >= 1"),
        ({"module": "Leads", "page": 2, "page_token": "t"}, "not both"),
        ({"module": "Leads", "page_token": "t", "api_version": "v6"}, "needs api_version v7"),
        ({"module": "Leads", "api_version": "v9"}, "api_version 'v9'"),
        ({"module": "Leads", "fields": ["A", "A"]}, "more than once"),
        ({"module": "Leads", "fields": [1]}, "list of field API names"),
        ({"module": "Leads", "cvid": "abc"}, "digits only"),
        ({"module": "Leads", "callback_url": "ftp://x"}, "http(s) URL"),
        ({"module": "Leads", "callback_url": "https://x.io", "callback_method": "get"}, "must be 'post'"),
        ({"module": "Leads", "criteria": "{not json"}, "not valid JSON"),
        ({"module": "Leads", "criteria": [1]}, "must be an object"),
        ({"module": "Leads", "criteria": {**DAY, "field": {"api_name": "X"}}}, "mixes a condition and a group"),
        ({"module": "Leads", "criteria": {"group_operator": "xor", "group": DAY["group"]}}, "'and' or 'or'"),
        ({"module": "Leads", "criteria": {"group_operator": "and", "group": []}}, "non-empty list"),
        ({"module": "Leads", "criteria": {"comparator": "equal", "value": 1}}, "field must be"),
        ({"module": "Leads", "criteria": {"field": {"api_name": "A"}, "comparator": "near", "value": 1}},
         "comparator 'near' is unknown"),
        ({"module": "Leads", "criteria": {"field": {"api_name": "A"}, "comparator": "equal"}}, "no 'value'"),
        ({"module": "Leads", "criteria": {"field": {"api_name": "A"}, "comparator": "between", "value": "x"}},
         "list of two values"),
        ({"module": "Leads", "criteria": {"field": {"api_name": "A"}, "comparator": "in", "value": "x"}},
         "list of values"),
        ({"module": "Leads", "criteria": {"field": {"api_name": "Modified_Time"}, "comparator": "equal",
                                          "value": "2026-11-01T00:00:00.123+00:00"}}, "without milliseconds"),
        ({"module": "Leads", "criteria": {"group_operator": "or", "group": [
            {"field": {"api_name": "Modified_Time"}, "comparator": "less_than", "value": "2026-11-01T00:00:00"}]}},
         "criteria.group[0]"),
    ],
)
def test_rejected_inputs_say_what_to_change(kwargs, says):
    with pytest.raises(InvalidBulkReadQuery) as caught:
        build_bulk_read_body(**kwargs)
    assert says in str(caught.value)


def test_module_mapping_and_scopes():
    assert [api_name(m) for m in ("leads", "price_books", "SALES_ORDERS", "meetings", "Shipments")] == [
        "Leads", "Price_Books", "Sales_Orders", "Events", "Shipments"]
    assert api_name("notes") in NON_EXPORTABLE_MODULES and api_name("Deals") not in NON_EXPORTABLE_MODULES
    assert required_scopes("price_books") == ["ZohoCRM.bulk.read", "ZohoCRM.modules.price_books.READ"]


def test_api_versions_page_by_token_from_v7_on():
    assert [version for version in API_VERSIONS if uses_page_token(version)] == ["v7", "v8"]
    with pytest.raises(InvalidBulkReadQuery, match="api_version 'v9' is not supported"):
        uses_page_token("v9")
    assert data_file_name("1001", "ics") == "1001.ics"


def test_criteria_as_json_text_or_object_or_nothing():
    condition = {"field": {"api_name": "City"}, "comparator": "equal", "value": "Paris"}
    assert parse_criteria('{"field": {"api_name": "City"}, "comparator": "equal", "value": "Paris"}') == condition
    assert parse_criteria(condition) == condition
    assert [parse_criteria(nothing) for nothing in (None, "", "  ", {})] == [None] * 4
    with pytest.raises(InvalidBulkReadQuery, match="criteria is not valid JSON .*: give a JSON object"):
        parse_criteria("{not json")
