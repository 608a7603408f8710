"""Zoho CRM modules: the seed's module list, lowercase-name mapping, export limits and OAuth scopes."""

from __future__ import annotations

SEED_MODULES: tuple[str, ...] = (
    "Leads",
    "Accounts",
    "Contacts",
    "Deals",
    "Campaigns",
    "Tasks",
    "Cases",
    "Events",
    "Calls",
    "Solutions",
    "Products",
    "Vendors",
    "Price_Books",
    "Quotes",
    "Sales_Orders",
    "Purchase_Orders",
    "Invoices",
)
"""API names of the standard modules the project exports (custom modules are accepted by API name too)."""

NON_EXPORTABLE_MODULES: frozenset[str] = frozenset({"Notes", "Attachments", "Emails"})
"""Modules Bulk Read refuses (related lists are refused as well)."""

ICS_MODULE = "Events"
"""The only module that can be exported as ICS (newer Zoho UIs call it Meetings)."""

_ALIASES: dict[str, str] = {"meetings": "Events"}

BULK_READ_SCOPE = "ZohoCRM.bulk.read"
FIELDS_READ_SCOPE = "ZohoCRM.settings.fields.READ"


def api_name(module: str) -> str:
    """Map a seed name (``leads``, ``price_books``, ``meetings``) to its API name; other names pass unchanged."""
    name = module.strip()
    key = name.lower()
    if key in _ALIASES:
        return _ALIASES[key]
    for known in (*SEED_MODULES, *NON_EXPORTABLE_MODULES):
        if known.lower() == key:
            return known
    return name


def is_exportable(module: str) -> bool:
    """False for modules Bulk Read cannot export (Notes, Attachments, Emails)."""
    return api_name(module) not in NON_EXPORTABLE_MODULES


def required_scopes(module: str) -> list[str]:
    """OAuth scopes a bulk read of ``module`` needs (``.ALL`` instead of ``.READ`` also works)."""
    return [BULK_READ_SCOPE, f"ZohoCRM.modules.{api_name(module).lower()}.READ"]
