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

MODULE_ALIASES: dict[str, str] = {"Meetings": ICS_MODULE}
"""Other names Zoho's UIs give a module (lower case accepted too), mapped to the API name Bulk Read wants."""

BULK_READ_SCOPE = "ZohoCRM.bulk.read"
FIELDS_READ_SCOPE = "ZohoCRM.settings.fields.READ"


def api_name(module: str) -> str:
    """Map a seed name (``leads``, ``price_books``, ``meetings``) to its API name; other names pass unchanged."""
    name = module.strip()
    key = name.lower()
    for alias, target in MODULE_ALIASES.items():
        if alias.lower() == key:
            return target
    for known in (*SEED_MODULES, *NON_EXPORTABLE_MODULES):
        if known.lower() == key:
            return known
    return name


def not_exportable_message(name: str) -> str:
    """Why ``name`` (an API name in :data:`NON_EXPORTABLE_MODULES`) cannot be exported, and what to do."""
    others = ", ".join(sorted(NON_EXPORTABLE_MODULES - {name}))
    return f"module {name} cannot be exported with Bulk Read (nor can {others} or related lists): choose another module."


def required_scopes(module: str) -> list[str]:
    """OAuth scopes a bulk read of ``module`` needs (``.ALL`` instead of ``.READ`` also works)."""
    return [BULK_READ_SCOPE, f"ZohoCRM.modules.{api_name(module).lower()}.READ"]
