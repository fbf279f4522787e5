"""The checks that make a quiet wrong answer loud: a status or a record type the account does not have.

Such an argument can only match nothing, so the call is an error naming the near matches among the account's own
(its settings, one cached read under the `settings` policy), instead of an empty answer. Statuses are checked for
the record types the account's workflows cover (contact, job, workorder); estimates' and invoices' statuses are not
in the settings, so they pass unchecked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from cacheops.errors import CacheBackendError, UpstreamError
from mcp_tools.catalog.args import ArgumentError
from mcp_tools.catalog.base import ToolContext, ToolSpec
from mcp_tools.catalog.runtime import account_settings
from mcp_tools.suggest import did_you_mean, near

logger = logging.getLogger(__name__)

# Settings lists holding the record types of an entity that has no workflow (its `record_type_name`).
_TYPE_LISTS = {"task": "taskTypes", "activity": "activityTypes", "file": "fileTypes"}
# Arguments naming a status, and naming a record type (a workflow, a task/activity/file type).
_STATUS_ARGS = ("status", "status_name")
# (A `type` argument is left to its schema's enum: validation names the near matches of an unknown one.)
_TYPE_ARGS = ("record_type_name", "record_type", "task_type", "activity_type")
_MAX_LISTED = 25


def check_choices(ctx: ToolContext, spec: ToolSpec, args: Mapping[str, Any]) -> None:
    """Raise ArgumentError when a status or record type argument names none the account has, with near matches.

    Costs nothing for calls without such an argument; otherwise one cached read of the account settings. When
    JobNimbus cannot answer that read the call goes on unchecked (its own read may still be served stale); a key
    JobNimbus refuses or rate limits is reported at once, as the call itself would be.
    """
    entity = spec.entity
    wanted = {
        name: value
        for name, value in args.items()
        if isinstance(value, str) and value and (name in _STATUS_ARGS or name in _TYPE_ARGS or name == "file_type")
    }
    if entity is None or not wanted:
        return
    settings = _settings(ctx, spec)
    if settings is None:
        return
    workflows = [
        w for w in settings.get("workflows") or [] if isinstance(w, Mapping) and w.get("object_type") == entity
    ]
    for name, value in wanted.items():
        if name == "file_type":
            _check(name, value, _names(settings.get("fileTypes")), "file types")
        elif name in _TYPE_ARGS:
            if workflows:
                _check(name, value, [str(w.get("name")) for w in workflows], f"{entity} workflows")
            elif entity in _TYPE_LISTS and _TYPE_LISTS[entity] in settings:
                _check(name, value, _names(settings.get(_TYPE_LISTS[entity])), f"{entity} types")
        elif workflows:
            chosen = [w for w in workflows if w.get("name") == args.get("record_type_name")] or workflows
            what = f"{chosen[0].get('name')!r} statuses" if len(chosen) == 1 else f"{entity} statuses"
            statuses = [str(s.get("name")) for w in chosen for s in w.get("status") or [] if isinstance(s, Mapping)]
            _check(name, value, statuses, what)


def _settings(ctx: ToolContext, spec: ToolSpec) -> Mapping[str, Any] | None:
    try:
        settings, _meta = account_settings(ctx, spec.name)
    except UpstreamError as exc:
        if exc.refuses_key or exc.backs_off_key:
            raise  # the call itself would be refused for the same reason: say it as JobNimbus said it
        logger.info("account settings unreadable (%s): %s not checked against them", type(exc).__name__, spec.name)
        return None
    except CacheBackendError as exc:
        logger.info("account settings unreadable (%s): %s not checked against them", type(exc).__name__, spec.name)
        return None
    return settings if isinstance(settings, Mapping) else None


def _names(items: Any) -> list[str]:
    return [str(i.get("name")) for i in items or [] if isinstance(i, Mapping) and i.get("name")]


def _check(argument: str, value: str, known: Sequence[str], what: str) -> None:
    """Raise ArgumentError unless `value` is one of `known` (exactly: JobNimbus matches names exactly)."""
    known = list(dict.fromkeys(known))
    if not known or value in known:
        return
    listed = ", ".join(repr(k) for k in known[:_MAX_LISTED]) + (", ..." if len(known) > _MAX_LISTED else "")
    hint = did_you_mean(near(value, known))
    raise ArgumentError(
        f"Unknown {argument} {value!r}: not one of the account's {what}.{hint} "
        f"Known: {listed} (get_account_settings lists them)."
    )
