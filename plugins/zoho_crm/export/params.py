"""The export DAG's Params: the trigger form the UI renders and checks before a run is created.

The form checks what JSON schema can express; :meth:`zoho_crm.export.records.ExportQuery.from_params` checks the
rest when the run starts (its keys are :data:`PARAM_NAMES`).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from zoho_crm.api.modules import MODULE_ALIASES, SEED_MODULES
from zoho_crm.api.query import COMPARATORS, FILE_TYPES, GROUP_OPERATORS
from zoho_crm.export.records import PARAM_NAMES

__all__ = ["PARAM_NAMES", "criteria_schema", "export_params", "module_names"]


def module_names(custom_modules: list[str]) -> list[str]:
    """Every module name the form accepts: API names, aliases, their lowercase names, and the custom modules.

    :param custom_modules: the deployment's custom module API names.
    """
    names = [*SEED_MODULES, *MODULE_ALIASES, *custom_modules]
    return list(dict.fromkeys([*names, *(name.lower() for name in names)]))


def criteria_schema() -> dict[str, Any]:
    """JSON schema of Zoho criteria: a condition, or a group of criteria (what ``check_criteria`` checks)."""
    condition = {
        "type": "object",
        "required": ["field", "comparator", "value"],
        "properties": {
            "field": {
                "type": "object",
                "required": ["api_name"],
                "properties": {"api_name": {"type": "string", "minLength": 1}},
            },
            "comparator": {"enum": sorted(COMPARATORS)},
        },
        "not": {"anyOf": [{"required": ["group"]}, {"required": ["group_operator"]}]},
    }
    group = {
        "type": "object",
        "required": ["group_operator", "group"],
        "properties": {
            "group_operator": {"enum": [*GROUP_OPERATORS, *(op.upper() for op in GROUP_OPERATORS)]},
            "group": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/criteria"}},
        },
        "not": {"anyOf": [{"required": ["field"]}, {"required": ["comparator"]}, {"required": ["value"]}]},
    }
    return {"$defs": {"criteria": {"anyOf": [condition, group]}}, "anyOf": [{"type": "null"}, {"$ref": "#/$defs/criteria"}]}


def export_params(module: str, fields: list[str], file_type: str, custom_modules: list[str]) -> dict[str, Param]:
    """The trigger form with one export's defaults (keys: :data:`PARAM_NAMES`).

    :param module: the default module.
    :param fields: the default fields (empty: all).
    :param file_type: the default file type.
    :param custom_modules: the deployment's custom module API names (accepted by the module field).
    """
    time_help = "ISO 8601 with an offset, e.g. 2026-11-01T00:00:00+00:00 (the form's picker sends UTC)."
    return {
        "module": Param(
            module,
            type="string",
            pattern="^(?:" + "|".join(module_names(custom_modules)) + ")$",
            examples=[*SEED_MODULES, *custom_modules],
            title="Module",
            description="Module API name: pick one, or type a custom module's API name (custom modules must be "
            "listed in custom_modules of include/config/zoho_crm_exports.json).",
        ),
        "fields": Param(
            fields,
            type="array",
            items={"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9_.]*$"},
            uniqueItems=True,
            title="Fields",
            description="Field API names, in the CSV's order. Empty = all fields. Must be empty for ICS.",
        ),
        "file_type": Param(
            file_type, type="string", enum=list(FILE_TYPES), title="File type", description="ics: Events only."
        ),
        "criteria": Param(
            None,
            type=["null", "object"],
            title="Criteria (JSON)",
            description='Optional Zoho criteria, e.g. {"field": {"api_name": "Lead_Status"}, '
            '"comparator": "equal", "value": "Contacted"}, or {"group_operator": "and", "group": [...]}.',
            **criteria_schema(),
        ),
        "cvid": Param(
            None, type=["null", "string"], pattern=r"^[0-9]*$", title="Custom view id",
            description="Optional: export only the records of this custom view (its id, digits; in Zoho's URL of "
            "the view). Empty = no view.",
        ),
        "modified_from": Param(
            None, type=["null", "string"], format="date-time", title="Modified from",
            description=f"Time range override (with Modified to): export records modified in [from, to). {time_help}",
        ),
        "modified_to": Param(
            None, type=["null", "string"], format="date-time", title="Modified to", description=time_help
        ),
    }
