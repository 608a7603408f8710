"""Deterministic, lazily generated CRM records: module schemas and one record per index, never a whole module."""

from __future__ import annotations

from collections.abc import Sequence
from copy import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from .history import Events, Versions, field_generation, versions

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
@dataclass(frozen=True)
class FieldSpec:
    """One field of a module: API name, Zoho data type and how its values are made."""

    api_name: str
    data_type: str
    kind: str = ""
    values: tuple[str, ...] = ()
    lookup_module: str = ""
    decimal_place: int | None = None
    """Decimals of currency/double/percent values (the metadata's ``decimal_place``)."""
    prefix: str = ""
    suffix: str = ""
    start_number: int = 1
    """Autonumber: the first record's number, written between ``prefix`` and ``suffix``."""

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

    @property
    def first_id(self) -> int:
        return ORG_PREFIX + (self.number + 1) * 10_000_000_000 + 1_000_000

    def record_id(self, idx: int) -> str:
        return str(self.first_id + idx)

    def get(self, api_name: str) -> FieldSpec | None:
        return self.field_index.get(api_name)


DECIMALS = {"currency": 2, "double": 3, "percent": 2}


def F(api_name: str, data_type: str, kind: str = "", values: tuple[str, ...] = (), lookup: str = "",
      **options: Any) -> FieldSpec:
    options.setdefault("decimal_place", DECIMALS.get(data_type))
    return FieldSpec(api_name, data_type, kind or data_type, values, lookup, **options)


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
        F("Expected_Revenue", "currency"), F("Expected_Response_Rate", "percent"), F("Description", "textarea"),
    ),
    "Tasks": (
        F("Subject", "text", "deal"), F("Due_Date", "date"), F("Status", "picklist",
          values=pick("Not Started", "Deferred", "In Progress", "Completed", "Waiting for input")),
        F("Priority", "picklist", values=PRIORITIES), F("What_Id", "lookup", lookup="Deals"),
        F("Who_Id", "lookup", lookup="Contacts"), F("Send_Notification_Email", "boolean"),
        F("Description", "textarea"),
    ),
    "Cases": (
        F("Subject", "text", "deal"), F("Case_Number", "autonumber", start_number=1001), F("Status", "picklist",
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
        F("Solution_Title", "text", "deal"), F("Solution_Number", "autonumber", start_number=1), F("Status", "picklist",
          values=pick("Draft", "Reviewed", "Published")), F("Question", "textarea"), F("Answer", "textarea"),
    ),
    "Products": (
        F("Product_Name", "text", "deal"), F("Product_Code", "text", "code"), F("Unit_Price", "currency"),
        F("Qty_in_Stock", "double"), F("Product_Active", "boolean"), F("Vendor_Name", "lookup", lookup="Vendors"),
        F("Product_Category", "picklist", values=pick("Hardware", "Software", "CRM Applications")),
        F("Tax", "multiselectpicklist", values=pick("Sales Tax", "VAT", "Service Tax", "GST")),
        F("Commission_Rate", "currency"), F("Description", "textarea"),
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
        F("Name", "autonumber", prefix="SHP-", start_number=1), F("Tracking_Number", "text", "code"), F("Carrier", "picklist",
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
OWNER_SUBFIELDS = ("first_name", "last_name", "full_name", "email")


def owner_subfield(user_id: str, sub: str) -> str:
    for uid, first, last in USERS:
        if uid == user_id:
            return {"first_name": first, "last_name": last, "full_name": f"{first} {last}",
                    "email": f"user{uid[-3:]}@example.com"}[sub]
    return ""


M64 = (1 << 64) - 1


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, vectorised over uint64 (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _obj(values: Sequence[str]) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


def _text(arr: np.ndarray) -> np.ndarray:
    """Numbers or numpy strings as an object array of Python str."""
    return arr.astype(str).astype(object)


def _zfill(arr: np.ndarray, width: int) -> np.ndarray:
    return np.char.zfill(arr.astype(str), width).astype(object)


OFFSET_SECONDS = np.array([int(o.utcoffset(None).total_seconds()) for o in OFFSETS], dtype=np.int64)
OFFSET_TEXT = _obj([datetime(2000, 1, 1, tzinfo=o).isoformat()[-6:] for o in OFFSETS])
USER_IDS = _obj([u[0] for u in USERS])
RRULE = "FREQ=WEEKLY;INTERVAL=1;COUNT=4"


class Dataset:
    """Records of every module, generated on demand and vectorised from (seed, module, field, index).

    A record's values depend only on the seed, the module and its index (not on page boundaries or counts,
    except lookups, which point into the target module's current count), and on the simulated moment ``now``
    with the history settings and scheduled events (see history.py). ``at(now)`` is a snapshot for one job.
    """

    def __init__(self, seed: int, counts: dict[str, int], default_count: int, start: datetime, days: float) -> None:
        self.seed = seed
        self.counts = dict(counts)
        self.default_count = default_count
        self.start = int(start.timestamp())
        self.span = max(1, int(days * 86400))
        self.ics_overrides = "with_series"  # or "apart": see exports._write_ics (Settings.ics_overrides)
        self.now = self.end
        self.changes_per_day = 0.0
        self.deletions_per_day = 0.0
        self.permanent_share = 0.3
        self.restore_share = 0.2
        self.retention_seconds = 60 * 86400
        self.events = Events()
        self._specs: dict[tuple[str, tuple[FieldSpec, ...]], ModuleSpec] = {}

    @property
    def end(self) -> int:
        """The end of the generated span: the default ``now``, when every record exists in its base version."""
        return self.start + self.span

    @property
    def static(self) -> bool:
        """True when the data is exactly the generated base data (no history to evaluate)."""
        return (self.now >= self.end and self.changes_per_day == 0 and self.deletions_per_day == 0
                and self.events.empty())

    def at(self, now: int) -> Dataset:
        """A snapshot at the simulated moment ``now`` (epoch seconds), unaffected by later control calls."""
        snap = copy(self)
        snap.now = int(now)
        snap.events = self.events.copy()
        snap.counts = dict(self.counts)
        return snap

    def count(self, module: str) -> int:
        return self.counts.get(module, self.default_count)

    def spec(self, module: str) -> ModuleSpec:
        """The module's fields at ``now``: the generated ones, then fields added up to then."""
        base = MODULES[module]
        added = tuple(f for f, at in self.events.added_fields.get(module, []) if at <= self.now)
        if not added:
            return base
        key = (module, added)
        if key not in self._specs:
            spec = ModuleSpec(base.api_name, base.number, (*base.fields, *added), base.custom)
            spec.field_index.update({f.api_name: f for f in spec.fields})
            self._specs[key] = spec
        return self._specs[key]

    def added_at(self, module: str, api_name: str) -> int | None:
        return next((at for f, at in self.events.added_fields.get(module, []) if f.api_name == api_name), None)

    def versions(self, module: str, idx: np.ndarray) -> Versions:
        """Created/Modified_Time, liveness and visible edits of the records at ``now``."""
        created, base = self.base_times(module, idx)
        if self.static:
            return Versions.static(created, base)
        return versions(self, module, idx, created, base)

    def live(self, module: str, idx: np.ndarray) -> np.ndarray:
        """Which of the records exist at ``now`` (created, and not deleted or restored since)."""
        if self.static:
            return np.ones(len(idx), dtype=bool)
        return self.versions(module, idx).live

    def uniform(self, module: str, salt: str, idx: np.ndarray) -> np.ndarray:
        """Deterministic uniforms in [0, 1), one per index, for (module, salt)."""
        key = hash_key(self.seed, module, salt)
        h = _mix(idx.astype(np.uint64) * np.uint64(0xD1B54A32D192ED03) + np.uint64(key))
        return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

    def base_times(self, module: str, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Created_Time and base Modified_Time (epoch seconds, int64) of the given records."""
        created = self.start + (self.uniform(module, "created", idx) * self.span).astype(np.int64)
        modified = created + (self.uniform(module, "modified", idx) * (self.start + self.span - created)).astype(np.int64)
        return created, modified

    def offsets(self, module: str, idx: np.ndarray) -> np.ndarray:
        return (self.uniform(module, "tz", idx) * len(OFFSETS)).astype(np.int64)

    def raw_columns(self, module: str, idx: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Raw values of some fields for the given records: int64 epochs for datetimes (-1 = empty), object
        arrays of str for everything else."""
        out: dict[str, np.ndarray] = {}
        v = self.versions(module, idx)
        spec = self.spec(module)
        for name in names:
            self._get(spec, name, idx, v, out)
        return out

    def _get(self, spec: ModuleSpec, name: str, idx: np.ndarray, v: Versions,
             out: dict[str, np.ndarray]) -> np.ndarray:
        if name not in out:
            f = spec.field_index[name]
            column = self._column(spec, f, idx, v, out)
            since = self.added_at(spec.api_name, name)
            if since is not None:  # records not modified since the field was added have no value
                column = np.where(v.modified < since, -1 if f.data_type == "datetime" else "", column)
                column = column.astype(np.int64 if f.data_type == "datetime" else object)
            out[name] = column
        return out[name]

    def text_columns(self, module: str, idx: np.ndarray, columns: Sequence[str]) -> list[np.ndarray]:
        """CSV text of each column (``Owner.last_name`` style owner sub-fields allowed) for the records."""
        spec = self.spec(module)
        raw = self.raw_columns(module, idx, [c.partition(".")[0] for c in columns])
        offsets = None
        texts = []
        for col in columns:
            base, _, sub = col.partition(".")
            values = raw[base]
            if sub:
                lookup = {uid: owner_subfield(uid, sub) for uid in USER_IDS}
                texts.append(_obj([lookup.get(v, "") for v in values]))
            elif spec.field_index[base].data_type == "datetime":
                if offsets is None:
                    offsets = self.offsets(module, idx)
                texts.append(format_datetimes(values, offsets))
            else:
                texts.append(values)
        return texts

    def _column(self, spec: ModuleSpec, f: FieldSpec, idx: np.ndarray,  # noqa: C901 -- one branch per kind
                v: Versions, out: dict[str, np.ndarray]) -> np.ndarray:
        k, n = f.kind, len(idx)
        created, modified = v.created, v.modified
        generation = field_generation(self, spec.api_name, f, idx, v)
        keys = idx + (generation << np.int64(32))  # an edit draws the field's values afresh

        def get(name: str) -> np.ndarray:
            return self._get(spec, name, idx, v, out)

        def u(salt: str = "") -> np.ndarray:
            return self.uniform(spec.api_name, f"{f.api_name}:{salt}", keys)

        def pick_from(pool: Sequence[str], salt: str = "") -> np.ndarray:
            return _obj(pool)[(u(salt) * len(pool)).astype(np.int64)]

        def sparse(values: np.ndarray, p: float) -> np.ndarray:
            return np.where(u("sparse") < p, "", values).astype(object) if p else values

        if k == "id":
            return _text(spec.first_id + idx)
        if k == "created":
            return created
        if k == "modified":
            return modified
        if k == "activity":
            return np.where(u() < 0.8, modified, -1)
        if k == "start":
            return self.start + (u() * self.span).astype(np.int64)
        if k == "end":
            return get("Start_DateTime") + 1800 * (1 + idx % 3)
        if k == "rrule":
            return np.where(idx % 7 == 3, RRULE, "").astype(object)
        if k == "full_name":
            return get("First_Name") + " " + get("Last_Name")
        if k == "empty":
            return np.full(n, "", dtype=object)
        if k == "lookup":
            target, count = MODULES[f.lookup_module], self.count(f.lookup_module)
            ids = _text(target.first_id + (u("target") * count).astype(np.int64))
            return sparse(ids, 1.0 if count == 0 else 0.15)
        if k == "date":
            days = (created // 86400 - (u() * 400).astype(np.int64)).astype("datetime64[D]")
            return np.datetime_as_string(days, unit="D").astype(object)
        if k in ("email", "email_sparse"):
            values = pick_from(EMAIL_USERS, "user") + _text(idx) + "@" + pick_from(DOMAINS, "domain")
            return sparse(values, 0.7 if k == "email_sparse" else 0.0)
        if k in ("phone", "phone_sparse"):
            values = ("+" + pick_from([str(c) for c in CALLING_CODES], "cc") + " "
                      + _text(100 + (u("a") * 900).astype(np.int64)) + " "
                      + _text(1_000_000 + (u("b") * 9_000_000).astype(np.int64)))
            return sparse(values, 0.6 if k == "phone_sparse" else 0.1)
        if k == "tag":
            many, w1, w2 = (u() * 3).astype(np.int64), pick_from(WORDS, "1"), pick_from(WORDS, "2")
            return np.where(many == 0, "", np.where(many == 1, w1, w1 + "," + w2)).astype(object)
        if k == "deal":
            return (pick_from([w.capitalize() for w in WORDS], "w") + " " + pick_from(COMPANIES, "c") + " #"
                    + _text(idx))
        if k == "code":
            return "SKU-" + _zfill((u() * 10**6).astype(np.int64), 6)
        if k == "zip":
            return _zfill(1000 + (u() * 98_000).astype(np.int64), 5)
        if k in ("integer", "percent"):
            return _text((u() * (101 if k == "percent" else 5000)).astype(np.int64))
        if k == "bigint":
            return _text(10**9 + (u() * 10**11).astype(np.int64))
        if k == "currency":
            cents = (u() * 10**7).astype(np.int64)
            return _text(cents // 100) + "." + _zfill(cents % 100, 2)
        if k == "double":
            return _text(np.round(u() * 1000, f.decimal_place if f.decimal_place is not None else 3))
        if k == "false":
            return np.full(n, "false", dtype=object)
        if k == "autonumber":
            return f.prefix + _text(f.start_number + idx) + f.suffix
        if k == "multiselectpicklist":
            return _multiselect(f.values, [u(str(j)) for j in range(len(f.values))])
        pools = {
            "ownerlookup": USER_IDS, "picklist": f.values, "first": FIRST, "last": LAST, "company": COMPANIES,
            "title": TITLES, "website": WEBSITES, "handle": HANDLES, "street": STREETS, "city": CITIES,
            "state": STATES, "country": COUNTRIES, "textarea": NOTES, "boolean": ("true", "false"),
        }
        if k not in pools:
            raise ValueError(f"no generator for field kind {k!r} ({spec.api_name}.{f.api_name})")
        return pick_from(pools[k])


def _multiselect(values: Sequence[str], draws: list[np.ndarray]) -> np.ndarray:
    """About a third of the choices per record, in pick-list order, joined with ';' (one text cell)."""
    cells = np.full(len(draws[0]) if draws else 0, "", dtype=object)
    for value, draw in zip(values, draws, strict=True):
        chosen = draw < 0.35
        cells = np.where(chosen & (cells != ""), cells + ";" + value, np.where(chosen, value, cells)).astype(object)
    return cells


def hash_key(seed: int, module: str, salt: str) -> int:
    """A stable 64-bit key (Python's hash() is salted per process, so use a fixed polynomial)."""
    key = seed & M64
    for ch in f"{module}/{salt}":
        key = (key * 1_000_003 + ord(ch)) & M64
    return key


def format_datetimes(epochs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """ISO 8601 with offset, no milliseconds (``2026-11-03T14:05:09+05:30``); -1 becomes empty."""
    local = (epochs + OFFSET_SECONDS[offsets]).astype("datetime64[s]")
    text = np.datetime_as_string(local, unit="s").astype(object) + OFFSET_TEXT[offsets]
    return np.where(epochs < 0, "", text).astype(object)


def has_edited_occurrence(idx: int) -> bool:
    """Every 14th event (a weekly series, see RRULE) has its second occurrence moved by an hour."""
    return idx % 14 == 3
