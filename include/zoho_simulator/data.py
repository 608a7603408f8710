"""Deterministic, lazily generated CRM records: module schemas and one record per index, never a whole module."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import TypeVar

import numpy as np

T = TypeVar("T")
ORG_PREFIX = 5725767_000_000_000_000  # 19-digit ids all start with the org's prefix
DEFAULT_VIEW_SUFFIX = 87501
USERS = [
    ("5725767000000411001", "Patricia", "Boyle"),
    ("5725767000000411002", "José", "Müller"),
    ("5725767000000411003", "Zoë", "O'Brien"),
    ("5725767000000411004", "李", "雷"),
    ("5725767000000411005", "Amélie", "Dubois, Jr."),
    ("5725767000000411006", "Søren", "Kierkegård"),
]
OFFSETS = [timezone(timedelta(hours=h, minutes=m)) for h, m in
           [(0, 0), (5, 30), (-8, 0), (1, 0), (9, 0), (-5, 0), (10, 0), (-3, 0)]]
FIRST = ["Ann", "Björn", "Chloé", "Dmitri", "Émile", "Fatima", "Giovanni", "Hana", "Ígor", "Jürgen", "Kenji",
         "Łukasz", "María José", "Nguyễn", "Olivia", "Priya", "Quentin", "Renée", "Siobhán", "Tomás", "王"]
LAST = ["Smith", "O'Neil", "García", "Øster", "Nakamura", "D'Angelo", "Schröder", "Kowalski", "Dubois",
        "Ng", "Brown-Jones", "van der Berg", "Çelik", "Åkesson", "李"]
COMPANIES = ["Acme, Inc.", 'The "Best" Widgets', "Müller & Söhne GmbH", "Zoho Corp", "Ñandú Exports, S.A.",
             "東京商事", "O'Reilly Media", "Smith, Jones and Partners", "Blue Sky Ltd", "Crème Brûlée Café"]
CITIES = ["São Paulo", "Zürich", "New York", "Chennai", "Kraków", "Montréal", "Tokyo", "Reykjavík", "Austin"]
STATES = ["CA", "NY", "TX", "Île-de-France", "Bayern", "Tamil Nadu", ""]
COUNTRIES = ["United States", "Deutschland", "India", "France", "日本", "Brasil", "Polska", "Canada"]
STREETS = ["1 Main St.", "42 Rue de l'Église", "Königstraße 5", "221B Baker St, Flat 2", "Av. Paulista, 1000"]
WORDS = ["alpha", "beta", "renewal", "follow-up", "naïve", "façade", "cost, time and scope",
         'said "yes"', "déjà vu", "résumé", "100%", "smörgåsbord", "über", "piñata"]
NOTES = [
    "", "Called twice, no answer.", "Met at the expo; wants a demo, pricing and a trial.",
    'Customer said: "send the quote by Friday".', "Line one\nLine two\nLine three",
    "Prefers e-mail.\r\nDo not call before 10:00.", "Ünïcödé ñotes — ok ✓", "Budget: $10,000; decision in Q1",
]
PRIORITIES = ["High", "Highest", "Low", "Lowest", "Normal"]
TITLES = ["CEO", "VP Sales", "Directeur général", "Engineer", "Buyer, EMEA", ""]
WEBSITES = ["https://example.com", "www.zoho.com", "", "http://müller.example/path?a=1,b=2"]
HANDLES = ["", "@acme", "jdoe", "ünïcode_user"]
EMAIL_USERS = ["info", "sales", "j.doe", "anna_b"]
DOMAINS = ["example.com", "example.org", "müller.de"]
CALLING_CODES = [1, 44, 49, 91, 81]
Generator = Callable[[random.Random, tuple[int, int, int], dict[str, object]], object]


def _pick(rng: random.Random, pool: Sequence[T]) -> T:
    return pool[int(rng.random() * len(pool))]


def _date(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")



@dataclass(frozen=True)
class FieldSpec:
    """One field of a module: API name, Zoho data type and how its values are made."""

    api_name: str
    data_type: str
    kind: str = ""
    values: tuple[str, ...] = ()
    lookup_module: str = ""

    @property
    def label(self) -> str:
        return self.api_name.replace("_", " ")


@dataclass(frozen=True)
class ModuleSpec:
    api_name: str
    number: int
    fields: tuple[FieldSpec, ...]
    custom: bool = False
    field_index: dict[str, FieldSpec] = field(default_factory=dict, compare=False, hash=False)

    @property
    def id(self) -> str:
        return str(ORG_PREFIX + 2175 + 25 * self.number)

    @property
    def default_cvid(self) -> str:
        return str(ORG_PREFIX + DEFAULT_VIEW_SUFFIX + 1000 * self.number)

    def record_id(self, idx: int) -> str:
        return str(ORG_PREFIX + (self.number + 1) * 10_000_000_000 + 1_000_000 + idx)

    def get(self, api_name: str) -> FieldSpec | None:
        return self.field_index.get(api_name)


def F(api_name: str, data_type: str, kind: str = "", values: tuple[str, ...] = (), lookup: str = "") -> FieldSpec:
    return FieldSpec(api_name, data_type, kind or data_type, values, lookup)


def pick(*values: str) -> tuple[str, ...]:
    return values


COMMON_HEAD = (F("id", "bigint", "id"), F("Owner", "ownerlookup"))
COMMON_TAIL = (
    F("Created_By", "ownerlookup"), F("Modified_By", "ownerlookup"),
    F("Created_Time", "datetime", "created"), F("Modified_Time", "datetime", "modified"),
)
ADDRESS = (F("Street", "text", "street"), F("City", "text", "city"), F("State", "text", "state"),
           F("Zip_Code", "text", "zip"), F("Country", "text", "country"))
LEAD_SOURCE = pick("Advertisement", "Cold Call", "Employee Referral", "Partner", "Web Download", "Trade Show", "")
INDUSTRY = pick("ASP", "Data/Telecom OEM", "ERP", "Government/Military", "Large Enterprise", "Non-management ISV")
STAGES = pick("Qualification", "Needs Analysis", "Value Proposition", "Proposal/Price Quote", "Closed Won",
              "Closed Lost")
STATUS = pick("Draft", "Negotiation", "Delivered", "On Hold", "Confirmed", "Closed Won", "Closed Lost")

_MODULE_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "Leads": (
        F("Company", "text", "company"), F("First_Name", "text", "first"), F("Last_Name", "text", "last"),
        F("Full_Name", "text", "full_name"), F("Salutation", "picklist", values=pick("Mr.", "Mrs.", "Ms.", "Dr.", "")),
        F("Designation", "text", "title"), F("Email", "email"), F("Secondary_Email", "email", "email_sparse"),
        F("Phone", "phone"), F("Mobile", "phone"), F("Fax", "phone", "phone_sparse"),
        F("Website", "text", "website"), F("Lead_Source", "picklist", values=LEAD_SOURCE),
        F("Lead_Status", "picklist", values=pick("Attempted to Contact", "Contact in Future", "Contacted",
                                                 "Junk Lead", "Lost Lead", "Not Contacted", "Pre-Qualified")),
        F("Industry", "picklist", values=INDUSTRY), F("No_of_Employees", "integer"),
        F("Annual_Revenue", "currency"), F("Rating", "picklist", values=pick("Acquired", "Active", "Project Cancelled", "Shut Down")),
        F("Email_Opt_Out", "boolean"), F("Skype_ID", "text", "handle"),
        *ADDRESS, F("Description", "textarea"), F("Tag", "text", "tag"), F("Lead_Score", "integer"),
        F("Date_of_Birth", "date"), F("Campaign_Source", "lookup", lookup="Campaigns"),
        F("Last_Activity_Time", "datetime", "activity"), F("Exchange_Rate", "double"),
        F("Currency", "picklist", values=pick("USD", "EUR", "INR", "JPY")),
        F("Health_Notes", "textarea", "empty"),
    ),
    "Accounts": (
        F("Account_Name", "text", "company"), F("Account_Number", "bigint"), F("Account_Type", "picklist",
          values=pick("Analyst", "Competitor", "Customer", "Distributor", "Partner", "Prospect")),
        F("Industry", "picklist", values=INDUSTRY), F("Phone", "phone"), F("Website", "text", "website"),
        F("Annual_Revenue", "currency"), F("Employees", "integer"), F("Parent_Account", "lookup", lookup="Accounts"),
        *ADDRESS, F("Description", "textarea"),
    ),
    "Contacts": (
        F("First_Name", "text", "first"), F("Last_Name", "text", "last"), F("Full_Name", "text", "full_name"),
        F("Email", "email"), F("Phone", "phone"), F("Mobile", "phone"), F("Title", "text", "title"),
        F("Account_Name", "lookup", lookup="Accounts"), F("Lead_Source", "picklist", values=LEAD_SOURCE),
        F("Date_of_Birth", "date"), F("Email_Opt_Out", "boolean"), *ADDRESS, F("Description", "textarea"),
    ),
    "Deals": (
        F("Deal_Name", "text", "deal"), F("Amount", "currency"), F("Stage", "picklist", values=STAGES),
        F("Probability", "integer", "percent"), F("Closing_Date", "date"),
        F("Account_Name", "lookup", lookup="Accounts"), F("Contact_Name", "lookup", lookup="Contacts"),
        F("Type", "picklist", values=pick("Existing Business", "New Business", "")),
        F("Lead_Source", "picklist", values=LEAD_SOURCE), F("Description", "textarea"),
    ),
    "Campaigns": (
        F("Campaign_Name", "text", "deal"), F("Type", "picklist", values=pick("Webinar", "Email", "Trade Show", "Other")),
        F("Status", "picklist", values=pick("Planning", "Active", "Inactive", "Complete")),
        F("Start_Date", "date"), F("End_Date", "date"), F("Budgeted_Cost", "currency"), F("Actual_Cost", "currency"),
        F("Expected_Revenue", "currency"), F("Description", "textarea"),
    ),
    "Tasks": (
        F("Subject", "text", "deal"), F("Due_Date", "date"), F("Status", "picklist",
          values=pick("Not Started", "Deferred", "In Progress", "Completed", "Waiting for input")),
        F("Priority", "picklist", values=PRIORITIES), F("What_Id", "lookup", lookup="Deals"),
        F("Who_Id", "lookup", lookup="Contacts"), F("Send_Notification_Email", "boolean"),
        F("Description", "textarea"),
    ),
    "Cases": (
        F("Subject", "text", "deal"), F("Case_Number", "bigint"), F("Status", "picklist",
          values=pick("New", "On Hold", "Escalated", "Closed")), F("Priority", "picklist", values=PRIORITIES),
        F("Case_Origin", "picklist", values=pick("Email", "Phone", "Web")), F("Account_Name", "lookup", lookup="Accounts"),
        F("Email", "email"), F("Phone", "phone"), F("Description", "textarea"), F("Patient_Info", "textarea", "empty"),
    ),
    "Events": (
        F("Event_Title", "text", "deal"), F("Start_DateTime", "datetime", "start"),
        F("End_DateTime", "datetime", "end"), F("All_day", "boolean", "false"), F("Venue", "text", "city"),
        F("Who_Id", "lookup", lookup="Contacts"), F("What_Id", "lookup", lookup="Accounts"),
        F("Recurring_Activity", "text", "rrule"), F("Description", "textarea"),
    ),
    "Calls": (
        F("Subject", "text", "deal"), F("Call_Type", "picklist", values=pick("Inbound", "Outbound", "Missed")),
        F("Call_Start_Time", "datetime", "activity"), F("Call_Duration_in_seconds", "integer"),
        F("Who_Id", "lookup", lookup="Contacts"), F("Call_Result", "text", "tag"), F("Description", "textarea"),
    ),
    "Solutions": (
        F("Solution_Title", "text", "deal"), F("Solution_Number", "bigint"), F("Status", "picklist",
          values=pick("Draft", "Reviewed", "Published")), F("Question", "textarea"), F("Answer", "textarea"),
    ),
    "Products": (
        F("Product_Name", "text", "deal"), F("Product_Code", "text", "code"), F("Unit_Price", "currency"),
        F("Qty_in_Stock", "double"), F("Product_Active", "boolean"), F("Vendor_Name", "lookup", lookup="Vendors"),
        F("Product_Category", "picklist", values=pick("Hardware", "Software", "CRM Applications")),
        F("Description", "textarea"),
    ),
    "Vendors": (
        F("Vendor_Name", "text", "company"), F("Email", "email"), F("Phone", "phone"), F("Website", "text", "website"),
        F("GL_Account", "picklist", values=pick("Sales-Software", "Sales-Hardware", "Rental-Income")),
        *ADDRESS, F("Description", "textarea"),
    ),
    "Price_Books": (
        F("Price_Book_Name", "text", "deal"), F("Active", "boolean"),
        F("Pricing_Model", "picklist", values=pick("Flat", "Differential")), F("Description", "textarea"),
    ),
    **{
        name: (
            F("Subject", "text", "deal"), F(stage_field, "picklist", values=STATUS),
            F("Account_Name", "lookup", lookup="Accounts"), F("Contact_Name", "lookup", lookup="Contacts"),
            F("Grand_Total", "currency"), F("Sub_Total", "currency"), F("Discount", "double"),
            F("Due_Date", "date"), *ADDRESS, F("Terms_and_Conditions", "textarea"), F("Description", "textarea"),
        )
        for name, stage_field in [("Quotes", "Quote_Stage"), ("Sales_Orders", "Status"),
                                  ("Purchase_Orders", "Status"), ("Invoices", "Status")]
    },
    "Shipments": (
        F("Name", "text", "code"), F("Tracking_Number", "text", "code"), F("Carrier", "picklist",
          values=pick("DHL", "FedEx", "UPS", "La Poste", "日本郵便")), F("Shipped_On", "date"),
        F("Delivered", "boolean"), F("Weight_kg", "double"), F("Sales_Order", "lookup", lookup="Sales_Orders"),
        F("Contact_Email", "email"), F("Notes", "textarea"),
    ),
}
NOT_EXPORTABLE = ("Notes", "Attachments", "Emails")


def _build_modules() -> dict[str, ModuleSpec]:
    modules = {}
    for number, (name, fields) in enumerate(_MODULE_FIELDS.items()):
        all_fields = (*COMMON_HEAD, *fields, *COMMON_TAIL)
        spec = ModuleSpec(name, number, all_fields, custom=name == "Shipments")
        spec.field_index.update({f.api_name: f for f in all_fields})
        modules[name] = spec
    return modules


MODULES = _build_modules()
OWNER_SUBFIELDS = {"first_name": 1, "last_name": 2, "full_name": 0, "email": 3}


def owner_subfield(user_id: str, sub: str) -> str:
    for uid, first, last in USERS:
        if uid == user_id:
            return {"first_name": first, "last_name": last, "full_name": f"{first} {last}",
                    "email": f"user{uid[-3:]}@example.com"}[sub]
    return ""


class Dataset:
    """Records of every module, generated on demand from (seed, module, index)."""

    def __init__(self, seed: int, counts: dict[str, int], default_count: int, start: datetime, days: float) -> None:
        self.seed = seed
        self.counts = dict(counts)
        self.default_count = default_count
        self.start = int(start.timestamp())
        self.span = max(1, int(days * 86400))

    def count(self, module: str) -> int:
        return self.counts.get(module, self.default_count)

    @lru_cache(maxsize=64)  # noqa: B019 -- one small dataset per process
    def times(self, module: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Created_Time and Modified_Time (epoch seconds) of all n records, vectorised (16 bytes a record)."""
        rng = np.random.default_rng([self.seed, MODULES[module].number, n])
        created = self.start + rng.integers(0, self.span, n, dtype=np.int64)
        modified = created + (rng.random(n) * (self.start + self.span - created)).astype(np.int64)
        return created, modified

    def offset(self, idx: int) -> timezone:
        return OFFSETS[(idx * 2654435761 + self.seed) % len(OFFSETS)]

    def record(self, module: str, idx: int) -> dict[str, object]:
        """Raw values of one record (datetimes as epoch ints, everything else final strings)."""
        spec = MODULES[module]
        created, modified = self.times(module, self.count(module))
        rng = random.Random((self.seed * 1_000_003 + spec.number) * 10_000_019 + idx)
        ctx = (idx, int(created[idx]), int(modified[idx]))
        row: dict[str, object] = {}
        for name, make in self._generators(module):
            row[name] = make(rng, ctx, row)
        return row

    @lru_cache(maxsize=64)  # noqa: B019 -- one small dataset per process
    def _generators(self, module: str) -> list[tuple[str, Generator]]:
        spec = MODULES[module]
        return [(f.api_name, self._generator(f, spec)) for f in spec.fields]

    def _generator(self, f: FieldSpec, spec: ModuleSpec) -> Generator:  # noqa: C901 -- one branch per kind
        k, start, span = f.kind, self.start, self.span
        if k == "id":
            return lambda rng, ctx, row: spec.record_id(ctx[0])
        if k == "created":
            return lambda rng, ctx, row: ctx[1]
        if k == "modified":
            return lambda rng, ctx, row: ctx[2]
        if k == "activity":
            return lambda rng, ctx, row: ctx[2] if rng.random() < 0.8 else None
        if k == "start":
            return lambda rng, ctx, row: start + (ctx[0] * 7919 + ctx[1]) % span
        if k == "end":
            return lambda rng, ctx, row: row["Start_DateTime"] + 1800 * (1 + ctx[0] % 3)
        if k == "rrule":
            return lambda rng, ctx, row: recurrence_rule(ctx[0])
        if k == "full_name":
            return lambda rng, ctx, row: f"{row.get('First_Name', '')} {row.get('Last_Name', '')}".strip()
        if k == "empty":
            return lambda rng, ctx, row: ""
        if k == "lookup":
            target, name, count = MODULES[f.lookup_module], f.lookup_module, self.count

            def lookup(rng: random.Random, ctx: tuple[int, int, int], row: dict[str, object]) -> str:
                n = count(name)
                return "" if n == 0 or rng.random() < 0.15 else target.record_id(int(rng.random() * n))

            return lookup
        if k == "date":
            return lambda rng, ctx, row: _date(ctx[1] - int(rng.random() * 400) * 86400)
        if k in ("email", "email_sparse"):
            sparse = 0.7 if k == "email_sparse" else 0.0
            return lambda rng, ctx, row: "" if rng.random() < sparse else (
                f"{_pick(rng, EMAIL_USERS)}{ctx[0]}@{_pick(rng, DOMAINS)}")
        if k in ("phone", "phone_sparse"):
            sparse = 0.6 if k == "phone_sparse" else 0.1
            return lambda rng, ctx, row: "" if rng.random() < sparse else (
                f"+{_pick(rng, CALLING_CODES)} {int(rng.random() * 900) + 100} {int(rng.random() * 9000000) + 1000000}")
        if k == "tag":
            return lambda rng, ctx, row: ",".join(rng.sample(WORDS, int(rng.random() * 3)))
        if k == "deal":
            return lambda rng, ctx, row: f"{_pick(rng, WORDS).capitalize()} {_pick(rng, COMPANIES)} #{ctx[0]}"
        if k == "code":
            return lambda rng, ctx, row: f"SKU-{int(rng.random() * 10**6):06d}"
        if k == "zip":
            return lambda rng, ctx, row: f"{int(rng.random() * 99000) + 1000:05d}"
        if k in ("integer", "percent"):
            top = 101 if k == "percent" else 5000
            return lambda rng, ctx, row: str(int(rng.random() * top))
        if k == "bigint":
            return lambda rng, ctx, row: str(10**9 + int(rng.random() * 10**11))
        if k == "currency":
            return lambda rng, ctx, row: f"{int(rng.random() * 10**7) / 100:.2f}"
        if k == "double":
            return lambda rng, ctx, row: repr(round(rng.random() * 1000, 3))
        if k == "false":
            return lambda rng, ctx, row: "false"
        pools = {
            "ownerlookup": [u[0] for u in USERS], "picklist": list(f.values), "first": FIRST, "last": LAST,
            "company": COMPANIES, "title": TITLES, "website": WEBSITES, "handle": HANDLES, "street": STREETS,
            "city": CITIES, "state": STATES, "country": COUNTRIES, "textarea": NOTES, "boolean": ["true", "false"],
        }
        if k not in pools:
            raise ValueError(f"no generator for field kind {k!r} ({spec.api_name}.{f.api_name})")
        pool = pools[k]
        return lambda rng, ctx, row: _pick(rng, pool)

    def format(self, f: FieldSpec, value: object, idx: int) -> str:
        """The CSV text of a raw value (datetimes in ISO 8601 with the record's offset, no millis)."""
        if value is None:
            return ""
        if f.data_type == "datetime":
            return datetime.fromtimestamp(int(value), self.offset(idx)).isoformat()  # type: ignore[call-overload]
        return str(value)


def recurrence_rule(idx: int) -> str:
    """Every 7th event is a weekly series (RRULE); every 14th of those has an edited occurrence."""
    return "FREQ=WEEKLY;INTERVAL=1;COUNT=4" if idx % 7 == 3 else ""


def has_edited_occurrence(idx: int) -> bool:
    return idx % 14 == 3
