"""Notes: what an answer says about how its arguments were read, when the call left something open.

A datetime without an offset is read as the account's wall-clock time (`mcp_tools.timezones`); the answer says
which zone and offset were used. Notes are collected per tool call (`collecting`: the registry wraps every call)
and added to the answer as `notes`, in its structured content and its text alike.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from mcp_tools.catalog.base import ToolResult
from mcp_tools.shaping import to_text

_notes: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("call_notes", default=None)


@contextmanager
def collecting() -> Iterator[list[str]]:
    """Collect the notes of one tool call (what `note` adds while the block runs)."""
    notes: list[str] = []
    token = _notes.set(notes)
    try:
        yield notes
    finally:
        _notes.reset(token)


def note(text: str | None) -> None:
    """Tell the current call's answer how an argument was read (nothing outside a call, or for None)."""
    notes = _notes.get()
    if text and notes is not None and text not in notes:
        notes.append(text)


def with_notes(result: ToolResult, notes: Sequence[str]) -> ToolResult:
    """Return `result` with `notes` first in its answer (a new structure: a remembered answer is never changed)."""
    if not notes or result.is_error:
        return result
    structured = {"notes": list(notes), **result.structured}
    return ToolResult(structured=structured, text=to_text(structured), is_error=False, cache=result.cache)
