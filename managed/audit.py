"""The audit trail of write tool calls made with managed tokens: user, client, tool, record, time, outcome.

Never the arguments: they carry names, addresses and free text. The record id says what was touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from managed.models import WriteAudit
from managed.resource import Principal

logger = logging.getLogger(__name__)

Recorder = Callable[[str, Mapping[str, Any], Mapping[str, Any], bool], None]


def write_recorder(principal: Principal) -> Recorder:
    """Return the function that audits one write tool call made by `principal`."""

    def record(tool: str, arguments: Mapping[str, Any], answer: Mapping[str, Any], succeeded: bool) -> None:
        try:
            WriteAudit.objects.create(
                user_id=principal.user_id,
                username=principal.username,
                application_id=principal.application_id,
                client_name=principal.client_name[:255],
                instance=principal.key.instance,
                key_label=principal.key.label,
                tool=tool[:64],
                record=record_id(arguments, answer),
                succeeded=succeeded,
            )
        except Exception:  # the write already happened in JobNimbus; losing its audit row must be loud, not fatal
            logger.error("Could not write the audit entry of %s by %s", tool, principal.username, exc_info=True)

    return record


def record_id(arguments: Mapping[str, Any], answer: Mapping[str, Any]) -> str:
    """Return the id of the record a write touched: the answer's record, else the id it was called with."""
    record = answer.get("record")
    if isinstance(record, Mapping) and isinstance(record.get("jnid"), str):
        return str(record["jnid"])[:64]
    for name in ("jnid", "id", "record_id"):
        value = arguments.get(name)
        if isinstance(value, str):
            return value[:64]
    return ""
