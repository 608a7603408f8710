"""Bulk read criteria: validation with Zoho's error codes, and evaluation over record indices."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import numpy as np

from .data import OWNER_SUBFIELDS, Dataset, ModuleSpec
from .errors import ZohoError

DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ALL_COMPARATORS = {"equal", "not_equal", "in", "not_in", "greater_than", "greater_equal", "less_than", "less_equal",
                   "between", "not_between", "contains", "not_contains", "starts_with", "ends_with"}
ORDERED = {"equal", "not_equal", "in", "not_in", "greater_than", "greater_equal", "less_than", "less_equal",
           "between", "not_between"}
TEXT = {"equal", "not_equal", "in", "not_in", "contains", "not_contains", "starts_with", "ends_with"}
COMPARATORS_BY_TYPE = {
    "datetime": ORDERED, "date": ORDERED, "bigint": ORDERED, "integer": ORDERED, "currency": ORDERED,
    "double": ORDERED, "percent": ORDERED, "autonumber": {"equal", "not_equal", "in", "not_in"},
    "multiselectpicklist": {"equal", "not_equal", "in", "not_in", "contains", "not_contains"}, "text": TEXT, "email": TEXT, "phone": TEXT, "textarea": TEXT - {"in", "not_in"},
    "picklist": {"equal", "not_equal", "in", "not_in"}, "boolean": {"equal"},
    "lookup": {"equal", "not_equal", "in", "not_in"}, "ownerlookup": {"equal", "not_equal", "in", "not_in"},
}
NUMERIC = ("bigint", "integer", "currency", "double", "percent")
Mask = Callable[[Dataset, np.ndarray], np.ndarray]


def invalid(message: str, **details: Any) -> ZohoError:
    return ZohoError("INVALID_CRITERIA", message, details)


def parse_datetime(value: Any, api_name: str) -> int:
    """Epoch seconds of an ISO 8601 datetime with offset and without milliseconds (else INVALID_CRITERIA)."""
    if not isinstance(value, str) or not DATETIME_RE.match(value):
        raise invalid(f"the value of {api_name} must be an ISO 8601 datetime with offset and without milliseconds, "
                      "e.g. 2026-11-01T00:00:00+00:00", api_name=api_name, value=str(value))
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


def parse_date(value: Any, api_name: str) -> str:
    if not isinstance(value, str) or not DATE_RE.match(value):
        raise invalid(f"the value of {api_name} must be a date YYYY-MM-DD", api_name=api_name, value=str(value))
    try:
        date.fromisoformat(value)
    except ValueError:
        raise invalid(f"{value!r} is not a valid date", api_name=api_name) from None
    return value


class Criteria:
    """A validated criteria tree, compiled to a vectorised mask function over record indices."""

    def __init__(self, module: ModuleSpec, tree: Any) -> None:
        self.module = module
        self.tree = tree
        self._compiled = self._compile(tree, depth=0)

    def mask(self, dataset: Dataset, indices: np.ndarray) -> np.ndarray:
        return self._compiled(dataset, indices)

    def _compile(self, node: Any, depth: int) -> Mask:
        if not isinstance(node, dict) or not node:
            raise invalid("each criteria node must be a non-empty JSON object")
        is_group = "group" in node or "group_operator" in node
        is_condition = "field" in node or "comparator" in node or "value" in node
        if is_group and is_condition:
            raise ZohoError("AMBIGUOUS_CRITERIA", "a criteria node holds both a condition and a group; split them",
                            {"keys": sorted(node)})
        if is_group:
            return self._compile_group(node, depth)
        if is_condition:
            return self._compile_condition(node)
        raise invalid("a criteria node needs either field/comparator/value or group_operator/group",
                      keys=sorted(node))

    def _compile_group(self, node: dict[str, Any], depth: int) -> Mask:
        op = node.get("group_operator")
        if not isinstance(op, str) or op.lower() not in ("and", "or"):
            raise ZohoError("GROUP_OPERATOR_NOT_SUPPORTED", "group_operator must be 'and' or 'or'",
                            {"group_operator": str(op)})
        group = node.get("group")
        if not isinstance(group, list) or not group:
            raise invalid("group must be a non-empty list of criteria nodes")
        if depth > 5:
            raise invalid("criteria nested too deeply (max 5 levels)")
        parts = [self._compile(child, depth + 1) for child in group]
        is_and = op.lower() == "and"

        def run(ds: Dataset, idx: np.ndarray) -> np.ndarray:
            result = parts[0](ds, idx)
            for part in parts[1:]:
                result = (result & part(ds, idx)) if is_and else (result | part(ds, idx))
            return result

        return run

    def _compile_condition(self, node: dict[str, Any]) -> Mask:
        fld = node.get("field")
        api_name = fld.get("api_name") if isinstance(fld, dict) else None
        if not isinstance(api_name, str):
            raise invalid("field must be an object with api_name", node=str(node)[:200])
        spec = self.module.get(api_name)
        if spec is None:
            raise invalid(f"unknown field {api_name!r} in criteria for module {self.module.api_name}",
                          api_name=api_name)
        comparator = node.get("comparator")
        if comparator not in ALL_COMPARATORS:
            raise invalid(f"unknown comparator {comparator!r}", api_name=api_name)
        if comparator not in COMPARATORS_BY_TYPE[spec.data_type]:
            raise ZohoError("FIELD_COMPARATOR_IN_CRITERIA_NOT_SUPPORTED",
                            f"comparator {comparator} is not supported for {spec.data_type} field {api_name}",
                            {"api_name": api_name, "comparator": comparator,
                             "supported": sorted(COMPARATORS_BY_TYPE[spec.data_type])})
        if "value" not in node:
            raise invalid(f"condition on {api_name} has no value", api_name=api_name)
        value = node["value"]
        if comparator in ("between", "not_between"):
            if not isinstance(value, list) or len(value) != 2:
                raise invalid(f"{comparator} needs a list of two values", api_name=api_name)
            value = [self._scalar(spec.data_type, v, api_name) for v in value]
        elif comparator in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise invalid(f"{comparator} needs a non-empty list of values", api_name=api_name)
            value = [self._scalar(spec.data_type, v, api_name) for v in value]
        else:
            value = self._scalar(spec.data_type, value, api_name)
        test = make_test(comparator, value)
        module, data_type = self.module.api_name, spec.data_type

        def evaluate(ds: Dataset, idx: np.ndarray) -> np.ndarray:
            column = ds.raw_columns(module, idx, [api_name])[api_name]
            if data_type == "datetime":
                return np.asarray(test(column), dtype=bool) & (column >= 0)
            values = [record_value(data_type, v) for v in column.tolist()]
            return np.fromiter((v is not None and bool(test(v)) for v in values), dtype=bool, count=len(values))

        return evaluate

    @staticmethod
    def _scalar(data_type: str, value: Any, api_name: str) -> Any:
        if data_type == "datetime":
            return parse_datetime(value, api_name)
        if data_type == "date":
            return parse_date(value, api_name)
        if data_type in NUMERIC:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise invalid(f"{api_name} needs a number", api_name=api_name)
            try:
                return float(value)
            except ValueError:
                raise invalid(f"{api_name} needs a number, got {value!r}", api_name=api_name) from None
        if data_type == "boolean":
            if not isinstance(value, bool) and value not in ("true", "false"):
                raise invalid(f"{api_name} needs true or false", api_name=api_name)
            return "true" if value in (True, "true") else "false"
        if isinstance(value, dict) and "id" in value:
            value = value["id"]
        if not isinstance(value, str | int):
            raise invalid(f"{api_name} needs a text value", api_name=api_name)
        return str(value).lower()


def record_value(data_type: str, raw: str) -> Any:
    """A CSV text value in the form criteria values are compared with (None when empty)."""
    if raw == "":
        return None
    if data_type in NUMERIC:
        return float(raw)
    if data_type in ("date", "boolean"):
        return raw
    return raw.lower()


def make_test(comparator: str, v: Any) -> Callable[[Any], Any]:
    """A function of the record value (scalar or numpy array) for one comparator and the parsed value."""
    tests: dict[str, Callable[[Any], Any]] = {
        "equal": lambda x: x == v,
        "not_equal": lambda x: x != v,
        "greater_than": lambda x: x > v,
        "greater_equal": lambda x: x >= v,
        "less_than": lambda x: x < v,
        "less_equal": lambda x: x <= v,
        "between": lambda x: (x >= v[0]) & (x <= v[1]),
        "not_between": lambda x: (x < v[0]) | (x > v[1]),
        "in": lambda x: np.isin(x, v) if isinstance(x, np.ndarray) else x in v,
        "not_in": lambda x: ~np.isin(x, v) if isinstance(x, np.ndarray) else x not in v,
        "contains": lambda x: v in x,
        "not_contains": lambda x: v not in x,
        "starts_with": lambda x: x.startswith(v),
        "ends_with": lambda x: x.endswith(v),
    }
    return tests[comparator]


def matching_indices(dataset: Dataset, module: str, criteria: Criteria | None, chunk: int = 50_000) -> np.ndarray:
    """Indices (int64, ascending) of the module's records live at ``dataset.now`` and matching the criteria."""
    n = dataset.count(module)
    if criteria is None and dataset.static:
        return np.arange(n, dtype=np.int64)
    parts = [np.zeros(0, dtype=np.int64)]
    for lo in range(0, n, chunk):
        idx = np.arange(lo, min(n, lo + chunk), dtype=np.int64)
        idx = idx[dataset.live(module, idx)]
        parts.append(idx if criteria is None else idx[criteria.mask(dataset, idx)])
    return np.concatenate(parts)


def parse_fields(module: ModuleSpec, fields: Any) -> list[str]:
    """Validated CSV columns: ``id`` first, then the given fields in order (all fields if none)."""
    if fields is None or fields == []:
        return [f.api_name for f in module.fields]
    if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
        raise ZohoError("REQUEST_BODY_NOT_SUPPORTED", "fields must be a list of field API names")
    for name in fields:
        base, _, sub = name.partition(".")
        spec = module.get(base)
        if spec is None or (sub and not (spec.data_type == "ownerlookup" and sub in OWNER_SUBFIELDS)):
            raise ZohoError("FIELD_NOT_AVAILABLE", f"unknown field {name!r} for module {module.api_name}",
                            {"api_name": name, "module": module.api_name})
    return ["id", *[f for f in dict.fromkeys(fields) if f != "id"]]
