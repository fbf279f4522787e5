"""The request path's memos answer exactly as the work they skip would: never across values, tenants or schemas."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from cacheops.conf import engine_setting
from mcp_tools.catalog import validation
from mcp_tools.catalog.base import ToolContext
from mcp_tools.catalog.runtime import shaped_result


def ctx(tenant: str = "t1") -> ToolContext:
    return ToolContext(instance="acme", api_key="k", tenant=tenant)


class Shaper:
    """Counts how often the shaping it stands for actually ran."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value, self.runs = value, 0

    def __call__(self) -> dict[str, Any]:
        self.runs += 1
        return {"count": len(self.value["records"]), "records": list(self.value["records"])}


def test_the_same_cached_value_is_shaped_once() -> None:
    value = {"records": [{"jnid": "a"}]}
    shape = Shaper(value)
    first = shaped_result(ctx(), "get_jobs", value, {"size": 1}, {"status": "miss"}, shape)
    again = shaped_result(ctx(), "get_jobs", value, {"size": 1}, {"status": "hit_l1"}, shape)
    assert shape.runs == 1
    assert again.structured == first.structured
    assert again.text == first.text
    assert again.cache == {"status": "hit_l1"}  # the outcome is this call's, never the remembered one's


def test_a_new_value_under_the_same_arguments_is_shaped_afresh() -> None:
    old, new = {"records": [{"jnid": "a", "status": "Lead"}]}, {"records": [{"jnid": "a", "status": "Sold"}]}
    shaped_result(ctx(), "get_jobs", old, {"size": 1}, {}, Shaper(old))
    shape = Shaper(new)
    answer = shaped_result(ctx(), "get_jobs", new, {"size": 1}, {}, shape)
    assert shape.runs == 1
    assert answer.structured["records"] == [{"jnid": "a", "status": "Sold"}]


def test_another_tenant_never_shares_a_remembered_answer() -> None:
    value = {"records": [{"jnid": "a"}]}  # even the very same object: the tenant is part of the memo's key
    shaped_result(ctx("t1"), "get_jobs", value, {"size": 1}, {}, Shaper(value))
    shape = Shaper(value)
    shaped_result(ctx("t2"), "get_jobs", value, {"size": 1}, {}, shape)
    assert shape.runs == 1


def test_other_arguments_are_shaped_on_their_own() -> None:
    value = {"records": [{"jnid": "a"}]}
    shaped_result(ctx(), "get_jobs", value, {"size": 1}, {}, Shaper(value))
    shape = Shaper(value)
    shaped_result(ctx(), "get_jobs", value, {"size": 1, "verbosity": "raw"}, {}, shape)
    assert shape.runs == 1


SCHEMA_INT = {"type": "object", "properties": {"size": {"type": "integer"}}}
SCHEMA_STR = {"type": "object", "properties": {"size": {"type": "string"}}}


def test_a_remembered_verdict_is_never_applied_to_another_schema() -> None:
    first = validation.validator_for(SCHEMA_INT)
    assert validation.first_error(first, {"size": 3}) is None
    # A dropped validator's id can be reused by a new one; stand the old verdict under the new validator's id.
    second = validation.validator_for(SCHEMA_STR)
    text = orjson.dumps({"size": 3}, option=orjson.OPT_SORT_KEYS)
    validation._verdicts.remember((id(second), "", text), first, None)
    assert validation.first_error(second, {"size": 3}) == "Argument 'size' must be a string, got 3"


def test_a_remembered_verdict_tells_1_from_1_0_and_true() -> None:
    checker = validation.validator_for(SCHEMA_INT)
    assert validation.first_error(checker, {"size": 1}) is None
    assert validation.first_error(checker, {"size": 1.0}) is not None
    assert validation.first_error(checker, {"size": True}) is not None
    assert validation.first_error(checker, {"size": 1}) is None


def test_large_arguments_are_judged_without_being_remembered() -> None:
    checker = validation.validator_for({"type": "object", "properties": {"note": {"type": "string"}}})
    note = {"note": "x" * (validation.MAX_REMEMBERED_BYTES + 1)}
    assert validation.first_error(checker, note) is None
    text = orjson.dumps(note, option=orjson.OPT_SORT_KEYS)
    assert validation._verdicts.lookup((id(checker), "", text), checker) == (False, None)


@pytest.mark.django_db
def test_engine_options_follow_a_settings_change(settings: Any) -> None:
    settings.CACHEOPS_ENGINE = {"L1_TTL_S": 7.0}
    assert engine_setting("L1_TTL_S") == 7.0
    settings.CACHEOPS_ENGINE = {"L1_TTL_S": 2.5}
    assert engine_setting("L1_TTL_S") == 2.5


def test_the_answer_memo_is_bounded_in_bytes_so_it_never_keeps_what_l1_dropped_beyond_a_small_share() -> None:
    from mcp_tools.memo import OwnedMemo

    memo: OwnedMemo[str] = OwnedMemo(max_entries=100, max_bytes=1000)
    owners = [[n] for n in range(10)]
    for n, owner in enumerate(owners):
        memo.remember(("k", n), owner, f"answer {n}", size=300)
    assert memo.bytes <= 1000
    assert len(memo) == 3  # the three most recent
    assert memo.lookup(("k", 9), owners[9]) == (True, "answer 9")
    assert memo.lookup(("k", 0), owners[0]) == (False, None)
    memo.remember(("big",), object(), "too big", size=1001)  # larger than the whole bound: never kept
    assert memo.lookup(("big",), None) == (False, None)
    assert len(memo) == 3


def test_shaped_answers_are_remembered_with_the_memory_they_keep_alive() -> None:
    from mcp_tools.catalog import runtime

    value = {"records": [{"jnid": f"r{n}", "name": "x" * 50} for n in range(100)]}
    size = runtime._answer_size(value, '{"count": 100}')
    assert size >= 6 * len(orjson.dumps(value))  # at least the decoded value L1 would account for
