"""Value formats Zoho writes for typed fields (per ``settings/fields`` data_type), as RE2 patterns."""

from __future__ import annotations

from dataclasses import dataclass

_DATE = r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
_OFFSET = r"(?:Z|[+-](?:0\d|1[0-4]):[0-5]\d)"
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"


@dataclass(frozen=True)
class ValueFormat:
    """A value format: the full-match pattern (empty allowed) and what a bad value is not."""

    name: str
    pattern: str
    expected: str


def _format(name: str, body: str, expected: str) -> ValueFormat:
    return ValueFormat(name, rf"^(?:|{body})$", expected)


DATETIME = _format("datetime", f"{_DATE}T{_TIME}{_OFFSET}", "an ISO 8601 datetime with offset (YYYY-MM-DDTHH:MM:SS+HH:MM)")
DATE = _format("date", _DATE, "a date YYYY-MM-DD")
NUMBER = _format("number", _NUMBER, "a number")
BOOLEAN = _format("boolean", "true|false", "a boolean (true or false)")

FORMAT_BY_DATA_TYPE: dict[str, ValueFormat] = {
    "datetime": DATETIME,
    "date": DATE,
    "bigint": NUMBER,
    "integer": NUMBER,
    "currency": NUMBER,
    "double": NUMBER,
    "decimal": NUMBER,
    "percent": NUMBER,
    "boolean": BOOLEAN,
}


def metadata_fields(field_metadata: list[dict] | dict | None) -> list[dict]:
    """The field list from a ``settings/fields`` answer (``{"fields": [...]}``) or a plain list."""
    if field_metadata is None:
        return []
    if isinstance(field_metadata, dict):
        field_metadata = field_metadata.get("fields", [])
    return [f for f in field_metadata if isinstance(f, dict) and f.get("api_name")]
