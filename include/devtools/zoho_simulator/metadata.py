"""Field metadata answers (GET /crm/{v}/settings/fields?module=X), consistent with the generated data."""

from __future__ import annotations

from typing import Any

from .data import MODULES, ORG_PREFIX, FieldSpec, ModuleSpec

JSON_TYPE = {"bigint": "string", "integer": "integer", "double": "double", "currency": "double",
             "percent": "double", "boolean": "boolean", "lookup": "jsonobject", "ownerlookup": "jsonobject",
             "multiselectpicklist": "jsonarray"}
LENGTH = {"text": 255, "email": 100, "phone": 30, "picklist": 120, "textarea": 32000, "bigint": 19,
          "integer": 9, "double": 16, "currency": 16, "percent": 5, "boolean": 5, "lookup": 120,
          "ownerlookup": 120, "datetime": 120, "date": 20, "autonumber": 255, "multiselectpicklist": 2000}
PICK_LISTS = ("picklist", "multiselectpicklist")
SYSTEM = {"id", "Owner", "Created_By", "Modified_By", "Created_Time", "Modified_Time"}


def field_id(module: ModuleSpec, number: int) -> str:
    return str(ORG_PREFIX + 2_000_000 + module.number * 1000 + number)


def field_json(module: ModuleSpec, f: FieldSpec, number: int) -> dict[str, Any]:
    system = f.api_name in SYSTEM
    body: dict[str, Any] = {
        "api_name": f.api_name, "field_label": f.label, "display_label": f.label, "data_type": f.data_type,
        "json_type": JSON_TYPE.get(f.data_type, "string"), "id": field_id(module, number),
        "column_name": f.api_name.upper(), "length": LENGTH[f.data_type],
        "system_mandatory": f.api_name in ("Last_Name", "id"), "read_only": system, "field_read_only": system,
        "custom_field": module.custom and not system, "visible": True, "filterable": True, "sortable": True,
        "searchable": f.data_type in ("text", "email", "phone"), "webhook": True, "virtual_field": False,
        "mass_update": not system, "sequence_number": number + 1, "created_source": "custom" if module.custom
        else "default", "type": "used", "display_type": -1, "ui_type": 1, "category": 0, "show_type": 7,
        "decimal_place": f.decimal_place,
        "operation_type": {"web_update": not system, "api_create": not system, "web_create": not system,
                           "api_update": not system},
        "view_type": {"view": True, "edit": not system, "quick_create": False, "create": not system},
        "pick_list_values": [], "lookup": {}, "unique": {}, "currency": {},
        "hipaa_compliance_enabled": f.kind == "empty",
    }
    if f.data_type == "autonumber":
        body["auto_number"] = {"prefix": f.prefix or None, "suffix": f.suffix or None,
                               "start_number": f.start_number, "starting_number_length": len(str(f.start_number))}
        body["read_only"] = body["field_read_only"] = True
    if f.data_type in PICK_LISTS:
        body["pick_list_values"] = [
            {"display_value": v or "-None-", "actual_value": v or "-None-", "reference_value": v or "-None-",
             "id": str(ORG_PREFIX + 3_000_000 + module.number * 10_000 + number * 100 + n),
             "sequence_number": n + 1, "type": "used", "colour_code": None}
            for n, v in enumerate(f.values)
        ]
    if f.data_type in ("lookup", "ownerlookup"):
        target = MODULES[f.lookup_module] if f.lookup_module else None
        body["lookup"] = {"display_label": f.label, "api_name": f.api_name, "id": body["id"],
                          "module": ({"api_name": target.api_name, "id": target.id} if target
                                     else {"api_name": "users", "id": None})}
    if f.kind == "empty":
        body["hipaa_compliance"] = {"restricted": True, "restricted_in_export": True}
    return body


def fields_json(module: ModuleSpec) -> list[dict[str, Any]]:
    return [field_json(module, f, n) for n, f in enumerate(module.fields)]
