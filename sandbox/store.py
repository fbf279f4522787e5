"""The sandbox's in-memory records, guarded by one lock, with JobNimbus's create/update rules.

Writes validate as JobNimbus documents them but answer 400 (`InvalidRecord`) where the real API sometimes answers 500
for a missing required field: the message names the field either way, and 400 is what a client should treat it as.
Records are never mutated in place below the top level (a PUT replaces whole values), so shallow copies handed out
under the lock stay consistent after it is released.
"""

from __future__ import annotations

import base64
import binascii
import random
import threading
from collections.abc import Callable
from typing import Any

import orjson

from sandbox.query import Predicate, Record, project, select, sort_records
from sandbox.resources import BY_NAME, CONTACT_NAMES, READ_ONLY, RESOURCES, Resource
from sandbox.seed import ACCOUNT_ID, DAY, ID_ALPHABET, link, price_fields

ESTIMATE_STATUSES = ["Draft", "Sent", "Approved", "Declined"]
INVOICE_STATUSES = ["Draft", "Sent", "Partially Paid", "Paid"]
PARENT_TYPES = ("contacts", "jobs")


class InvalidRecord(ValueError):
    """A write JobNimbus would refuse; the message names the field."""


class Store:
    """Records by resource plus users and settings; every public method takes the lock."""

    def __init__(self, dataset: bytes) -> None:
        self.lock = threading.RLock()
        self.pristine = dataset
        self.dirty = True
        self.load()

    def reset(self) -> None:
        """Restore the pristine data, skipping the reload when nothing was written since the last one."""
        with self.lock:
            if self.dirty:
                self.load()

    def load(self) -> None:
        """Replace all data with a fresh copy of the pristine dataset."""
        data = orjson.loads(self.pristine)
        with self.lock:
            self.records: dict[str, dict[str, Record]] = {r.name: data["records"].get(r.name, {}) for r in RESOURCES}
            self.users: list[Record] = data["users"]
            self.users_date_updated: int = data["users_date_updated"]
            self.settings: Record = data["settings"]
            self.where = {jnid: name for name, recs in self.records.items() for jnid in recs}
            self.ids = random.Random(data["id_seed"])
            self.recids = {
                name: max((r["recid"] for r in recs.values()), default=0) for name, recs in self.records.items()
            }
            self.dirty = False

    # Reads

    def query(
        self,
        name: str,
        predicate: Predicate,
        order: tuple[str, str],
        window: tuple[int, int],
        fields: list[str] | None,
        visible: Callable[[Record], bool],
    ) -> tuple[int, list[Record]]:
        """Return (total matches, projected page) for one list request."""
        with self.lock:
            matched = select(self.records[name].values(), lambda r: visible(r) and predicate(r))
            ordered = sort_records(matched, *order)
            start, size = window
            return len(ordered), [project(r, fields) for r in ordered[start : start + size]]

    def get(self, name: str, jnid: str) -> Record | None:
        """Return a copy of one record (deleted ones too), or None."""
        with self.lock:
            record = self.records[name].get(jnid)
            return dict(record) if record is not None else None

    def sales_rep_ids(self, user_id: str) -> set[str]:
        """Return the jnids of the contacts and jobs whose sales_rep is a user."""
        with self.lock:
            return {j for n in PARENT_TYPES for j, r in self.records[n].items() if r.get("sales_rep") == user_id}

    def user_ids(self) -> set[str]:
        """Return the ids of the account's users."""
        with self.lock:
            return {u["id"] for u in self.users}

    # Writes

    def create(self, res: Resource, body: Record, now: int) -> Record:
        """Validate and store a new record; return a copy of it."""
        _require(res, body)
        with self.lock:
            self.dirty = True
            record = self._new_record(res, body, now)
            record.update(self._changes(res, record, body))
            self._finish(res, record, now)
            self.records[res.name][record["jnid"]] = record
            self.where[record["jnid"]] = res.name
            self._touch_parents(record, now, +1 if record["is_active"] else 0, res.parent_counter)
            return dict(record)

    def update(self, res: Resource, jnid: str, body: Record, now: int) -> tuple[str, Record] | None:
        """Apply a partial update; return (event, copy) or None when the record does not exist."""
        with self.lock:
            record = self.records[res.name].get(jnid)
            if record is None:
                return None
            self.dirty = True
            changes = self._changes(res, record, body)
            was_active = record["is_active"]
            updated = {**record, **changes}
            self._finish(res, updated, max(now, record["date_updated"]))
            record.clear()
            record.update(updated)
            delta = int(record["is_active"]) - int(was_active)
            if delta:  # a delete or restore changes the parents' counters; a plain edit leaves them alone
                self._touch_parents(record, now, delta, res.parent_counter)
            event = "deleted" if was_active and not record["is_active"] else "updated"
            return event, dict(record)

    def _new_record(self, res: Resource, body: Record, now: int) -> Record:
        """Return the common fields of a new record."""
        self.recids[res.name] += 1
        recid = self.recids[res.name]
        user = self._user(body.get("created_by")) or self.users[0]
        return {
            "jnid": "".join(self.ids.choices(ID_ALPHABET, k=24)),
            "recid": recid,
            "number": str(1000 + recid),
            "type": res.type,
            "customer": ACCOUNT_ID,
            "created_by": user["id"],
            "created_by_name": f"{user['first_name']} {user['last_name']}",
            "date_created": now,
            "date_updated": now,
            "is_active": True,
            "is_archived": False,
            "external_id": None,
            "tags": [],
            "owners": [{"id": user["id"]}],
            "location": {"id": 1, "name": "Main Office"},
            "primary": None,
            "related": [],
        }

    def _changes(self, res: Resource, record: Record, body: Record) -> Record:
        """Return the validated field changes a body asks for."""
        changes: Record = {}
        for key, value in body.items():
            if key in READ_ONLY:
                if key in record and record[key] != value:
                    raise InvalidRecord(f"'{key}' is read-only")
                continue
            changes[key] = self._field(res, key, value)
        return changes

    def _field(self, res: Resource, key: str, value: Any) -> Any:
        """Return one validated field value."""
        if key == "is_active" and not isinstance(value, bool):
            raise InvalidRecord("'is_active' must be true or false")
        if key == "related":
            return self._links(value)
        if key == "primary":
            return self._links([value])[0] if value else None
        if key == "sales_rep" and value and self._user(value) is None:
            raise InvalidRecord(f"'sales_rep' {value!r} is not a user of this account")
        if key.startswith("date_") and not (isinstance(value, int) and not isinstance(value, bool)):
            raise InvalidRecord(f"'{key}' must be unix seconds (an integer)")
        return value

    def _links(self, value: Any) -> list[Record]:
        """Return `[{id, name, number, type}]` for `[{id}]`, refusing unknown ids."""
        if not isinstance(value, list) or not all(isinstance(v, dict) and isinstance(v.get("id"), str) for v in value):
            raise InvalidRecord("'related' must be a list of objects with an 'id' (and 'primary' an object with 'id')")
        out = []
        for item in value:
            name = self.where.get(item["id"])
            if name is None:
                raise InvalidRecord(f"related record {item['id']!r} does not exist")
            out.append(link(self.records[name][item["id"]]))
        return out

    def _finish(self, res: Resource, record: Record, now: int) -> None:
        """Stamp date_updated and derive the fields that follow from others (names, workflow ids, totals)."""
        record["date_updated"] = max(now, record["date_updated"])
        if res.workflow:
            self._set_workflow(res.workflow, record)
        FINISHERS.get(res.name, _no_finish)(self, record)
        if record.get("primary") and not any(r["id"] == record["primary"]["id"] for r in record["related"]):
            record["related"] = [record["primary"], *record["related"]]
        if record.get("primary") is None and record["related"] and res.name not in PARENT_TYPES:
            record["primary"] = record["related"][0]
        if record.get("sales_rep"):
            user = self._user(record["sales_rep"]) or {}
            record["sales_rep_name"] = f"{user.get('first_name', '')} {user.get('last_name', '')}".strip()

    def _set_workflow(self, object_type: str, record: Record) -> None:
        """Resolve record_type_name/status_name against the account's workflows."""
        flows = [w for w in self.settings["workflows"] if w["object_type"] == object_type]
        flow = next((w for w in flows if w["name"] == record.get("record_type_name")), None)
        if flow is None:
            names = ", ".join(w["name"] for w in flows)
            raise InvalidRecord(
                f"record_type_name {record.get('record_type_name')!r} is not a {object_type} workflow ({names})"
            )
        status = next((s for s in flow["status"] if s["name"] == record.get("status_name")), None)
        if status is None:
            names = ", ".join(s["name"] for s in flow["status"])
            raise InvalidRecord(
                f"status_name {record.get('status_name')!r} is not a status of '{flow['name']}' ({names})"
            )
        if record.get("status") != status["id"]:
            record["date_status_change"] = record["date_updated"]
        record.update(record_type=flow["id"], status=status["id"])

    def typed(self, kind: str, record: Record, default: str) -> None:
        """Resolve record_type_name against a settings type list (taskTypes, fileTypes, activityTypes)."""
        name = record.get("record_type_name") or default
        match = next((t for t in self.settings[kind] if t["name"] == name), None)
        if match is None:
            names = ", ".join(t["name"] for t in self.settings[kind])
            raise InvalidRecord(f"record_type_name {name!r} is not one of {kind} ({names})")
        record.update(record_type=match["id"], record_type_name=name)

    def _touch_parents(self, record: Record, now: int, delta: int, counter: str | None) -> None:
        """Move the linked contacts'/jobs' date_updated and their child counter."""
        for ref in record["related"]:
            parent = self.records[self.where[ref["id"]]].get(ref["id"]) if ref["type"] in ("contact", "job") else None
            if parent is None:
                continue
            parent["date_updated"] = max(now, parent["date_updated"])
            if counter and delta and counter in parent:
                parent[counter] = max(0, parent[counter] + delta)

    def _user(self, user_id: Any) -> Record | None:
        """Return the user with an id, or None."""
        return next((u for u in self.users if u["id"] == user_id), None)


def _require(res: Resource, body: Record) -> None:
    """Raise InvalidRecord naming the first missing required field of a create."""
    for field in res.required:
        if body.get(field) in (None, "", []):
            raise InvalidRecord(f"'{field}' is required")
    if res.name == "contacts" and not any(body.get(f) for f in CONTACT_NAMES):
        raise InvalidRecord("one of 'first_name', 'last_name', 'display_name' or 'company' is required")


def _no_finish(_store: Store, _record: Record) -> None:
    """Leave records without derived fields alone."""


def _finish_contact(_store: Store, record: Record) -> None:
    """Default display_name from company or first/last name."""
    if not record.get("display_name"):
        full = f"{record.get('first_name') or ''} {record.get('last_name') or ''}".strip()
        record["display_name"] = record.get("company") or full


def _finish_job(_store: Store, record: Record) -> None:
    """Give a new job its counters."""
    for counter in ("attachment_count", "task_count"):
        record.setdefault(counter, 0)
    for total in ("approved_estimate_total", "approved_invoice_total"):
        record.setdefault(total, 0.0)


def _finish_task(store: Store, record: Record) -> None:
    store.typed("taskTypes", record, "Follow Up")
    record.setdefault("is_completed", False)
    record.setdefault("priority", 0)
    record.setdefault("date_end", record["date_start"] + 3600)


def _finish_activity(store: Store, record: Record) -> None:
    store.typed("activityTypes", record, "Note")
    record.setdefault("is_status_change", False)


def _finish_file(store: Store, record: Record) -> None:
    """Turn the deprecated base64 `data` into size/content_type (the bytes themselves are not kept)."""
    store.typed("fileTypes", record, "Document")
    data = record.pop("data", None)
    if data is not None:
        try:
            record["size"] = len(base64.b64decode(str(data), validate=True))
        except (binascii.Error, ValueError):
            raise InvalidRecord("'data' must be base64") from None
    record.setdefault("content_type", "application/octet-stream")
    record.setdefault("description", "")
    record.setdefault("is_private", False)


def _priced(statuses: list[str], date_field: str) -> Callable[[Store, Record], None]:
    """Return a finisher computing totals from items and resolving status_name to its number."""

    def finish(_store: Store, record: Record) -> None:
        items = record.get("items") or []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InvalidRecord("'items' must be a list of objects")
        record.update(price_fields(items))
        name = record.get("status_name") or statuses[0]
        if name not in statuses:
            raise InvalidRecord(f"status_name {name!r} is not one of {', '.join(statuses)}")
        record.update(status=statuses.index(name) + 1, status_name=name)
        record.setdefault(date_field, record["date_created"])
        record.setdefault("date_due", record["date_created"] + 30 * DAY)
        if date_field == "date_invoice":
            record.setdefault("total_paid", 0.0)
            record["due"] = round(record["total"] - record["total_paid"], 2)

    return finish


def _finish_order(_store: Store, record: Record) -> None:
    items = record.get("items") or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidRecord("'items' must be a list of objects")
    record.update(price_fields(items))


FINISHERS: dict[str, Callable[[Store, Record], None]] = {
    "contacts": _finish_contact,
    "jobs": _finish_job,
    "tasks": _finish_task,
    "activities": _finish_activity,
    "files": _finish_file,
    "estimates": _priced(ESTIMATE_STATUSES, "date_estimate"),
    "invoices": _priced(INVOICE_STATUSES, "date_invoice"),
    "workorders": _finish_order,
    "materialorders": _finish_order,
}
assert set(FINISHERS) <= set(BY_NAME)
