"""Generate a deterministic roofing company's JobNimbus data.

The same `seed` and `scale` always give the same records. Timestamps are offsets (spread over the last ~2 years)
from an `anchor` time, so `now-7d` style filters find recent records whenever the sandbox starts; pass the same
anchor to get byte-identical data.
"""

from __future__ import annotations

import random
import string
from typing import Any

Record = dict[str, Any]

ACCOUNT_ID = "sandboxroofingco0000001"
DAY = 86_400
SPAN = 730 * DAY
ID_ALPHABET = string.ascii_lowercase + string.digits

# Record counts at scale 1.0: a few thousand records in all.
BASE_COUNTS = {
    "contacts": 500,
    "jobs": 650,
    "activities": 1300,
    "tasks": 550,
    "files": 400,
    "estimates": 300,
    "invoices": 200,
    "workorders": 100,
    "materialorders": 80,
    "payments": 150,
    "budgets": 40,
}
PRODUCT_COUNT = 40

FIRST = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Maria",
    "Wei",
    "Aisha",
    "Tyler",
    "Megan",
]
LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Nguyen",
    "Walker",
    "Hall",
    "Young",
]
STREETS = [
    "Oak",
    "Maple",
    "Cedar",
    "Pine",
    "Elm",
    "Walnut",
    "Hickory",
    "Birch",
    "Willow",
    "Sycamore",
    "Lakeview",
    "Sunset",
    "Ridge",
    "Meadow",
]
CITIES = [
    ("Dallas", "TX", "752"),
    ("Plano", "TX", "750"),
    ("Frisco", "TX", "750"),
    ("Denton", "TX", "762"),
    ("Tulsa", "OK", "741"),
    ("Norman", "OK", "730"),
]
COMPANIES = ["Lone Star Property Mgmt", "Ridge HOA", "Summit Realty", "Cornerstone Church", "Acme Storage"]
INSURERS = ["State Farm", "Allstate", "USAA", "Farmers", "Liberty Mutual"]
SOURCES = ["Door Knocking", "Referral", "Google", "Facebook", "Yard Sign", "Storm Canvass", "Repeat Customer"]
JOB_KINDS = ["Roof Replacement", "Roof Repair", "Gutter Install", "Siding", "Hail Damage", "Leak Repair", "Skylight"]
NOTES = [
    "Met homeowner on site, measured roof: {n} squares.",
    "Adjuster meeting scheduled, homeowner wants upgraded shingles.",
    "Left voicemail about the estimate.",
    "Crew found rotten decking on the north slope, change order needed.",
    "Homeowner approved color: Weathered Wood.",
    "Dumpster delivered, tear-off starts tomorrow.",
    "Final walkthrough done, customer happy with the gutters.",
    "Supplement sent to insurance for drip edge and ice & water shield.",
]
PRODUCTS = [
    ("Architectural Shingles", "SQ", 115.0, 82.0),
    ("3-Tab Shingles", "SQ", 90.0, 61.0),
    ("Synthetic Underlayment", "RL", 95.0, 70.0),
    ("Ice & Water Shield", "RL", 120.0, 88.0),
    ("Drip Edge", "PC", 12.0, 7.5),
    ("Ridge Cap", "BDL", 65.0, 44.0),
    ("Pipe Boot", "EA", 18.0, 9.0),
    ("Seamless Gutter", "LF", 9.5, 4.2),
    ("Downspout", "EA", 45.0, 21.0),
    ("Labor - Tear Off", "SQ", 55.0, 40.0),
]

USERS = [
    ("Dana", "Reyes"),
    ("Marcus", "Cole"),
    ("Priya", "Shah"),
    ("Tom", "Becker"),
    ("Lena", "Ortiz"),
    ("Sam", "Whitfield"),
    ("Grace", "Kim"),
    ("Hank", "Doyle"),
]
SALES_REPS = 5  # the first five users sell; Dana Reyes is the one the restricted built-in key sees as.


def _statuses(names: list[str], start_id: int, closed: tuple[str, ...] = (), lead: int = 1) -> list[Record]:
    """Return status records for one workflow, ordered as given."""
    return [
        {
            "id": start_id + i,
            "name": name,
            "is_lead": i < lead,
            "is_closed": name in closed,
            "is_active": True,
            "order": i + 1,
        }
        for i, name in enumerate(names)
    ]


def account_settings() -> Record:
    """Return the account settings: workflows with statuses and the type lists."""
    job_statuses = [
        "Lead",
        "Appointment Scheduled",
        "Estimate Sent",
        "Contract Signed",
        "Production",
        "Invoiced",
        "Paid & Closed",
        "Lost",
    ]
    workflows = [
        {
            "id": 1,
            "name": "Customer",
            "object_type": "contact",
            "status": _statuses(["Lead", "Prospect", "Customer", "Inactive"], 100, closed=("Inactive",)),
        },
        {"id": 2, "name": "Vendor", "object_type": "contact", "status": _statuses(["Active", "Inactive"], 200, lead=0)},
        {
            "id": 3,
            "name": "Retail",
            "object_type": "job",
            "status": _statuses(job_statuses, 300, ("Paid & Closed", "Lost")),
        },
        {
            "id": 4,
            "name": "Insurance",
            "object_type": "job",
            "status": _statuses(["Claim Filed", "Adjuster Meeting", *job_statuses[2:]], 400, ("Paid & Closed", "Lost")),
        },
        {
            "id": 5,
            "name": "Repair",
            "object_type": "job",
            "status": _statuses(job_statuses, 500, ("Paid & Closed", "Lost")),
        },
        {
            "id": 6,
            "name": "Work Order",
            "object_type": "workorder",
            "status": _statuses(["Open", "Scheduled", "Completed"], 600, ("Completed",), lead=0),
        },
    ]
    return {
        "workflows": workflows,
        "fileTypes": _named(["Photo", "Document", "Contract", "Insurance Scope", "Invoice PDF"]),
        "taskTypes": _named(["Appointment", "Inspection", "Follow Up", "Phone Call", "Production"]),
        "activityTypes": _named(["Note", "Email", "Phone Call", "Status Change", "Text Message"]),
        "sources": _named(SOURCES),
    }


def _named(names: list[str]) -> list[Record]:
    """Return `[{id, name, is_active}]` with ids from 1."""
    return [{"id": i + 1, "name": name, "is_active": True} for i, name in enumerate(names)]


class Seeder:
    """Build one dataset; every random choice comes from one seeded generator, in a fixed order."""

    def __init__(self, seed: int, scale: float, anchor: int) -> None:
        self.rng = random.Random(seed)
        self.scale = scale
        self.anchor = anchor
        self.settings = account_settings()
        self.records: dict[str, dict[str, Record]] = {}
        self.users: list[Record] = []
        self.recids: dict[str, int] = {}

    def count(self, resource: str) -> int:
        """Return how many records of a resource to make at this scale."""
        return max(1, round(BASE_COUNTS[resource] * self.scale))

    def jnid(self) -> str:
        """Return a new 24-char lowercase alphanumeric id, like JobNimbus's."""
        return "".join(self.rng.choices(ID_ALPHABET, k=24))

    def when(self, after: int) -> tuple[int, int]:
        """Return (date_created, date_updated) after `after`, with updated >= created <= anchor."""
        created = self.rng.randint(min(after, self.anchor), self.anchor)
        recent = self.rng.random() < 0.08  # some records changed in the last week, for date-math filters
        low = max(created, self.anchor - 7 * DAY) if recent else created
        return created, self.rng.randint(min(low, self.anchor), self.anchor)

    def base(self, resource: str, rtype: str, after: int) -> Record:
        """Return the fields every record carries."""
        recid = self.recids.get(resource, 0) + 1
        self.recids[resource] = recid
        created, updated = self.when(after)
        user = self.rng.choice(self.users)
        return {
            "jnid": self.jnid(),
            "recid": recid,
            "number": str(1000 + recid),
            "type": rtype,
            "customer": ACCOUNT_ID,
            "created_by": user["id"],
            "created_by_name": _full(user),
            "date_created": created,
            "date_updated": updated,
            "is_active": self.rng.random() > 0.03,
            "is_archived": False,
            "external_id": None,
            "tags": [],
            "owners": [{"id": user["id"]}],
            "location": {"id": 1, "name": "Main Office"},
            "primary": None,
            "related": [],
        }

    def add(self, resource: str, record: Record) -> Record:
        """Store a record under its resource and return it."""
        self.records.setdefault(resource, {})[record["jnid"]] = record
        return record

    def pick(self, resource: str) -> Record:
        """Return a random existing record of a resource."""
        return self.rng.choice(list(self.records[resource].values()))

    def workflow(self, object_type: str) -> tuple[Record, Record]:
        """Return a random (workflow, status) for an object type."""
        flows = [w for w in self.settings["workflows"] if w["object_type"] == object_type]
        flow = self.rng.choice(flows)
        return flow, self.rng.choice(flow["status"])

    def set_workflow(self, rec: Record, object_type: str) -> None:
        """Give a record a workflow and status."""
        flow, status = self.workflow(object_type)
        rec.update(
            record_type=flow["id"],
            record_type_name=flow["name"],
            status=status["id"],
            status_name=status["name"],
            date_status_change=rec["date_updated"],
        )

    def make_users(self) -> None:
        """Create the account's users."""
        for i, (first, last) in enumerate(USERS):
            self.users.append(
                {
                    "id": self.jnid(),
                    "first_name": first,
                    "last_name": last,
                    "email": f"{first.lower()}.{last.lower()}@sandboxroofing.example",
                    "is_active": i != len(USERS) - 1,
                    "calendar_color": f"#{self.rng.randrange(0x1000000):06x}",
                    "image_url": None,
                }
            )

    def address(self) -> Record:
        """Return a street address with geo."""
        city, state, zip3 = self.rng.choice(CITIES)
        return {
            "address_line1": f"{self.rng.randint(100, 9999)} {self.rng.choice(STREETS)} St",
            "address_line2": "",
            "city": city,
            "state_text": state,
            "zip": f"{zip3}{self.rng.randint(10, 99)}",
            "country_name": "United States",
            "geo": {"lat": round(32.5 + self.rng.random() * 4, 5), "lon": round(-97.5 + self.rng.random() * 2, 5)},
        }

    def make_contacts(self) -> None:
        """Create homeowners and a few companies, each with a sales rep."""
        for _ in range(self.count("contacts")):
            rec = self.base("contacts", "contact", self.anchor - SPAN)
            first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
            company = self.rng.choice(COMPANIES) if self.rng.random() < 0.1 else ""
            rep = self.users[self.rng.randrange(SALES_REPS)]
            rec.update(self.address())
            rec.update(
                first_name=first,
                last_name=last,
                display_name=company or f"{first} {last}",
                company=company,
                email=f"{first.lower()}.{last.lower()}{rec['recid']}@example.com",
                home_phone=self.phone(),
                mobile_phone=self.phone(),
                work_phone="",
                website="",
                description="",
                source_name=self.rng.choice(SOURCES),
                sales_rep=rep["id"],
                sales_rep_name=_full(rep),
            )
            self.set_workflow(rec, "contact")
            self.add("contacts", rec)

    def phone(self) -> str:
        """Return a US-looking phone number."""
        return f"({self.rng.randint(200, 989)}) 555-{self.rng.randint(0, 9999):04d}"

    def make_jobs(self) -> None:
        """Create jobs, each with a primary contact that is also related."""
        for _ in range(self.count("jobs")):
            contact = self.pick("contacts")
            rec = self.base("jobs", "job", contact["date_created"])
            rec.update(
                {
                    k: contact[k]
                    for k in (
                        "address_line1",
                        "address_line2",
                        "city",
                        "state_text",
                        "zip",
                        "country_name",
                        "geo",
                        "sales_rep",
                        "sales_rep_name",
                        "source_name",
                    )
                }
            )
            rec.update(
                name=f"{contact['last_name']} - {self.rng.choice(JOB_KINDS)}",
                description="",
                date_start=rec["date_created"] + self.rng.randint(3, 40) * DAY,
                date_end=0,
                approved_estimate_total=0.0,
                approved_invoice_total=0.0,
                attachment_count=0,
                task_count=0,
                primary=link(contact),
                related=[link(contact)],
            )
            rec["date_end"] = rec["date_start"] + self.rng.randint(1, 5) * DAY
            self.set_workflow(rec, "job")
            if rec["record_type_name"] == "Insurance":
                rec["Insurance Company"] = self.rng.choice(INSURERS)
                rec["Claim Number"] = f"CLM-{self.rng.randint(100000, 999999)}"
            self.add("jobs", rec)

    def child(self, resource: str, rtype: str) -> tuple[Record, Record]:
        """Return (new record linked to a random job and its contact, the job)."""
        job = self.pick("jobs")
        rec = self.base(resource, rtype, job["date_created"])
        rec["related"] = [link(job), *job["related"]]
        rec["primary"] = link(job)
        return rec, job

    def make_activities(self) -> None:
        """Create notes (record_type 1) and a few status-change activities on jobs."""
        types = self.settings["activityTypes"]
        for _ in range(self.count("activities")):
            rec, job = self.child("activities", "activity")
            status_change = self.rng.random() < 0.15
            kind = types[3] if status_change else self.rng.choice([types[0]] * 6 + types[1:3] + types[4:])
            note = f"Status changed to {job['status_name']}" if status_change else self.rng.choice(NOTES)
            rec.update(
                note=note.format(n=self.rng.randint(18, 60)),
                is_status_change=status_change,
                record_type=kind["id"],
                record_type_name=kind["name"],
            )
            self.add("activities", rec)

    def make_tasks(self) -> None:
        """Create tasks on jobs and count them on the job."""
        for _ in range(self.count("tasks")):
            rec, job = self.child("tasks", "task")
            kind = self.rng.choice(self.settings["taskTypes"])
            start = rec["date_created"] + self.rng.randint(0, 20) * DAY
            rec.update(
                title=f"{kind['name']}: {job['name']}",
                priority=self.rng.randint(0, 3),
                date_start=start,
                date_end=start + 3600,
                is_completed=start < self.anchor and self.rng.random() < 0.7,
                record_type=kind["id"],
                record_type_name=kind["name"],
            )
            job["task_count"] += 1
            self.add("tasks", rec)

    def make_files(self) -> None:
        """Create attachments on jobs and count them on the job."""
        for _ in range(self.count("files")):
            rec, job = self.child("files", "attachment")
            kind = self.rng.choice(self.settings["fileTypes"])
            photo = kind["name"] == "Photo"
            rec.update(
                filename=f"{kind['name'].lower().replace(' ', '_')}_{rec['recid']}.{'jpg' if photo else 'pdf'}",
                content_type="image/jpeg" if photo else "application/pdf",
                size=self.rng.randint(20_000, 4_000_000),
                description=kind["name"],
                is_private=False,
                record_type=kind["id"],
                record_type_name=kind["name"],
            )
            job["attachment_count"] += 1
            self.add("files", rec)

    def items(self) -> list[Record]:
        """Return line items drawn from the product catalog."""
        products = list(self.records["products"].values())
        out = []
        for product in self.rng.sample(products, self.rng.randint(1, 4)):
            out.append(
                {
                    "jnid": product["jnid"],
                    "name": product["name"],
                    "description": product["description"],
                    "uom": product["uom"],
                    "quantity": self.rng.randint(1, 40),
                    "price": product["price"],
                    "cost": product["cost"],
                }
            )
        return out

    def make_products(self) -> None:
        """Create the product catalog (account-wide, linked to no record)."""
        for i in range(max(1, round(PRODUCT_COUNT * self.scale))):
            name, uom, price, cost = PRODUCTS[i % len(PRODUCTS)]
            rec = self.base("products", "product", self.anchor - SPAN)
            suffix = "" if i < len(PRODUCTS) else f" #{i // len(PRODUCTS) + 1}"
            rec.update(
                name=name + suffix,
                description=f"{name} ({uom})",
                uom=uom,
                price=price,
                cost=cost,
                sku=f"SKU-{1000 + i}",
                category="Roofing",
            )
            self.add("products", rec)

    def make_financials(self, resource: str, rtype: str, statuses: list[str], date_field: str) -> None:
        """Create estimates or invoices on jobs, with totals from their items."""
        for _ in range(self.count(resource)):
            rec, job = self.child(resource, rtype)
            rec.update(price_fields(self.items()))
            status = self.rng.randrange(len(statuses))
            rec.update(status=status + 1, status_name=statuses[status], **{date_field: rec["date_created"]})
            rec["date_due"] = rec["date_created"] + 30 * DAY
            if rtype == "invoice":
                rec["total_paid"] = rec["total"] if statuses[status] == "Paid" else 0.0
                rec["due"] = round(rec["total"] - rec["total_paid"], 2)
                job["approved_invoice_total"] = rec["total"]
            elif statuses[status] == "Approved":
                job["approved_estimate_total"] = rec["total"]
            self.add(resource, rec)

    def make_orders(self) -> None:
        """Create work orders (with a workflow) and material orders on jobs."""
        for _ in range(self.count("workorders")):
            rec, job = self.child("workorders", "workorder")
            rec.update(price_fields(self.items()), name=f"WO {job['name']}", date_start=job["date_start"])
            self.set_workflow(rec, "workorder")
            self.add("workorders", rec)
        for _ in range(self.count("materialorders")):
            rec, _job = self.child("materialorders", "materialorder")
            rec.update(
                price_fields(self.items()),
                supplier=self.rng.choice(["ABC Supply", "SRS", "Beacon"]),
                status_name=self.rng.choice(["Draft", "Ordered", "Delivered"]),
            )
            self.add("materialorders", rec)

    def make_payments_and_budgets(self) -> None:
        """Create payments against invoices and legacy budgets on jobs."""
        invoices = list(self.records["invoices"].values())
        for _ in range(self.count("payments")):
            invoice = self.rng.choice(invoices)
            rec = self.base("payments", "payment", invoice["date_created"])
            rec.update(
                amount=round(invoice["total"] * self.rng.choice([0.5, 1.0]), 2),
                date_payment=rec["date_created"],
                method=self.rng.choice(["Check", "Credit Card", "ACH", "Insurance Check"]),
                reference=f"PMT-{rec['recid']:05d}",
                primary=invoice["primary"],
                related=[link(invoice), *invoice["related"]],
            )
            self.add("payments", rec)
        for _ in range(self.count("budgets")):
            rec, _job = self.child("budgets", "budget")
            revenue = round(self.rng.uniform(4000, 30000), 2)
            cost = round(revenue * self.rng.uniform(0.5, 0.8), 2)
            rec.update(revenue=revenue, cost=cost, margin=round(revenue - cost, 2))
            self.add("budgets", rec)

    def build(self) -> Record:
        """Make every resource in dependency order and return the dataset."""
        self.make_users()
        self.make_contacts()
        self.make_jobs()
        self.make_products()
        self.make_activities()
        self.make_tasks()
        self.make_files()
        self.make_financials("estimates", "estimate", ["Draft", "Sent", "Approved", "Declined"], "date_estimate")
        self.make_financials("invoices", "invoice", ["Draft", "Sent", "Partially Paid", "Paid"], "date_invoice")
        self.make_orders()
        self.make_payments_and_budgets()
        users_updated = max(r["date_created"] for r in self.records["contacts"].values())
        return {
            "records": self.records,
            "users": self.users,
            "users_date_updated": users_updated,
            "settings": self.settings,
            "id_seed": self.rng.random(),
        }


def price_fields(items: list[Record]) -> Record:
    """Return items with subtotal, tax, total, cost and margin computed from them."""
    subtotal = round(sum(i.get("quantity", 0) * i.get("price", 0) for i in items), 2)
    cost = round(sum(i.get("quantity", 0) * i.get("cost", 0) for i in items), 2)
    tax = round(subtotal * 0.0825, 2)
    return {
        "items": items,
        "subtotal": subtotal,
        "tax": tax,
        "total": round(subtotal + tax, 2),
        "cost": cost,
        "margin": round(subtotal - cost, 2),
    }


def link(rec: Record) -> Record:
    """Return the `{id, name, number, type}` reference to a record used in primary/related."""
    return {
        "id": rec["jnid"],
        "name": rec.get("display_name") or rec.get("name") or rec.get("title") or "",
        "number": rec.get("number"),
        "type": rec["type"],
    }


def _full(user: Record) -> str:
    """Return a user's full name."""
    return f"{user['first_name']} {user['last_name']}"


def generate(seed: int, scale: float, anchor: int) -> Record:
    """Return a dataset: records by resource, users, account settings."""
    if scale <= 0:
        raise ValueError("scale must be greater than 0")
    return Seeder(seed, scale, anchor).build()
