"""Column types of a module's table from Zoho field metadata (``settings/fields``), and drift between two schemas.

Types (see "Field values in Bulk Read CSVs" in BULK_READ_FACTS.md):

- the id column (``id`` / ``Id``), ``bigint``, ``lookup``, ``ownerlookup``, ``integer``, and ``autonumber``
  without prefix or suffix: 64-bit integers (``bigint``);
- ``boolean``; ``date``; ``datetime`` as timezone-aware timestamps in UTC (``timestamptz``);
- ``currency``, ``double``, ``percent``, ``decimal``: decimals with :data:`INTEGER_DIGITS` digits before the point
  and the field's ``decimal_place`` as scale (at most :data:`MAX_SCALE`); without ``decimal_place``
  :data:`CURRENCY_DEFAULT_SCALE` for ``currency``, :data:`DECIMAL_DEFAULT_SCALE` for the others. A value with more
  decimals than its scale is refused by the Parquet conversion (never rounded);
- text for everything else: multi-select picklists (the separator is not verified), an ``autonumber`` with a
  prefix or suffix or without its ``auto_number`` settings, owner sub-fields such as ``Owner.first_name``,
  columns the metadata does not know. Without metadata every column is text (:attr:`TableSchema.text_only`).

An empty CSV cell is null in every column, text included.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from zoho_crm.validation.field_types import metadata_fields

ID_COLUMNS = ("id", "Id")
INTEGER_DIGITS = 28
"""Digits before the decimal point of every decimal column (more than any int64 has: int -> decimal is safe)."""
MAX_SCALE = 10
CURRENCY_DEFAULT_SCALE = 2
DECIMAL_DEFAULT_SCALE = 9

BIGINT, BOOLEAN, DATE, TIMESTAMP, NUMERIC, TEXT = "bigint", "boolean", "date", "timestamptz", "numeric", "text"
_INTEGER_TYPES = {"bigint", "lookup", "ownerlookup", "integer"}
_DECIMAL_TYPES = {"currency", "double", "percent", "decimal"}
_SCALAR_TYPES = {"boolean": BOOLEAN, "date": DATE, "datetime": TIMESTAMP}


@dataclass(frozen=True)
class ColumnType:
    """One column type: ``kind`` (bigint, boolean, date, timestamptz, numeric, text) and a decimal's scale."""

    kind: str
    scale: int | None = None

    @property
    def arrow(self) -> pa.DataType:
        """The Arrow type (Parquet)."""
        if self.kind == NUMERIC:
            return pa.decimal128(INTEGER_DIGITS + self.scale, self.scale)
        return {BIGINT: pa.int64(), BOOLEAN: pa.bool_(), DATE: pa.date32(), TIMESTAMP: pa.timestamp("us", "UTC"),
                TEXT: pa.string()}[self.kind]

    @property
    def postgres(self) -> str:
        """The PostgreSQL type, as ``format_type()`` spells it."""
        if self.kind == NUMERIC:
            return f"numeric({INTEGER_DIGITS + self.scale},{self.scale})"
        return {BIGINT: "bigint", BOOLEAN: "boolean", DATE: "date", TIMESTAMP: "timestamp with time zone",
                TEXT: "text"}[self.kind]

    def __str__(self) -> str:
        return self.postgres

    def widens_to(self, other: ColumnType) -> bool:
        """Whether every value of this type converts to ``other`` without loss (the same type included)."""
        if other == self or other.kind == TEXT:
            return True
        if other.kind == NUMERIC:
            return self.kind == BIGINT or (self.kind == NUMERIC and other.scale >= self.scale)
        return False

    @classmethod
    def from_postgres(cls, postgres_type: str) -> ColumnType | None:
        """The column type a PostgreSQL ``format_type()`` text stands for; None for any other type."""
        match = re.fullmatch(r"numeric\((\d+),(\d+)\)", postgres_type)
        if match:
            precision, scale = int(match[1]), int(match[2])
            return cls(NUMERIC, scale) if precision == INTEGER_DIGITS + scale else None
        kinds = {"bigint": BIGINT, "boolean": BOOLEAN, "date": DATE, "timestamp with time zone": TIMESTAMP,
                 "text": TEXT}
        return cls(kinds[postgres_type]) if postgres_type in kinds else None


TEXT_TYPE = ColumnType(TEXT)


@dataclass(frozen=True)
class Column:
    """A column: its CSV name, the Zoho ``data_type`` it came from ("" when unknown) and its type."""

    name: str
    data_type: str
    type: ColumnType

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "data_type": self.data_type, "type": self.type.postgres,
                "arrow": str(self.type.arrow)}


@dataclass(frozen=True)
class TableSchema:
    """Typed columns of a page or table, in order; ``text_only`` when no field metadata was given."""

    columns: tuple[Column, ...]
    text_only: bool = False
    _by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({c.name: c for c in self.columns})

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def get(self, name: str) -> Column | None:
        return self._by_name.get(name)

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type.arrow) for c in self.columns])

    def to_json(self) -> dict[str, Any]:
        return {"text_only": self.text_only, "columns": [c.to_json() for c in self.columns]}

    @classmethod
    def from_json(cls, payload: dict[str, Any] | str) -> TableSchema:
        """The schema :meth:`to_json` wrote (a dict or its JSON text)."""
        if isinstance(payload, str):
            payload = json.loads(payload)
        columns = []
        for c in payload["columns"]:
            column_type = ColumnType.from_postgres(c["type"])
            if column_type is None:
                raise ValueError(f"column {c['name']!r}: unknown type {c['type']!r} in a schema document")
            columns.append(Column(c["name"], c.get("data_type", ""), column_type))
        return cls(tuple(columns), bool(payload.get("text_only", False)))


def column_type(field_meta: dict[str, Any]) -> ColumnType:
    """The column type of one ``settings/fields`` entry."""
    data_type = str(field_meta.get("data_type") or "")
    if field_meta.get("api_name") in ID_COLUMNS or data_type in _INTEGER_TYPES:
        return ColumnType(BIGINT)
    if data_type in _SCALAR_TYPES:
        return ColumnType(_SCALAR_TYPES[data_type])
    if data_type in _DECIMAL_TYPES:
        return ColumnType(NUMERIC, _scale(data_type, field_meta.get("decimal_place")))
    if data_type == "autonumber" and _plain_autonumber(field_meta):
        return ColumnType(BIGINT)
    return TEXT_TYPE


def _scale(data_type: str, decimal_place: Any) -> int:
    if isinstance(decimal_place, int) and not isinstance(decimal_place, bool):
        return min(max(decimal_place, 0), MAX_SCALE)
    return CURRENCY_DEFAULT_SCALE if data_type == "currency" else DECIMAL_DEFAULT_SCALE


def _plain_autonumber(field_meta: dict[str, Any]) -> bool:
    settings = field_meta.get("auto_number") or field_meta.get("autonumber")
    return isinstance(settings, dict) and not settings.get("prefix") and not settings.get("suffix")


def table_schema(field_metadata: list[dict] | dict | None, columns: list[str] | None = None) -> TableSchema:
    """The typed schema of ``columns`` (a CSV header; default: every field of the metadata, in its order).

    :param field_metadata: a ``settings/fields`` answer (``{"fields": [...]}``) or its list; None: all text.
    :param columns: the column names, e.g. a page's header; names the metadata lacks are text.
    """
    fields = {f["api_name"]: f for f in metadata_fields(field_metadata)}
    names = list(columns) if columns is not None else list(fields)
    if not fields:
        return TableSchema(tuple(Column(n, "", ColumnType(BIGINT) if n in ID_COLUMNS else TEXT_TYPE)
                                 for n in names), text_only=True)
    result = []
    for name in names:
        meta = fields.get(name)
        if meta is None:
            result.append(Column(name, "", ColumnType(BIGINT) if name in ID_COLUMNS else TEXT_TYPE))
        else:
            result.append(Column(name, str(meta.get("data_type") or ""), column_type(meta)))
    return TableSchema(tuple(result))


@dataclass(frozen=True)
class TypeChange:
    """A column whose type differs between two schemas; ``safe`` when the old type widens to the new one."""

    name: str
    old: ColumnType
    new: ColumnType

    @property
    def safe(self) -> bool:
        return self.old.widens_to(self.new)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "old": self.old.postgres, "new": self.new.postgres, "safe": self.safe}


@dataclass(frozen=True)
class SchemaDrift:
    """Columns added, removed and changing type from one schema to the next."""

    added: tuple[Column, ...] = ()
    removed: tuple[Column, ...] = ()
    changed: tuple[TypeChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    @property
    def unsafe(self) -> tuple[TypeChange, ...]:
        return tuple(c for c in self.changed if not c.safe)

    def to_json(self) -> dict[str, Any]:
        return {"added": [c.to_json() for c in self.added], "removed": [c.to_json() for c in self.removed],
                "changed": [c.to_json() for c in self.changed]}

    def describe(self) -> str:
        """One line for a log: e.g. "added Rating (text); removed Fax; Amount numeric(30,2) -> text (safe)"."""
        parts = [f"added {c.name} ({c.type})" for c in self.added]
        parts += [f"removed {c.name}" for c in self.removed]
        parts += [f"{c.name} {c.old} -> {c.new} ({'safe' if c.safe else 'NOT safe'})" for c in self.changed]
        return "; ".join(parts) or "no schema change"


def schema_drift(old: TableSchema, new: TableSchema) -> SchemaDrift:
    """What changed from ``old`` to ``new`` (e.g. the previous run's page schema and this run's).

    A text-only side carries no type information, so type changes are only reported between two typed schemas.
    """
    added = tuple(c for c in new.columns if old.get(c.name) is None)
    removed = tuple(c for c in old.columns if new.get(c.name) is None)
    changed: tuple[TypeChange, ...] = ()
    if not (old.text_only or new.text_only):
        changed = tuple(TypeChange(c.name, old.get(c.name).type, c.type) for c in new.columns
                        if old.get(c.name) is not None and old.get(c.name).type != c.type)
    return SchemaDrift(added, removed, changed)
