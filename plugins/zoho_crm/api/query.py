"""Build and check a Bulk Read create-job body (pure: no Airflow, no HTTP).

Used by the operator (checks before any call) and by DAG Params validation. Every problem raises
``InvalidBulkReadQuery`` with what to change.
"""

from __future__ import annotations

import json
import re
from typing import Any

from zoho_crm.api.modules import ICS_MODULE, NON_EXPORTABLE_MODULES, api_name, not_exportable_message

FILE_TYPES = ("csv", "ics")
"""What a Bulk Read job can export; the result zip holds one ``<job id>.<file type>`` member."""
API_VERSIONS = tuple(f"v{n}" for n in range(2, 9))
"""Bulk Read API versions the package speaks (v8 is current)."""
DEFAULT_API_VERSION = "v8"
PAGE_TOKEN_SINCE = 7
"""From this API version on, the next page is asked for with the previous job's ``next_page_token``; before it,
with the next page number."""
GROUP_OPERATORS = ("and", "or")
COMPARATORS = frozenset(
    {
        "equal",
        "not_equal",
        "in",
        "not_in",
        "less_than",
        "less_equal",
        "greater_than",
        "greater_equal",
        "between",
        "not_between",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
        "like",
        "not_like",
    }
)
_RANGE_COMPARATORS = frozenset({"between", "not_between"})
_LIST_COMPARATORS = frozenset({"in", "not_in"})
_DATETIME_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}T")
_DATETIME_OK = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")


class InvalidBulkReadQuery(ValueError):
    """A Bulk Read query that Zoho would reject; the message says what to change."""


def _version_number(api_version: str) -> int:
    if api_version not in API_VERSIONS:
        raise InvalidBulkReadQuery(
            f"api_version {api_version!r} is not supported: use one of {', '.join(API_VERSIONS)} "
            f"({DEFAULT_API_VERSION} is current)."
        )
    return int(api_version[1:])


def uses_page_token(api_version: str) -> bool:
    """True when ``api_version`` continues an export with ``next_page_token`` (v7+), False for page numbers.

    :param api_version: one of :data:`API_VERSIONS`.
    """
    return _version_number(api_version) >= PAGE_TOKEN_SINCE


def data_file_name(job_id: str, file_type: str) -> str:
    """The name of a job's data file, as Zoho names the zip's member: ``<job id>.<file type>``.

    :param job_id: the Bulk Read job id.
    :param file_type: one of :data:`FILE_TYPES`.
    """
    return f"{job_id}.{file_type}"


def _check_value(value: Any, comparator: str, where: str) -> None:
    values = value if isinstance(value, list) else [value]
    if comparator in _RANGE_COMPARATORS and (not isinstance(value, list) or len(value) != 2):
        raise InvalidBulkReadQuery(f"{where}: '{comparator}' needs a list of two values [from, to].")
    if comparator in _LIST_COMPARATORS and not isinstance(value, list):
        raise InvalidBulkReadQuery(f"{where}: '{comparator}' needs a list of values.")
    for item in values:
        if isinstance(item, str) and _DATETIME_LIKE.match(item) and not _DATETIME_OK.match(item):
            raise InvalidBulkReadQuery(
                f"{where}: date-time {item!r} must be ISO 8601 without milliseconds and with an offset, "
                "e.g. 2026-11-01T00:00:00+00:00."
            )


def check_criteria(node: Any, where: str = "criteria") -> None:
    """Check a criteria tree: each node is a condition or a group, never both."""
    if not isinstance(node, dict) or not node:
        raise InvalidBulkReadQuery(
            f"{where} must be an object: a condition {{'field': {{'api_name': ...}}, 'comparator': ..., "
            "'value': ...}} or a group {'group_operator': 'and'|'or', 'group': [...]}."
        )
    is_condition = any(key in node for key in ("field", "comparator", "value"))
    is_group = any(key in node for key in ("group_operator", "group"))
    if is_condition and is_group:
        raise InvalidBulkReadQuery(f"{where} mixes a condition and a group: split it into one or the other.")
    if is_group:
        operator = node.get("group_operator")
        if not isinstance(operator, str) or operator.lower() not in GROUP_OPERATORS:
            raise InvalidBulkReadQuery(f"{where}.group_operator must be 'and' or 'or', not {operator!r}.")
        group = node.get("group")
        if not isinstance(group, list) or not group:
            raise InvalidBulkReadQuery(f"{where}.group must be a non-empty list of conditions or groups.")
        for index, child in enumerate(group):
            check_criteria(child, f"{where}.group[{index}]")
        return
    field = node.get("field")
    if not isinstance(field, dict) or not isinstance(field.get("api_name"), str) or not field["api_name"]:
        raise InvalidBulkReadQuery(f"{where}.field must be {{'api_name': '<Field_API_Name>'}}.")
    comparator = node.get("comparator")
    if comparator not in COMPARATORS:
        raise InvalidBulkReadQuery(
            f"{where}.comparator {comparator!r} is unknown: use one of {', '.join(sorted(COMPARATORS))}."
        )
    if "value" not in node:
        raise InvalidBulkReadQuery(f"{where} has no 'value'.")
    _check_value(node["value"], comparator, where)


def _normalise_fields(fields: Any) -> list[str]:
    if fields is None or fields == "":
        return []
    if isinstance(fields, str):
        fields = [part.strip() for part in fields.split(",")]
    if not isinstance(fields, (list, tuple)) or not all(isinstance(f, str) and f.strip() for f in fields):
        raise InvalidBulkReadQuery("fields must be a list of field API names, e.g. ['Last_Name', 'Email'].")
    names = [f.strip() for f in fields]
    duplicates = sorted({f for f in names if names.count(f) > 1})
    if duplicates:
        raise InvalidBulkReadQuery(f"fields lists {', '.join(duplicates)} more than once: list each field once.")
    return names


def parse_criteria(criteria: Any) -> dict | None:
    """Criteria given as an object or as JSON text, checked; None when there are none (None, blank, ``{}``).

    :param criteria: a criteria tree, its JSON text, or nothing.
    """
    if isinstance(criteria, str):
        if not criteria.strip():
            return None
        try:
            criteria = json.loads(criteria)
        except ValueError as err:
            raise InvalidBulkReadQuery(f"criteria is not valid JSON ({err}): give a JSON object.") from None
    if criteria is None or criteria == {}:
        return None
    check_criteria(criteria)
    return criteria


def build_bulk_read_body(
    module: str,
    *,
    fields: list[str] | str | None = None,
    criteria: dict | str | None = None,
    cvid: str | int | None = None,
    file_type: str = "csv",
    page: int | None = None,
    page_token: str | None = None,
    callback_url: str | None = None,
    callback_method: str = "post",
    api_version: str = DEFAULT_API_VERSION,
) -> dict[str, Any]:
    """Return the JSON body of ``POST /crm/bulk/{api_version}/read`` after checking every input.

    ``module`` may be a seed lowercase name (``price_books``); it is mapped to its API name.
    Without ``page`` and ``page_token`` the first page is requested.
    """
    version = _version_number(api_version)
    if not isinstance(module, str) or not module.strip():
        raise InvalidBulkReadQuery("module is required: give the module's API name, e.g. 'Leads'.")
    name = api_name(module)
    if name in NON_EXPORTABLE_MODULES:
        raise InvalidBulkReadQuery(not_exportable_message(name))
    file_type = (file_type or FILE_TYPES[0]).lower()
    if file_type not in FILE_TYPES:
        raise InvalidBulkReadQuery(
            f"file_type {file_type!r} is not supported: use {' or '.join(map(repr, FILE_TYPES))}."
        )
    names = _normalise_fields(fields)
    if file_type == "ics":
        if name != ICS_MODULE:
            raise InvalidBulkReadQuery(f"file_type 'ics' works only for module Events, not {name}: use 'csv'.")
        if names:
            raise InvalidBulkReadQuery("fields are not allowed with file_type 'ics': remove fields.")
    query: dict[str, Any] = {"module": {"api_name": name}}
    if cvid not in (None, ""):
        if not str(cvid).isdigit():
            raise InvalidBulkReadQuery(f"cvid {cvid!r} must be a custom view id (digits only).")
        query["cvid"] = str(cvid)
    if names:
        query["fields"] = names
    checked = parse_criteria(criteria)
    if checked is not None:
        query["criteria"] = checked
    if page not in (None, "") and page_token not in (None, ""):
        raise InvalidBulkReadQuery("give page or page_token, not both: page_token continues where a job ended.")
    if page_token not in (None, ""):
        if version < PAGE_TOKEN_SINCE:
            raise InvalidBulkReadQuery(
                f"page_token needs api_version v7 or later (this is {api_version}): use page numbers instead."
            )
        if not isinstance(page_token, str):
            raise InvalidBulkReadQuery("page_token must be the next_page_token string of the previous job.")
        query["page_token"] = page_token
    else:
        if page in (None, ""):
            page = 1
        if isinstance(page, str) and page.strip().isdigit():
            page = int(page)
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise InvalidBulkReadQuery(f"page must be an integer >= 1, not {page!r}.")
        query["page"] = page
    body: dict[str, Any] = {"query": query, "file_type": file_type}
    if callback_url not in (None, ""):
        if not isinstance(callback_url, str) or not re.match(r"^https?://[^\s/]+", callback_url):
            raise InvalidBulkReadQuery(f"callback_url {callback_url!r} must be an http(s) URL.")
        method = (callback_method or "post").lower()
        if method != "post":
            raise InvalidBulkReadQuery(f"callback_method must be 'post', not {callback_method!r}.")
        body["callback"] = {"url": callback_url, "method": method}
    return body
