"""Checked SQL names of the warehouse: the schema, a module's table and its columns (Zoho API names)."""

from __future__ import annotations

import re

from zoho_crm.tables.schema import ID_COLUMNS

SCHEMA = "zoho_crm"
SYNC_STATE_TABLE = "_sync_state"
ID = "id"
MODIFIED_TIME = "Modified_Time"
SYNCED_AT = "_zoho_synced_at"
RUN_KEY = "_zoho_run_key"
DELETED_AT = "_zoho_deleted_at"
DELETED_BY = "_zoho_deleted_by"
BOOKKEEPING = (DELETED_AT, DELETED_BY, SYNCED_AT, RUN_KEY)
"""Columns of every table beside the exported ones, in table order (never nulled or written by an export)."""
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL truncates longer names, which could make two columns one

_MODULE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)?")


def table_name(module: str) -> str:
    """The table of a module in schema ``zoho_crm``: its API name in lower case (``Sales_Orders`` -> ``sales_orders``).

    :param module: a Zoho module API name (letters, digits, underscores, starting with a letter).
    :raises ValueError: not such a name, or longer than PostgreSQL's 63-byte identifiers.
    """
    if not isinstance(module, str) or not _MODULE.fullmatch(module) or len(module) > MAX_IDENTIFIER_BYTES:
        raise ValueError(f"module {module!r} is not a Zoho module API name (letters, digits and underscores, "
                         f"starting with a letter, at most {MAX_IDENTIFIER_BYTES} characters)")
    return module.lower()


def qualified_table_name(module: str) -> str:
    """The module's table with its schema, ``zoho_crm.<table>`` (:func:`table_name`).

    :param module: a Zoho module API name.
    """
    return f"{SCHEMA}.{table_name(module)}"


def column_name(field: str) -> str:
    """The table column of a CSV column: the id column (``id`` / ``Id``) is ``id``, other API names stay as they are.

    :param field: a CSV header name (a field API name, or an owner sub-field such as ``Owner.first_name``).
    :raises ValueError: not such a name (e.g. empty, spaces, quotes, a leading underscore) or too long.
    """
    if field in ID_COLUMNS:
        return ID
    if not isinstance(field, str) or not _FIELD.fullmatch(field) or len(field.encode()) > MAX_IDENTIFIER_BYTES:
        raise ValueError(f"column {field!r} is not a Zoho field API name (letters, digits and underscores, "
                         f"starting with a letter, optionally .sub_field, at most {MAX_IDENTIFIER_BYTES} bytes)")
    return field
