"""Value formats Zoho writes for typed fields (per ``settings/fields`` data_type), as RE2 patterns.

Integer columns (the record id, ``bigint``, ``integer``, ``lookup``, ``ownerlookup``, an ``autonumber`` without
prefix or suffix) hold 64-bit integers: :data:`INTEGER` refuses decimals, exponents, a ``+`` sign and anything out
of the signed 64-bit range, so a value that does not fit its table column fails validation, before the typed
Parquet and the table load (see :mod:`zoho_crm.tables.schema`).
"""

from __future__ import annotations

from dataclasses import dataclass

_DATE = r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
_OFFSET = r"(?:Z|[+-](?:0\d|1[0-4]):[0-5]\d)"
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
INT64_MAX = 2**63 - 1


def _not_above(limit: int) -> str:
    """RE2 alternatives matching exactly the decimal numbers from 0 to ``limit`` (leading zeros allowed)."""
    digits = str(limit)
    shorter = rf"\d{{1,{len(digits) - 1}}}" if len(digits) > 1 else None
    same_length = [f"{digits[:i]}[0-{int(d) - 1}]" + (rf"\d{{{len(digits) - i - 1}}}" if i < len(digits) - 1 else "")
                   for i, d in enumerate(digits) if d != "0"]
    return "0*(?:" + "|".join(filter(None, [shorter, *same_length, digits])) + ")"


_INT64 = f"{_not_above(INT64_MAX)}|-{_not_above(INT64_MAX + 1)}"


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
INTEGER = _format("integer", _INT64, "an integer of at most 64 bits (digits, an optional minus sign)")
BOOLEAN = _format("boolean", "true|false", "a boolean (true or false)")

FORMAT_BY_DATA_TYPE: dict[str, ValueFormat] = {
    "datetime": DATETIME,
    "date": DATE,
    "bigint": INTEGER,
    "integer": INTEGER,
    "lookup": INTEGER,
    "ownerlookup": INTEGER,
    "currency": NUMBER,
    "double": NUMBER,
    "decimal": NUMBER,
    "percent": NUMBER,
    "boolean": BOOLEAN,
}


def field_format(field: dict) -> ValueFormat | None:
    """The value format of one ``settings/fields`` entry, or None when its values are not checked.

    :param field: the field's metadata (``data_type``, and ``auto_number`` for autonumbers).
    """
    data_type = str(field.get("data_type") or "")
    if data_type == "autonumber":
        settings = field.get("auto_number") or field.get("autonumber")
        plain = isinstance(settings, dict) and not settings.get("prefix") and not settings.get("suffix")
        return INTEGER if plain else None
    return FORMAT_BY_DATA_TYPE.get(data_type)


def metadata_fields(field_metadata: list[dict] | dict | None) -> list[dict]:
    """The field list from a ``settings/fields`` answer (``{"fields": [...]}``) or a plain list."""
    if field_metadata is None:
        return []
    if isinstance(field_metadata, dict):
        field_metadata = field_metadata.get("fields", [])
    return [f for f in field_metadata if isinstance(f, dict) and f.get("api_name")]
